"""Prior predictive checks: known-answer summaries, and a prior too wide to simulate named as such."""

import numpy as np
import pandas as pd
import pytest
import yaml

from hbm.errors import ConfigError
from hbm.prior_check import prior_check, summarize


def test_summary_compares_observed_quantiles_with_the_prior_predictive_ones():
    rng = np.random.default_rng(0)
    y = np.arange(100.0)
    # each draw is the data shifted by N(0, 1): every observed quantile sits in the middle of its spread
    y_rep = y[None, :] + rng.normal(0, 1, size=(400, 1))
    out = summarize(y, y_rep, (0, 99))
    assert out["draws"] == 400
    assert out["observed_quantiles_inside_90"] == len(out["quantiles"]) == 5
    assert out["quantiles"][2]["prior_median"] == pytest.approx(49.5, abs=0.2)
    assert 0.97 < out["share_in_plausible_range"] < 1.0  # the shifted ends leave [0, 99] about half the time
    narrow = summarize(y, rng.normal(500, 1, size=(400, 100)), None)
    assert narrow["observed_quantiles_inside_90"] == 0 and "share_in_plausible_range" not in narrow


def _count_level(tmp_path, beta_sd: float, covariates=("flag",), mu_prior=None):
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest

    rng = np.random.default_rng(1)
    days = pd.date_range("2024-01-01", periods=20, freq="D")
    rows = [{"day": d, "store": s, "flag": int(d.dayofweek >= 5), "units": int(rng.poisson(1e4))}
            for d in days for s in ("a", "b", "c")]
    pd.DataFrame(rows).to_csv(tmp_path / "sales.csv", index=False)
    cfg = {"name": "wide", "data": {"path": str(tmp_path / "sales.csv")},
           "columns": {"target": "units", "time": "day", "covariates": list(covariates)},
           "levels": {"store": {"column": "store"}},
           "model": {"family": "negative_binomial", "priors": {"beta": {"dist": "normal", "mu": 0, "sigma": beta_sd}}}}
    if mu_prior:
        cfg["model"]["priors"]["mu"] = mu_prior
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(cfg))
    analysis = load_analysis(tmp_path / "wide.yaml")
    spec = level_spec(analysis, "store")
    ingest(tmp_path / "sales.csv", tmp_path / "obs.parquet", tmp_path / "summary.json", analysis["columns"],
           analysis["levels"], fmt="auto", family="negative_binomial")
    aggregate(tmp_path / "obs.parquet", tmp_path / "store.parquet", spec=spec, holdout=0)
    return spec


def test_a_prior_too_wide_to_simulate_stops_with_a_message_naming_the_level_and_the_fix(tmp_path):
    spec = _count_level(tmp_path, beta_sd=200.0)  # exp(flag slope) reaches e^400: no count can be drawn
    with pytest.raises(ConfigError, match=r"level store: the priors put the count mean beyond what can be simulated.*model\.priors\.beta"):
        prior_check(tmp_path / "store.parquet", tmp_path / "pp.nc", tmp_path / "pp.json", tmp_path / "pp.png",
                    spec=spec, draws=200, plausible_range=None, seed=1)
    assert not (tmp_path / "pp.nc").exists() and not (tmp_path / "pp.json").exists()


def test_without_covariates_the_intercept_prior_at_fault_is_named_not_beta(tmp_path):
    spec = _count_level(tmp_path, beta_sd=0.5, covariates=(), mu_prior={"dist": "normal", "mu": 9, "sigma": 300})
    with pytest.raises(ConfigError, match=r"level store: .* is model\.priors\.mu \(") as err:
        prior_check(tmp_path / "store.parquet", tmp_path / "pp.nc", tmp_path / "pp.json", tmp_path / "pp.png",
                    spec=spec, draws=200, plausible_range=None, seed=1)
    assert "priors.beta" not in str(err.value)
    assert not (tmp_path / "pp.nc").exists()


def test_a_reasonable_prior_on_the_same_data_simulates(tmp_path):
    spec = _count_level(tmp_path, beta_sd=0.5)
    out = prior_check(tmp_path / "store.parquet", tmp_path / "pp.nc", tmp_path / "pp.json", tmp_path / "pp.png",
                      spec=spec, draws=100, plausible_range=None, seed=1)
    assert out["draws"] == 100 and (tmp_path / "pp.nc").exists()
