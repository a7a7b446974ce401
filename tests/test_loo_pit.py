"""LOO-PIT of the posterior check (hbm.posterior_check.loo_pit_values / loo_pit_summary) with known answers:
counts simulated from a known model, a posterior stand-in (draws of the fitted model's parameters with
small noise) and its log-likelihood. A calibrated fit passes whatever the counts look like (small, in the
hundreds, half zeros); a fit with too little dispersion fails. Fast: no sampling."""

import numpy as np
import pytest
from scipy import stats

import arviz as az

from hbm.posterior_check import loo_pit_summary, loo_pit_values

CHAINS, DRAWS, N = 2, 500, 400


def negbin(mu, alpha):
    """Negative binomial of mean ``mu`` and dispersion ``alpha`` (variance mu + mu^2 / alpha)."""
    return stats.nbinom(alpha, alpha / (alpha + mu))


def stand_in(y, mu, alpha=None, seed=0):
    """Posterior stand-in for the fit of ``y`` by NB(mu, alpha) (Poisson(mu) when ``alpha`` is None): draws
    of mu (and alpha) with multiplicative noise of about the posterior's size (sd of log mu about
    1 / sqrt(n mu)), their log-likelihood and posterior predictive."""
    rng = np.random.default_rng(seed)
    mu_s = mu * np.exp(rng.normal(0, 1 / np.sqrt(y.size * mu), (CHAINS, DRAWS, 1)))
    if alpha is None:
        dist, post = stats.poisson(mu_s), {"mu": mu_s[..., 0]}
    else:
        alpha_s = alpha * np.exp(rng.normal(0, 0.1, (CHAINS, DRAWS, 1)))
        dist, post = negbin(mu_s, alpha_s), {"mu": mu_s[..., 0], "alpha": alpha_s[..., 0]}
    y_rep = dist.rvs(size=(CHAINS, DRAWS, y.size), random_state=rng)
    return az.from_dict({"posterior": post, "log_likelihood": {"y": dist.logpmf(y)},
                         "posterior_predictive": {"y": y_rep}, "observed_data": {"y": y}},
                        dims={"y": ["obs"]})


def counts(dist, seed):
    return dist.rvs(size=N, random_state=np.random.default_rng(seed))


CALIBRATED = {
    "negative binomial, mean 2": (negbin(2.0, 3.0), dict(mu=2.0, alpha=3.0)),
    "poisson, mean 300": (stats.poisson(300.0), dict(mu=300.0)),
    "negative binomial, hundreds": (negbin(250.0, 20.0), dict(mu=250.0, alpha=20.0)),
    "poisson, half zeros": (stats.poisson(np.log(2)), dict(mu=np.log(2))),
    "negative binomial, half zeros": (negbin(1.5, 0.8), dict(mu=1.5, alpha=0.8)),
}


@pytest.mark.parametrize("case", list(CALIBRATED))
def test_a_calibrated_count_model_passes(case):
    dist, fit = CALIBRATED[case]
    y = counts(dist, seed=1)
    if "zeros" in case:
        assert 0.4 < np.mean(y == 0) < 0.6
    out = loo_pit_summary(stand_in(y, **fit), seed=2)
    assert set(out) == {"ks_statistic", "ks_p_value", "share_below_0.05", "share_above_0.95"}
    assert out["ks_p_value"] > 0.01
    # 5 % expected in each tail; binomial sd with 400 values is 1.1 %
    assert 0.015 <= out["share_below_0.05"] <= 0.09 and 0.015 <= out["share_above_0.95"] <= 0.09


def test_the_pit_without_randomization_flags_a_calibrated_count_model():
    """Why the randomization: with half zeros, P_loo(y_rep <= y) is >= 0.5 for every zero, far from uniform
    (and ArviZ 0.x's smoothing of integer outcomes flagged such fits: issue 21)."""

    class Ones:  # a "Generator" whose uniform draws are all 1: PIT = P(y_rep <= y)
        def uniform(self, size):
            return np.ones(size)

    dist, fit = CALIBRATED["poisson, half zeros"]
    idata = stand_in(counts(dist, seed=1), **fit)
    upper = loo_pit_values(idata, Ones())
    assert stats.kstest(upper, "uniform").pvalue < 1e-10
    assert stats.kstest(loo_pit_values(idata, np.random.default_rng(0)), "uniform").pvalue > 0.01


@pytest.mark.parametrize("fit", [dict(mu=2.0), dict(mu=2.0, alpha=50.0)], ids=["poisson", "nb alpha 50"])
def test_too_little_dispersion_fails(fit):
    """Overdispersed counts (NB, alpha 0.5: sd 3.2 at mean 2) fitted with a Poisson or a nearly Poisson NB:
    the observations fall in the predictive tails far more often than 5 %."""
    y = counts(negbin(2.0, 0.5), seed=3)
    out = loo_pit_summary(stand_in(y, **fit), seed=4)
    assert out["ks_p_value"] < 1e-6
    assert out["share_below_0.05"] > 0.1 and out["share_above_0.95"] > 0.1


def test_too_much_dispersion_fails():
    y = counts(stats.poisson(5.0), seed=5)
    out = loo_pit_summary(stand_in(y, mu=5.0, alpha=1.0), seed=6)
    assert out["ks_p_value"] < 1e-6
    assert out["share_below_0.05"] < 0.02 and out["share_above_0.95"] < 0.02


def test_the_values_depend_only_on_the_generator_passed_in():
    dist, fit = CALIBRATED["negative binomial, mean 2"]
    idata = stand_in(counts(dist, seed=1), **fit)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = loo_pit_values(idata, np.random.default_rng(7))
    assert np.array_equal(np.random.get_state()[1], state)  # the global RNG is untouched
    assert np.array_equal(a, loo_pit_values(idata, np.random.default_rng(7)))
    assert not np.array_equal(a, loo_pit_values(idata, np.random.default_rng(8)))
    assert a.shape == (N,) and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, loo_pit_values(idata, np.random.default_rng(7), block=7))  # memory blocks
    # the summary with a seed is the summary of the values of that seed
    assert loo_pit_summary(idata, seed=7) == loo_pit_summary(idata, pit=a)


def test_continuous_outcomes_keep_the_usual_loo_pit():
    """No ties: the generator changes nothing, and the values are ArviZ's LOO-PIT."""
    rng = np.random.default_rng(9)
    y = rng.normal(1.0, 2.0, N)
    mu = 1.0 + rng.normal(0, 0.1, (CHAINS, DRAWS, 1))
    idata = az.from_dict({"posterior": {"mu": mu[..., 0]},
                          "log_likelihood": {"y": stats.norm(mu, 2.0).logpdf(y)},
                          "posterior_predictive": {"y": rng.normal(mu, 2.0, (CHAINS, DRAWS, N))},
                          "observed_data": {"y": y}}, dims={"y": ["obs"]})
    a = loo_pit_values(idata, np.random.default_rng(0))
    assert np.array_equal(a, loo_pit_values(idata, np.random.default_rng(1)))
    reference = az.loo_pit(idata, var_names="y")["y"].values
    np.testing.assert_allclose(a, reference, atol=1e-12)
    assert loo_pit_summary(idata, pit=a)["ks_p_value"] > 0.01
