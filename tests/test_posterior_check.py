"""The posterior check's memory-bounded passes (hbm.posterior_check): PSIS-LOO over blocks of observations
gives ArviZ's numbers, the posterior predictive sampled in blocks of draws is one set of draws of the right
distribution, and coverage and p-values taken in blocks equal the whole-array formulas."""

import numpy as np
import pytest
from scipy import stats

import arviz as az

from hbm.posterior_check import (coverage, loo_pit_values, p_values, predictive_draws, psis_loo,
                                 relative_efficiency)

CHAINS, DRAWS, N = 2, 300, 150


@pytest.fixture(scope="module")
def fitted():
    """A negative binomial stand-in posterior (draws of mu and alpha around the truth) with its pointwise
    log-likelihood and predictive draws; mu varies by observation so that Pareto k varies too."""
    rng = np.random.default_rng(4)
    mu = np.exp(rng.normal(1.0, 1.0, N))
    y = stats.nbinom(2.0, 2.0 / (2.0 + mu)).rvs(random_state=rng)
    mu_s = mu * np.exp(rng.normal(0, 0.15, (CHAINS, DRAWS, 1)))
    alpha_s = 2.0 * np.exp(rng.normal(0, 0.1, (CHAINS, DRAWS, 1)))
    dist = stats.nbinom(alpha_s, alpha_s / (alpha_s + mu_s))
    return az.from_dict({"posterior": {"log_mu0": np.log(mu_s[..., 0]), "alpha": alpha_s[..., 0]},
                         "log_likelihood": {"y": dist.logpmf(y)},
                         "posterior_predictive": {"y": dist.rvs(random_state=rng)},
                         "observed_data": {"y": y}}, dims={"y": ["obs"]})


@pytest.mark.parametrize("block", [7, 150])
def test_psis_loo_in_blocks_gives_arviz_numbers(fitted, block):
    ref = az.loo(fitted, pointwise=True)
    k = np.asarray(ref.pareto_k).ravel()
    out = psis_loo(fitted.log_likelihood["y"], relative_efficiency(fitted.posterior), 0.7, block=block)
    assert out["elpd_loo"] == pytest.approx(float(ref.elpd), rel=1e-12)
    assert out["se"] == pytest.approx(float(ref.se), rel=1e-10)
    assert out["p_loo"] == pytest.approx(float(ref.p), rel=1e-10)
    assert out["max_pareto_k"] == pytest.approx(float(k.max()), rel=1e-12)
    assert out["pareto_k"]["good (k < 0.5)"] == int((k < 0.5).sum())
    assert 0 < out["pareto_k"]["good (k < 0.5)"] < N or out["max_pareto_k"] < 0.5


def test_each_block_sees_arviz_log_weights_in_draw_order(fitted):
    want = az.loo(fitted, pointwise=True).log_weights.transpose("obs", "chain", "draw").values.reshape(N, -1)
    got = np.full_like(want, np.nan)

    def each(s, log_w):
        got[s] = log_w

    psis_loo(fitted.log_likelihood["y"], relative_efficiency(fitted.posterior), 0.7, block=11, each=each)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # and LOO-PIT does not depend on the block size
    assert np.array_equal(loo_pit_values(fitted, np.random.default_rng(1), block=13),
                          loo_pit_values(fitted, np.random.default_rng(1)))


def test_coverage_and_p_values_in_blocks_equal_the_whole_array_formulas(fitted):
    y = fitted.observed_data["y"].values
    y_rep = fitted.posterior_predictive["y"].values.reshape(-1, N)
    groups = np.arange(N) % 4
    small, whole = coverage(y, y_rep, groups, list("abcd"), block=17), coverage(y, y_rep, groups, list("abcd"),
                                                                                 block=10 ** 6)
    assert small == whole
    lo, hi = np.quantile(y_rep, [0.05, 0.95], axis=0)
    assert small["90"]["overall"] == pytest.approx(np.mean((y >= lo) & (y <= hi)))
    assert p_values(y, y_rep, block=9) == p_values(y, y_rep, block=10 ** 6)
    sd = np.std(y_rep, axis=1, ddof=1)
    assert p_values(y, y_rep)["sd"] == pytest.approx(np.mean(sd >= np.std(y, ddof=1)))


def test_the_predictive_sampled_in_blocks_of_draws_is_one_set_of_draws():
    """A normal model whose posterior is given: each draw's predictive values centre on that draw's mu,
    blocks of draws use different seeds (no repeated noise), and the first block's first chain is what one
    call with the same seed gives."""
    import pymc as pm
    import xarray as xr

    rng = np.random.default_rng(0)
    rows = 50
    with pm.Model(coords={"obs_id": range(rows)}) as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1.0, observed=rng.normal(size=rows), dims="obs_id")
    chains, draws = 2, 30
    mu_draws = rng.normal(0, 5, (chains, draws))
    posterior = xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), mu_draws)},
                                                               coords={"chain": range(chains), "draw": range(draws)})})
    blocked = predictive_draws(posterior, model, seed=5, rows=rows, cells=chains * rows * 7)  # 7 draws a call
    y = blocked["posterior_predictive"]["y"]
    assert y.dims == ("chain", "draw", "obs_id") and y.shape == (chains, draws, rows)
    assert np.array_equal(y["draw"].values, np.arange(draws)) and "observed_data" in blocked.children
    noise = y.values - mu_draws[..., None]
    assert abs(noise.mean()) < 0.1 and noise.std() == pytest.approx(1.0, abs=0.05)
    assert not np.allclose(noise[:, 0:7], noise[:, 7:14])
    whole = predictive_draws(posterior, model, seed=5, rows=rows)
    np.testing.assert_array_equal(y.values[0, :7], whole["posterior_predictive"]["y"].values[0, :7])


def test_the_log_likelihood_is_read_only_where_it_is_used(fitted, tmp_path):
    """hbm.io: the posterior check opens posterior.nc with the log-likelihood lazy (read a block at a
    time), the forecast and the report leave it out unread; the file keeps it."""
    from hbm.io import open_netcdf, read_netcdf, write_netcdf

    path = tmp_path / "posterior.nc"
    write_netcdf(fitted, path)
    assert "log_likelihood" not in read_netcdf(path, exclude=("log_likelihood",)).children
    whole = read_netcdf(path)
    assert set(whole.children) == set(fitted.children)
    with open_netcdf(path, lazy=("log_likelihood",)) as tree:
        ll = tree["log_likelihood"]["y"]
        assert not ll.variable._in_memory and tree["posterior"]["alpha"].variable._in_memory
        np.testing.assert_array_equal(ll.isel(obs=slice(3, 9)).values, fitted.log_likelihood["y"].values[..., 3:9])


def _normal_model_and_posterior(rows=50, chains=2, draws=30):
    import pymc as pm
    import xarray as xr

    rng = np.random.default_rng(0)
    with pm.Model(coords={"obs_id": range(rows)}) as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1.0, observed=rng.normal(size=rows), dims="obs_id")
    posterior = xr.Dataset({"mu": (("chain", "draw"), rng.normal(0, 5, (chains, draws)))},
                           coords={"chain": range(chains), "draw": range(draws)})
    observed = xr.Dataset({"y": ("obs_id", model.rvs_to_values[model["y"]].data)}, coords={"obs_id": range(rows)},
                          attrs={"inference_library": "pymc", "hbm_spec": "{}"})
    return model, xr.DataTree.from_dict({"posterior": posterior, "observed_data": observed})


@pytest.mark.parametrize("in_memory", [True, False])
def test_the_streamed_predictive_is_written_as_the_whole_one_and_its_statistics_taken_on_the_way(
        tmp_path, monkeypatch, in_memory):
    """predictive_streamed through write_netcdf, 7 draws per call: the file holds the draws
    predictive_draws gives in one array (same seeds), in chunks no call splits; PValues from the calls'
    blocks equals p_values of the whole; the fit's hbm_* attributes are not carried over."""
    import h5netcdf

    from hbm import io as hbm_io
    from hbm.io import open_netcdf, write_netcdf
    from hbm.posterior_check import PValues, predictive_streamed

    monkeypatch.setattr(hbm_io, "IN_MEMORY_BYTES", 10 ** 9 if in_memory else 0)
    model, fitted = _normal_model_and_posterior()
    cells = 2 * 50 * 7
    whole = predictive_draws(fitted, model, seed=5, rows=50, cells=cells)["posterior_predictive"]["y"]
    y_obs = fitted["observed_data"]["y"].values
    stats, calls = PValues(y_obs), []

    def on_block(values):
        calls.append(values.shape)
        stats.add(values)

    streamed = predictive_streamed(fitted, model, seed=5, rows=50, on_block=on_block, cells=cells)
    assert streamed.dtype == "float64" and streamed.shape == (2, 30, 50)
    path = tmp_path / "pp.nc"
    write_netcdf(xr_tree(fitted, "observed_data"), path, streamed=[streamed])
    assert calls == [(2, 7, 50)] * 4 + [(2, 2, 50)]
    with open_netcdf(path, lazy=("posterior_predictive",)) as tree:
        y = tree["posterior_predictive"]["y"]
        assert not y.variable._in_memory and y.dims == ("chain", "draw", "obs_id")
        np.testing.assert_array_equal(y.values, whole.values)
        assert "hbm_spec" not in tree["posterior_predictive"].attrs
        assert list(tree["posterior_predictive"].attrs["sample_dims"]) == ["chain", "draw"]
    with h5netcdf.File(path, "r") as f:
        assert f["posterior_predictive"]["y"].chunks == (1, 7, 50)
    assert stats.result() == p_values(y_obs, whole.values.reshape(-1, 50))


def xr_tree(fitted, group):
    import xarray as xr

    return xr.DataTree.from_dict({group: fitted[group].to_dataset()})


def test_coverage_and_loo_pit_read_from_the_file_equal_the_in_memory_ones(fitted, tmp_path):
    """The posterior check's passes over blocks of observations take the predictive draws lazily from
    posterior_predictive.nc: the same coverage and LOO-PIT as from the array in memory."""
    from hbm.io import open_netcdf, write_netcdf
    from hbm.posterior_check import _draws_by_obs, loo_and_pit

    path = tmp_path / "pp.nc"
    write_netcdf(fitted, path)
    y = fitted.observed_data["y"].values
    groups = np.arange(N) % 4
    in_memory = _draws_by_obs(fitted.posterior_predictive["y"])
    reff = relative_efficiency(fitted.posterior)
    with open_netcdf(path, lazy=("posterior_predictive",)) as tree:
        lazy = tree["posterior_predictive"]["y"]
        assert not lazy.variable._in_memory
        assert coverage(y, lazy, groups, list("abcd"), block=17) == coverage(y, in_memory, groups, list("abcd"))
        got = loo_and_pit(fitted.log_likelihood["y"], reff, lazy, y, np.random.default_rng(2), 0.7, block=23)
    want = loo_and_pit(fitted.log_likelihood["y"], reff, in_memory, y, np.random.default_rng(2), 0.7)
    assert got[0]["pareto_k"] == want[0]["pareto_k"] and np.array_equal(got[1], want[1])
    for key in ("elpd_loo", "se", "p_loo", "max_pareto_k"):
        assert got[0][key] == pytest.approx(want[0][key], rel=1e-12), key


def test_the_predictive_calls_and_their_seeds_are_those_of_one_array_of_cells_values():
    """draws_per_call = cells // (chains x rows): one call with the seed when every draw fits (4 chains x
    1,000 draws x 300 rows in 2^25 values), else calls of that many draws, the last one short."""
    from hbm.posterior_check import PREDICTIVE_CELLS, draws_per_call, predictive_parts

    assert draws_per_call(4, 300) == PREDICTIVE_CELLS // 1200 > 1000
    assert draws_per_call(2, 85_372) == 196
    model, fitted = _normal_model_and_posterior()
    bounds = [(a, b) for a, b, _ in predictive_parts(fitted, model, seed=5, rows=50, cells=2 * 50 * 8)]
    assert bounds == [(0, 8), (8, 16), (16, 24), (24, 30)]
    [(a, b, one)] = list(predictive_parts(fitted, model, seed=5, rows=50, cells=2 * 50 * 30))
    assert (a, b) == (0, 30)
    first = next(predictive_parts(fitted, model, seed=5, rows=50, cells=2 * 50 * 8))[2]
    np.testing.assert_array_equal(first["posterior_predictive"]["y"].values[0, :8],  # the same seed: the
                                  one["posterior_predictive"]["y"].values[0, :8])  # first chain's first draws
