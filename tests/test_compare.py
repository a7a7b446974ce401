"""Comparison of two versions: posterior shift, elpd change and config diff with known answers."""

import numpy as np
import pytest
import xarray as xr

from hbm.compare import config_diff, elpd_change, holdout_change, posterior_shift


def posterior(theta, tau):
    """A posterior with 2 chains x 500 draws: theta over groups a, b, c and a scalar tau."""
    return xr.Dataset({
        "theta": (("chain", "draw", "group"), theta),
        "tau": (("chain", "draw"), tau),
    }, coords={"chain": [0, 1], "draw": np.arange(500), "group": ["a", "b", "c"]})


def test_shift_is_the_change_in_means_in_units_of_the_first_sd():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2, 500, 3))
    tau = rng.gamma(2.0, size=(2, 500))
    a = posterior(theta, tau)
    b = posterior(theta + np.array([0.0, 0.5, -2.0]) * theta.reshape(-1, 3).std(0, ddof=1), 3 * tau)
    rows = {r["parameter"]: r for r in posterior_shift(a, b)}
    assert rows["theta[a]"]["shift"] == pytest.approx(0.0, abs=1e-12)
    assert rows["theta[b]"]["shift"] == pytest.approx(0.5)
    assert rows["theta[c]"]["shift"] == pytest.approx(-2.0)
    assert rows["tau"]["shift"] == pytest.approx(2 * tau.mean() / tau.std(ddof=1))
    assert rows["tau"]["sd_b"] == pytest.approx(3 * rows["tau"]["sd_a"])


def test_shift_uses_only_shared_coordinates_and_variables():
    rng = np.random.default_rng(2)
    a = posterior(rng.normal(size=(2, 500, 3)), rng.gamma(2.0, size=(2, 500)))
    b = a.isel(group=[0, 2]).drop_vars("tau")
    rows = posterior_shift(a, b)
    assert [r["parameter"] for r in rows] == ["theta[a]", "theta[c]"]
    assert all(r["shift"] == 0 for r in rows)


def test_elpd_change_of_a_version_with_itself_is_zero_with_zero_se():
    idata = _toy_idata()
    out = elpd_change(idata, idata)
    assert out["delta"] == 0 and out["se"] == 0 and out["paired"]


def test_elpd_change_on_different_observations_is_unpaired():
    a, b = _toy_idata(), _toy_idata(shift_obs=1.0)
    out = elpd_change(a, b)
    assert not out["paired"] and out["se"] == pytest.approx(np.hypot(out["se_a"], out["se_b"]))


def test_elpd_change_gives_arviz_loo_numbers_from_lazily_read_files(tmp_path):
    """PSIS-LOO a block of observations at a time, the log-likelihoods read from posterior.nc only as
    needed (hbm.posterior_check.psis_loo): arviz.loo's elpd, se and Pareto k for each version, and the
    paired se from its pointwise values."""
    import arviz as az

    from hbm.io import open_netcdf, write_netcdf

    a, b = _toy_idata(), _toy_idata(seed=4)
    ref_a, ref_b = az.loo(a, pointwise=True), az.loo(b, pointwise=True)
    write_netcdf(a, tmp_path / "a.nc")
    write_netcdf(b, tmp_path / "b.nc")
    with open_netcdf(tmp_path / "a.nc", lazy=("log_likelihood",)) as lazy_a, \
            open_netcdf(tmp_path / "b.nc", lazy=("log_likelihood",)) as lazy_b:
        assert not lazy_a["log_likelihood"]["y"].variable._in_memory
        out = elpd_change(lazy_a, lazy_b)
    assert out["paired"]
    assert out["elpd_a"] == pytest.approx(float(ref_a.elpd), rel=1e-12)
    assert out["se_b"] == pytest.approx(float(ref_b.se), rel=1e-10)
    assert out["delta"] == pytest.approx(float(ref_b.elpd - ref_a.elpd), rel=1e-10)
    assert out["max_pareto_k_b"] == pytest.approx(float(np.max(ref_b.pareto_k)), rel=1e-12)
    diff = np.asarray(ref_b.elpd_i).ravel() - np.asarray(ref_a.elpd_i).ravel()
    assert out["se"] == pytest.approx(float(np.sqrt(diff.size * np.var(diff))), rel=1e-10) and out["se"] > 0


def _toy_idata(shift_obs=0.0, seed=3):
    """Normal(mu, 1) log likelihood of 20 observations under 2 x 400 draws of mu."""
    import arviz as az
    from scipy import stats

    rng = np.random.default_rng(3)
    y = rng.normal(1.0, 1.0, size=20) + shift_obs
    rng = np.random.default_rng(seed)
    mu = rng.normal(y.mean(), 1 / np.sqrt(20), size=(2, 400))
    ll = stats.norm.logpdf(y[None, None, :], mu[..., None], 1.0)
    return az.from_dict({"posterior": {"mu": mu}, "log_likelihood": {"y": ll}, "observed_data": {"y": y}})


def test_config_diff_marks_added_and_removed_lines():
    lines = config_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "v1", "v2")
    assert [(d["kind"], d["text"]) for d in lines if d["kind"] in "+-"] == [("-", "-b: 2"), ("+", "+b: 3")]
    assert config_diff("a: 1\n", "a: 1\n", "v1", "v2") == []


def test_holdout_change_is_b_minus_a(tmp_path):
    import json

    def scores(crps, mase):
        return {"holdout": {"periods": 8, "model": {"crps": crps, "mae": 1.0, "mase": mase, "coverage_50": 0.5,
                                                     "coverage_90": 0.9}}}

    (tmp_path / "a.json").write_text(json.dumps(scores(10.0, 0.5)))
    (tmp_path / "b.json").write_text(json.dumps(scores(8.0, 0.6)))
    out = {m["metric"]: m for m in holdout_change(tmp_path / "a.json", tmp_path / "b.json")["metrics"]}
    assert out["crps"]["delta"] == pytest.approx(-2.0) and out["mase"]["delta"] == pytest.approx(0.1)
    assert holdout_change(tmp_path / "a.json", tmp_path / "missing.json") is None
