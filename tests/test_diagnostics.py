import numpy as np
import pytest
import xarray as xr

from hbm import diagnostics
from hbm.errors import DiagnosticsError

THRESHOLDS = {"r_hat": 1.01, "ess_per_chain": 100, "divergences": 0, "ebfmi": 0.3}


def idata(shift=0.0, divergent=0, seed=0, chains=4, draws=1000, edit_theta=None):
    import arviz as az

    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(chains, draws)) + shift * np.arange(chains)[:, None]
    theta = rng.normal(size=(chains, draws, 3))
    if edit_theta:
        edit_theta(theta)
    div = np.zeros((chains, draws), dtype=bool)
    div.flat[:divergent] = True
    energy = rng.normal(size=(chains, draws)).cumsum(axis=1) * 0.05 + rng.normal(size=(chains, draws))
    return az.from_dict(
        {"posterior": {"mu": mu, "theta": theta},
         "sample_stats": {"diverging": div, "energy": energy, "maxdepth_reached": np.zeros((chains, draws), bool)}},
        coords={"school": ["a", "b", "c"]}, dims={"theta": ["school"]},
    )


def test_independent_chains_pass():
    d = diagnostics.compute(idata(), THRESHOLDS)
    assert d["passed"], diagnostics.failures(d)
    assert d["chains"] == 4 and d["draws"] == 1000
    rhat = next(c for c in d["checks"] if c["name"] == "r_hat")
    assert rhat["value"] < 1.01
    assert d["tree_depth_hits"] == 0


def test_chains_that_disagree_fail_r_hat_and_name_the_variable():
    d = diagnostics.compute(idata(shift=1.0), THRESHOLDS)
    assert not d["passed"]
    lines = diagnostics.failures(d)
    assert any(line.startswith("max R-hat") and "(mu)" in line and "> 1.01" in line for line in lines)


def test_divergences_are_counted():
    d = diagnostics.compute(idata(divergent=3), THRESHOLDS)
    assert any(line.startswith("divergent transitions 3") and line.endswith("> 0") for line in diagnostics.failures(d))


def test_divergences_are_located_where_they_concentrate():
    """A funnel diverges where its sd is small: divergent draws at the lowest values of tau are located
    there; the same number placed at random are not located anywhere."""
    rng = np.random.default_rng(3)
    tau = rng.lognormal(size=(4, 500))
    post = xr.Dataset({"tau": (("chain", "draw"), tau), "mu": (("chain", "draw"), rng.normal(size=(4, 500)))})
    low = tau <= np.sort(tau.ravel())[5]  # the 6 smallest values of tau
    assert diagnostics.divergences_at(post, low) == ("tau", "low")
    assert diagnostics.divergences_at(post, tau >= np.sort(tau.ravel())[-6]) == ("tau", "high")
    assert diagnostics.divergences_at(post, np.zeros_like(low)) == ("", "")
    found = [diagnostics.divergences_at(post, rng.permutation(low.ravel()).reshape(low.shape))[0] for _ in range(50)]
    assert found.count("") >= 45  # 2.5 standard errors over 2 variables: a false alarm in about 2 % of fits


def test_ess_threshold_is_per_chain():
    d = diagnostics.compute(idata(draws=60), THRESHOLDS)  # 240 draws cannot reach 400 ESS
    bulk = next(c for c in d["checks"] if c["name"] == "ess_bulk")
    assert bulk["threshold"] == 400 and not bulk["passed"]


def test_elements_constant_by_construction_are_left_out_but_a_varying_one_still_counts():
    """A vector with one element fixed at zero (a series alone in its group has no level steps): the others'
    R-hat and ESS decide; when a varying element mixes badly, it is still named."""
    def fixed(theta):
        theta[..., 1] = 0.0

    def fixed_and_split(theta):
        fixed(theta)
        theta[..., 2] += np.arange(4)[:, None]  # chains that disagree on school c

    d = diagnostics.compute(idata(edit_theta=fixed), THRESHOLDS)
    assert d["passed"], diagnostics.failures(d)
    d = diagnostics.compute(idata(edit_theta=fixed_and_split), THRESHOLDS)
    assert any(line.startswith("max R-hat") and "(theta[c])" in line for line in diagnostics.failures(d))


def test_nan_is_never_a_pass():
    assert not diagnostics._check("r_hat", "max R-hat", float("nan"), "<=", 1.01, "x")["passed"]


def test_require_passed_stops_only_when_asked():
    d = diagnostics.compute(idata(divergent=2), THRESHOLDS)
    diagnostics.require_passed(d, "flag", "fits/x/diagnostics.json")
    with pytest.raises(DiagnosticsError, match=r"fits/x/diagnostics.json: the fit failed .*divergent transitions 2 > 0"):
        diagnostics.require_passed(d, "stop", "fits/x/diagnostics.json")


def test_chance_level_of_the_largest_r_hat_matches_simulated_chains():
    """Known truth: independent AR(1) chains (lag-1 autocorrelation 0.5, autocorrelation time 3) that mix
    perfectly, 200 parameters, 2 chains of 400 draws (benchmarks/rhat_max.py). The median of the largest
    R-hat over repetitions is near the formula's; chains as long as draws_for_r_hat asks for keep the
    largest R-hat below 1.01 in most repetitions, where the shorter ones never do."""
    from benchmarks.rhat_max import table

    short, sized = diagnostics.chance_r_hat(200, 2, 400, 3.0), diagnostics.draws_for_r_hat(200, 2, 3.0, 1.01)
    rows = table(200, [2], [400, sized], rho=0.5, repetitions=12, seed=3)
    assert abs(rows[0]["median_largest_rhat"] - short) < 0.004
    assert rows[0]["share_above"] == 1.0 and rows[1]["share_above"] <= 0.35


def test_diagnostics_count_the_parameters_and_their_typical_ess():
    d = diagnostics.compute(idata(), THRESHOLDS)
    assert d["parameters"] == 4  # mu and theta[a..c]
    assert 0.5 * 4000 < d["r_hat_ess"] < 2 * 4000  # independent draws
    assert 1.0 < d["r_hat_chance"] < 1.01
