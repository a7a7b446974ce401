"""Simulation-based calibration: rank and uniformity arithmetic with known answers (fast), and a handful of
simulations of the grouped model through Snakemake and in one batch (slow)."""

import json

import numpy as np
import pytest
import xarray as xr
import yaml

from hbm.sbc import BINS, band_prob, ecdf_band, ranks_of, thinned, uniformity


def test_rank_counts_the_draws_below_the_true_value():
    draws = xr.Dataset({"mu": ("sample", np.arange(100.0)),
                        "theta": (("group", "sample"), np.vstack([np.arange(100.0), -np.arange(100.0)]))},
                       coords={"group": ["a", "b"]})
    ranks = ranks_of({"mu": 10.5, "theta[a]": -1.0, "theta[b]": 0.5}, draws)
    assert ranks == {"mu": 11, "theta[a]": 0, "theta[b]": 100}


def test_uniform_ranks_stay_inside_the_band_and_skewed_ranks_leave_it():
    rng = np.random.default_rng(0)
    band = ecdf_band(200, 100)
    uniform = uniformity(rng.integers(0, 101, 200), 100, band)
    assert uniform["inside_band"] and uniform["chi2_p"] > 0.01
    # an overconfident posterior (too narrow): the truth lands in the tails, ranks pile up at 0 and L
    tails = rng.choice(np.r_[0:10, 91:101], 200)
    skewed = uniformity(tails, 100, band)
    assert not skewed["inside_band"] and skewed["chi2_p"] < 1e-6
    # a biased posterior: ranks pile up on one side
    biased = uniformity(rng.integers(0, 60, 200), 100, band)
    assert not biased["inside_band"]


def test_band_is_simultaneous_not_pointwise():
    """About 95 % of uniform rank sets stay inside the whole band (pointwise bands would fail far more)."""
    rng = np.random.default_rng(1)
    band = ecdf_band(100, 100)
    inside = np.mean([uniformity(rng.integers(0, 101, 100), 100, band)["inside_band"] for _ in range(200)])
    assert 0.9 <= inside <= 0.99


def test_a_calibrated_variant_with_many_parameters_passes_about_95_percent_of_the_time():
    """The bands are Bonferroni-adjusted: a variant of 8 calibrated parameters is flagged about 5 % of the
    time (with separate 95 % bands it would be about 1 - 0.95 ** 8 = 34 %)."""
    rng = np.random.default_rng(3)
    assert band_prob(8) == pytest.approx(1 - 0.05 / 8)
    band = ecdf_band(100, 100, band_prob(8))
    loose = ecdf_band(100, 100)
    passed, passed_loose = [], []
    for _ in range(150):
        ranks = [rng.integers(0, 101, 100) for _ in range(8)]
        passed.append(all(uniformity(r, 100, band)["inside_band"] for r in ranks))
        passed_loose.append(all(uniformity(r, 100, loose)["inside_band"] for r in ranks))
    assert 0.88 <= np.mean(passed) <= 1.0
    assert np.mean(passed_loose) < 0.8
    # and still flags a clearly biased parameter
    assert not uniformity(rng.integers(0, 60, 100), 100, band)["inside_band"]


def _exact_coverage(n, z, lower, upper):
    """P(the ECDF of n uniform values lies inside [lower, upper] at every z), by forward recursion."""
    from scipy.stats import binom

    lo, hi = np.rint(lower * n).astype(int), np.rint(upper * n).astype(int)
    previous = np.r_[0.0, z[:-1]]
    left, p = np.arange(1), np.ones(1)
    for i in range(z.size):
        right = np.arange(lo[i], hi[i] + 1)
        p = p @ binom.pmf(right[None, :] - left[:, None], n - left[:, None], (z[i] - previous[i]) / (1 - previous[i]))
        left = right
    return p.sum()


@pytest.mark.parametrize("prob", [0.95, 1 - 0.05 / 8])
def test_band_is_arviz_0x_optimized_band_and_holds_its_probability_exactly(prob):
    """The edges (counts out of n = 100, L = 100) are those of ArviZ 0.23's
    ecdf_confidence_band(method="optimized") (its algorithm run beside this one: identical at every point),
    and the exact simultaneous coverage is the nominal one."""
    z, lower, upper = ecdf_band(100, 100, prob)
    idx = [0, 9, 24, 49, 74, 89, 99]
    expected = {0.95: ([0, 2, 13, 35, 61, 79, 95], [5, 19, 38, 64, 86, 97, 100]),
                1 - 0.05 / 8: ([0, 1, 11, 32, 58, 77, 94], [6, 22, 41, 67, 89, 98, 100])}[prob]
    assert np.rint(lower[idx] * 100).tolist() == expected[0] and np.rint(upper[idx] * 100).tolist() == expected[1]
    assert _exact_coverage(100, z, lower, upper) == pytest.approx(prob, abs=0.003)
    again = ecdf_band(100, 100, prob)
    assert all(np.array_equal(a, b) for a, b in zip((z, lower, upper), again))  # deterministic


def test_band_of_many_values_reuses_the_level_of_the_largest_exact_band(monkeypatch):
    from scipy.stats import binom

    import hbm.sbc

    monkeypatch.setattr(hbm.sbc, "EXACT_BAND_MAX_N", 200)
    z, lower, upper = ecdf_band(1000, 100, 0.95)
    gamma = hbm.sbc._optimized_gamma(200, 100, 0.95)
    lo, hi = binom.interval(gamma, 1000, z)
    assert np.array_equal(lower, lo / 1000) and np.array_equal(upper, hi / 1000)
    assert 0.92 < _exact_coverage(1000, z, lower, upper) < 0.95  # a little narrow (0.936 here; 0.950 for 20000 at 5000)


def test_thinning_keeps_about_as_many_draws_as_the_effective_sample_size():
    rng = np.random.default_rng(2)
    x = np.zeros((2, 1000))
    for c in range(2):  # AR(1) with phi 0.9: ESS about 1000 * 2 * 0.1 / 1.9 ~ 105
        for t in range(1, 1000):
            x[c, t] = 0.9 * x[c, t - 1] + rng.normal()
    post = xr.Dataset({"mu": (("chain", "draw"), x)}, coords={"chain": [0, 1], "draw": np.arange(1000)})
    kept, ess = thinned(post, ["mu"], 100)
    assert 50 < ess < 250
    assert kept.sizes["sample"] <= 100 and kept.sizes["sample"] >= min(100, int(ess) - 1)


@pytest.mark.slow
def test_sbc_of_the_grouped_model_runs_as_one_job_per_simulation(workdir, analysis_cfg):
    from conftest import ROOT, snakemake

    cfg = analysis_cfg("grouped")
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["sbc"] = {"simulations": 2, "parametrizations": ["centered", "noncentered"], "chains": 2, "draws": 200,
                  "tune": 200}
    wd = workdir(cfg, ROOT / "data/grouped/grouped.csv")
    proc = snakemake(wd, "results/grouped/sbc/summary.json")
    assert proc.stderr.count("rule sbc_simulation:") == 4
    out = json.loads((wd / "results/grouped/sbc/summary.json").read_text())
    assert {(v["level"], v["variant"]) for v in out["variants"]} == {("group", "centered"), ("group", "noncentered")}
    for variant in ("centered", "noncentered"):
        folder = wd / "results/grouped/sbc/group" / variant
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["simulations"] == 2 and summary["parametrization"] == variant
        assert set(summary["parameters"]) == {"mu", "tau", "theta[a]", "theta[b]", "theta[c]", "sigma[a]",
                                              "sigma[b]", "sigma[c]"}
        jobs = [json.loads((folder / "simulations" / f"{i}.json").read_text()) for i in range(2)]
        records = [r for job in jobs for r in job["simulations"]]
        assert [r["index"] for r in records] == [0, 1] and all(job["compile_seconds"] > 0 for job in jobs)
        assert len({r["seed"] for r in records}) == 2
        for r in records:
            assert all(0 <= k <= r["max_rank"] for k in r["ranks"].values())
            assert r["truth"]["tau"] > 0 and r["truth"]["sigma[a]"] > 0
        assert (folder / "ranks.png").stat().st_size > 5000 and (folder / "ecdf.png").stat().st_size > 5000
    # the same simulation of the same variant draws the same truth (seeds from the job, not the clock)
    cfg_file = wd / "config/analyses/grouped.yaml"
    assert yaml.safe_load(cfg_file.read_text())["sbc"]["simulations"] == 2
    assert BINS == 10


@pytest.mark.slow
def test_a_batch_of_simulations_in_one_job_gives_the_records_of_one_job_each(tmp_path):
    """sbc.batch: one compiled model fits several simulated data sets (nutpie's with_data); each simulation
    keeps its own seed, so a batch of 3 gives exactly what 3 separate jobs give, and each fit is of its
    own data (the truths differ; every rank is on 0..100)."""
    from conftest import ROOT

    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest
    from hbm.aggregate import aggregate
    from hbm.sbc import simulate_and_fit

    a = load_analysis(ROOT / "config/analyses/grouped.yaml")
    spec, inference = level_spec(a, "group"), {**a["inference"], "chains": 2, "draws": 300, "tune": 300}
    obs, table = tmp_path / "observations.parquet", tmp_path / "group.parquet"
    ingest(ROOT / "data/grouped/grouped.csv", obs, tmp_path / "summary.json", a["columns"], a["levels"])
    aggregate(obs, table, spec=spec, holdout=0)
    kwargs = dict(spec=spec, inference=inference, parametrization="centered")
    batch = simulate_and_fit(table, tmp_path / "batch.json", seeds=[11, 12, 13], indices=[0, 1, 2], **kwargs)
    single = [simulate_and_fit(table, tmp_path / f"{i}.json", seeds=[s], indices=[i], **kwargs)[0]
              for i, s in [(0, 11), (2, 13)]]
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert [strip(r) for r in (batch[0], batch[2])] == [strip(r) for r in single]
    assert len({r["truth"]["mu"] for r in batch}) == 3
    assert json.loads((tmp_path / "batch.json").read_text())["simulations"] == batch
    for r in batch:
        assert all(0 <= k <= r["max_rank"] for k in r["ranks"].values())


def test_auto_is_decided_on_each_simulated_data_set_with_one_model_per_decision(monkeypatch, spec):
    """An ``auto`` level's SBC fits each simulation with the parametrization decided on its own data (as a
    fit job decides on the user's): groups far apart against their noise get a centered model, groups
    within the noise a non-centered one, and a decision seen before reuses its compiled model."""
    import pandas as pd

    import hbm.sbc
    from conftest import ROOT
    from hbm.models import level_data, resolve_priors

    s = spec(parametrization="auto", noise="shared")
    data = level_data(pd.read_csv(ROOT / "data/grouped/grouped.csv"), s)
    built = []

    def refitter(model, inference):
        built.append(model)
        return lambda y, seed: model

    monkeypatch.setattr(hbm.sbc, "refitter", refitter)
    fit = hbm.sbc.auto_refitter(data, s, resolve_priors(s, data), {}, {})
    rng = np.random.default_rng(1)
    apart = np.array([0.0, 10.0, 20.0])[data.group_idx] + rng.normal(0, 0.5, data.y.size)
    within = rng.normal(0, 10.0, data.y.size)
    first = fit(apart, 1)
    assert fit.decided == "intercept: group 3/3 centered"
    second = fit(within, 2)
    assert fit.decided == "intercept: group 0/3 centered"
    assert fit(apart[::-1].copy() + 5.0, 3) is first and len(built) == 2
    assert "theta_offset" not in first.named_vars and "theta_offset" in second.named_vars


@pytest.mark.slow
def test_sbc_of_an_auto_level_records_each_simulation_s_decision(tmp_path, monkeypatch):
    """simulate_and_fit on an ``auto`` variant goes through the per-simulation decision: each record says
    which parametrization its data got, one model is compiled per distinct decision (its time counted as
    the job's compile time), and the gather job counts the simulations per decision. The sampler is
    replaced by draws from the fitted model's prior (the ranks are then uniform by construction)."""
    import re

    import pymc as pm

    import hbm.sbc
    from conftest import ROOT
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest
    from hbm.model import PREDICTIVE_COMPILE

    compiled = []

    def refitter(model, inference):
        compiled.append(model)

        def fit(y, seed):
            prior = pm.sample_prior_predictive(draws=300, model=model, random_seed=seed,
                                               compile_kwargs=PREDICTIVE_COMPILE).prior.to_dataset()
            stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, 300), dtype=bool))})
            return xr.DataTree.from_dict({"posterior": prior, "sample_stats": stats})

        return fit

    monkeypatch.setattr(hbm.sbc, "refitter", refitter)
    a = load_analysis(ROOT / "config/analyses/grouped.yaml")
    spec = level_spec(a, "group")
    obs, table = tmp_path / "observations.parquet", tmp_path / "group.parquet"
    ingest(ROOT / "data/grouped/grouped.csv", obs, tmp_path / "summary.json", a["columns"], a["levels"])
    aggregate(obs, table, spec=spec, holdout=0)
    records = hbm.sbc.simulate_and_fit(table, tmp_path / "0.json", spec=spec, inference=a["inference"],
                                       seeds=[1, 2, 3, 4], indices=[0, 1, 2, 3], parametrization="auto")
    assert len(compiled) >= 1 and json.loads((tmp_path / "0.json").read_text())["compile_seconds"] > 0
    assert all(re.fullmatch(r"intercept: group [0-3]/3 centered", r["decided"]) for r in records), records
    summary = hbm.sbc.summarize([tmp_path / "0.json"], tmp_path / "summary.json", tmp_path / "ranks.png",
                                tmp_path / "ecdf.png", title="grouped, auto")
    assert sum(summary["decided"].values()) == 4 and set(summary["decided"]) == {r["decided"] for r in records}
    # one model compiled per distinct decision, when a simulation first needs it
    assert len(compiled) == len({r["decided"] for r in records})


def test_every_variant_the_bundled_configs_calibrate_has_a_rule(workdir, analysis_cfg):
    """`snakemake -n results/<a>/sbc/summary.json` plans a job for each variant of ``sbc.parametrizations``
    (``auto`` included) of the bundled grouped config."""
    from conftest import ROOT, snakemake

    cfg = analysis_cfg("grouped")
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["sbc"].update(simulations=2)
    wd = workdir(cfg, ROOT / "data/grouped/grouped.csv")
    proc = snakemake(wd, "-n", "results/grouped/sbc/summary.json")
    for variant in cfg["sbc"]["parametrizations"]:
        assert f"results/grouped/sbc/group/{variant}/summary.json" in proc.stdout + proc.stderr, variant
