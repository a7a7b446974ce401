"""The automatic parametrization (hbm.parametrization) against shapes with known answers, and the mixed
vector it builds (hbm.models)."""

import numpy as np
import pandas as pd
import pytest

from conftest import make_spec
from hbm.models import build_model, level_data
from hbm.parametrization import decide, summary


def normal_groups(sizes, tau, sigma=1.0, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, tau, len(sizes))
    rows = [{"group": f"g{j:03d}", "y": m + rng.normal(0.0, sigma)} for j, (n, m) in enumerate(zip(sizes, means))
            for _ in range(n)]
    return pd.DataFrame(rows)


def centered(df, **spec_kw):
    spec = make_spec(parametrization="auto", **spec_kw)
    data = level_data(df, spec)
    return np.array(decide(data, spec)["intercept"]["layers"][0]["centered"]), data, spec


def test_groups_with_plenty_of_data_and_a_wide_spread_are_centered():
    c, *_ = centered(normal_groups([50] * 6, tau=3.0))
    assert c.all()  # I_j tau^2 = 50 * 9: the data dominate every group


def test_groups_with_one_value_each_and_a_narrow_spread_are_noncentered():
    c, *_ = centered(normal_groups([1] * 30, tau=0.2))
    assert not c.any()  # I_j tau^2 about 0.04: the prior dominates


def test_known_measurement_sds_decide_like_eight_schools():
    y = [28, 8, -3, 7, -1, 1, 18, 12]
    sd = [15, 10, 16, 11, 9, 11, 10, 18]
    df = pd.DataFrame({"group": list("ABCDEFGH"), "y": y, "sd": sd})
    c, *_ = centered(df, noise="known", measurement_sd="sd")
    assert not c.any()  # the textbook case for non-centering


def test_a_vector_mixes_where_groups_differ_in_how_much_data_they_have():
    sizes = [200] * 5 + [1] * 25
    c, data, spec = centered(normal_groups(sizes, tau=0.5, seed=3))
    assert c[:5].all() and not c[5:].any()  # I_j tau^2: 200 * 0.25 = 50 vs 1 * 0.25
    s = summary(decide(data, spec), data)["intercept"]["layers"][0]
    assert (s["centered"], s["noncentered"]) == (5, 25) and s["ratio_max"] > 1 > s["ratio_min"]


def test_the_mixed_model_has_one_raw_variable_with_the_matching_prior_per_element():
    sizes = [200] * 5 + [1] * 25
    c, data, spec = centered(normal_groups(sizes, tau=0.5, seed=3), noise="shared")
    assert c.any() and not c.all()
    model = build_model(data, spec)
    names = {v.name for v in model.free_RVs}
    assert "theta_raw" in names and "theta_offset" not in names
    # at raw = 0 with mu = 0 and tau = 1: centered elements are theta = 0, the others theta = mu + tau * 0
    point = model.initial_point()
    point = {k: np.zeros_like(v) for k, v in point.items()}
    theta_of_values = model.replace_rvs_by_values([model["theta"]])[0]
    theta = model.compile_fn(theta_of_values, inputs=model.value_vars, on_unused_input="ignore")(point)
    assert np.allclose(theta, 0.0)
    # the prior of each raw element: Normal(mu, tau) where centered, Normal(0, 1) where not
    point["tau_log__"] = np.log(2.0)
    point["theta_raw"] = np.ones(30)
    logp = model.compile_fn(model.logp(vars=[model["theta_raw"]], sum=False)[0], inputs=model.value_vars,
                            on_unused_input="ignore")(point)
    from scipy import stats
    expected = np.where(c, stats.norm(0, 2).logpdf(1.0), stats.norm(0, 1).logpdf(1.0))
    assert np.allclose(logp, expected)


def test_explicit_choices_override_auto_for_the_fitted_level_and_parents_stay_noncentered():
    df = normal_groups([50] * 6, tau=3.0)
    df["region"] = np.where(df["group"] < "g003", "r1", "r2")
    spec = make_spec(parametrization={"intercept": "noncentered"}, parents=["region"])
    data = level_data(df, spec)
    d = decide(data, spec)["intercept"]
    assert d["mode"] == "noncentered" and d["layers"][0]["centered"] == [False] * 6
    assert d["layers"][1]["centered"] == [False, False]


def count_table(products, per_category, weeks, level_mean, tau, seed=0, cats=None):
    rng = np.random.default_rng(seed)
    cats = rng.normal(0, 1.0, products // per_category) if cats is None else np.asarray(cats)
    rows = []
    for p in range(products):
        c = p // per_category
        a = np.log(level_mean) + cats[c] + rng.normal(0, tau)
        for t in range(weeks):
            rows.append({"product": f"p{p:03d}", "category": f"c{c}", "period": t,
                         "units": rng.negative_binomial(20, 20 / (20 + np.exp(a)))})
    return pd.DataFrame(rows)


def count_spec(parents=("category",)):
    spec = make_spec(level="product", column="product", target="units", parametrization="auto", parents=parents)
    spec["model"].update(family="negative_binomial", trend=None, seasonality=None)
    spec["columns"].update(time=None, price=None, promotion=None)
    return spec


def test_count_units_with_large_sales_center_their_intercepts_and_well_informed_parents_too():
    # 3 categories a log unit apart, each informed by 20 products (their means known to about tau / sqrt(20))
    df = count_table(products=60, per_category=20, weeks=52, level_mean=200, tau=0.5, cats=[-1.0, 0.0, 1.0])
    spec = count_spec()
    data = level_data(df, spec)
    layers = decide(data, spec)["intercept"]["layers"]
    assert all(layers[0]["centered"])  # sum of weights ~ 52 * 19: far above 1 / tau^2
    assert all(layers[1]["centered"])  # centered, not forced non-centered as parent layers were before


def test_parents_whose_spread_their_childrens_noise_could_make_are_noncentered():
    # 3 categories with the same mean: the products' spread (tau 0.5, 20 each) alone moves a category's mean
    # by about 0.11, so the categories' tau may be near 0, where the centered form is a funnel
    df = count_table(products=60, per_category=20, weeks=52, level_mean=200, tau=0.5, cats=[0.0, 0.0, 0.0])
    spec = count_spec()
    data = level_data(df, spec)
    layer = decide(data, spec)["intercept"]["layers"][1]
    assert layer["tau_low"] == 0.0 and not any(layer["centered"])


@pytest.mark.parametrize("seed", [0, 1])
def test_parents_of_a_few_children_each_are_noncentered_even_when_the_children_are_well_informed(seed):
    # 3 categories a log unit apart with 3 products each (about 200 units a week): the products' spread
    # around their category is estimated from 6 degrees of freedom, so a category's value, known through
    # its 3 products, is uncertain too. Its information is taken at the spread's upper bound (tau_high);
    # at the point estimate these categories were centered, as retail_demand's 3 regions of 2-3 stores,
    # whose bottom model then failed 3 attempts of 3.
    df = count_table(products=9, per_category=3, weeks=52, level_mean=200, tau=0.5, seed=seed, cats=[-1.0, 0.0, 1.0])
    spec = count_spec()
    layers = decide(level_data(df, spec), spec)["intercept"]["layers"]
    assert all(layers[0]["centered"]) and not any(layers[1]["centered"])


def test_sparse_counts_with_little_spread_are_noncentered():
    df = count_table(products=40, per_category=40, weeks=3, level_mean=0.3, tau=0.05, seed=1)
    spec = count_spec(parents=())
    data = level_data(df, spec)
    assert not any(decide(data, spec)["intercept"]["layers"][0]["centered"])


@pytest.mark.slow
def test_the_mixed_parametrization_gives_the_centered_posterior():
    """Same model, same data: the mixed vector's posterior of theta matches the all-centered one's within
    Monte Carlo error."""
    from hbm.fit import sample

    df = normal_groups([100] * 10 + [1] * 20, tau=0.5, seed=5)
    inference = {"sampler": "nutpie", "chains": 2, "draws": 2000, "tune": 1000, "target_accept": 0.95}
    means = {}
    for mode in ("auto", "centered"):
        spec = make_spec(parametrization=mode, noise="shared")
        data = level_data(df, spec)
        if mode == "auto":
            c = decide(data, spec)["intercept"]["layers"][0]["centered"]
            assert any(c) and not all(c)
        idata = sample(build_model(data, spec), inference, seed=3)
        theta = idata.posterior["theta"]
        means[mode] = (theta.mean(("chain", "draw")).values, theta.std(("chain", "draw")).values)
    (m_a, s_a), (m_c, s_c) = means["auto"], means["centered"]
    assert np.all(np.abs(m_a - m_c) < 0.15 * s_c + 0.02), (m_a, m_c, s_c)


def test_tau_low_is_the_chi2_bound_for_exact_estimates_and_0_for_a_spread_the_noise_makes():
    from scipy import stats

    from hbm.parametrization import tau_low

    est = np.random.default_rng(1).normal(0.0, 2.0, 12)
    ss = np.sum((est - est.mean()) ** 2)
    exact = np.sqrt(ss / stats.chi2.ppf(0.9, 11))  # tau_hat^2 (K - 1) / chi2_{K-1}(0.9)
    assert tau_low(est, np.full(12, 1e12)) == pytest.approx(exact, rel=1e-6)
    # each estimate's own sd 4: a spread of sd 2 is what noise alone makes
    assert tau_low(est, np.full(12, 1 / 16)) == 0.0
    # with some noise the bound lies between 0 and the exact one
    assert 0.0 < tau_low(est, np.full(12, 4.0)) < exact


def test_tau_high_is_the_upper_chi2_bound_for_exact_estimates():
    from scipy import stats

    from hbm.parametrization import tau_high

    est = np.random.default_rng(1).normal(0.0, 2.0, 12)
    ss = np.sum((est - est.mean()) ** 2)
    assert tau_high(est, np.full(12, 1e12)) == pytest.approx(np.sqrt(ss / stats.chi2.ppf(0.1, 11)), rel=1e-6)
    # 3 exact groups: tau's upper bound is 3.2 times its estimate (2 degrees of freedom)
    three = np.array([-0.5, 0.1, 0.6])
    assert tau_high(three, np.full(3, 1e12)) / np.std(three, ddof=1) == pytest.approx(np.sqrt(2 / stats.chi2.ppf(0.1, 2)))
