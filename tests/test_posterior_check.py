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
