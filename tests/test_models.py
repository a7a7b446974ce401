import numpy as np
import pandas as pd
import pytest

from hbm.models import build_model, level_data, resolve_priors

DF = pd.DataFrame({
    "school": ["a", "a", "b", "b", "c", "c"], "district": ["d1", "d1", "d1", "d1", "d2", "d2"],
    "region": ["r", "r", "r", "r", "r", "r"], "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "x": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], "u": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3], "s": [1.0] * 6,
})


def free(model):
    return sorted(v.name for v in model.free_RVs)


def test_level_data_indices_and_parents(spec):
    d = level_data(DF, spec(level="school", column="school", parents=["district", "region"]))
    assert d.groups == ["a", "b", "c"]
    assert d.group_idx.tolist() == [0, 0, 1, 1, 2, 2]
    assert [layer.column for layer in d.layers] == ["school", "district", "region"]
    assert d.layers[0].up.tolist() == [0, 0, 1]  # a, b in d1; c in d2
    assert d.layers[1].up.tolist() == [0, 0]
    assert d.layers[2].up is None


def test_a_parent_layer_whose_every_unit_has_one_child_is_left_out(spec):
    """Three schools, each in a district of its own: the district layer says nothing the school layer does
    not (their sds would trade off), so the model pools schools directly within the region."""
    df = DF.assign(district=DF["school"].map({"a": "d1", "b": "d2", "c": "d3"}),
                   region=DF["school"].map({"a": "r1", "b": "r1", "c": "r2"}))
    s = spec(level="school", column="school", parents=["district", "region"])
    d = level_data(df, s)
    assert [layer.column for layer in d.layers] == ["school", "region"] and d.dropped == ["district"]
    assert d.layers[0].up.tolist() == [0, 0, 1] and "district" not in d.coords
    m = build_model(d, s)
    assert "tau_district" not in m.named_vars and "tau_region" in m.named_vars
    # new rows keep the fitted layers; one district with two schools keeps the layer
    assert [layer.column for layer in level_data(df.head(2), s, like=d).layers] == ["school", "region"]
    assert level_data(DF, s).dropped == []


def test_noncentered_normal_with_group_sd(spec):
    s = spec(level="school", column="school")
    m = build_model(level_data(DF, s), s)
    assert free(m) == ["mu", "sigma", "tau", "theta_offset"]
    assert m.named_vars_to_dims["theta"] == ("school",)
    assert m.named_vars_to_dims["y"] == ("obs_id",)


def test_centered_has_no_offset(spec):
    s = spec(level="school", column="school", parametrization="centered", noise="shared")
    m = build_model(level_data(DF, s), s)
    assert free(m) == ["mu", "sigma", "tau", "theta"]


def test_parent_layers_covariates_predictors_known_sd(spec):
    s = spec(level="school", column="school", parents=["district"], covariates=["x"], predictors=["u"],
             noise="known", measurement_sd="s")
    m = build_model(level_data(DF, s), s)
    assert free(m) == ["beta", "gamma", "mu", "tau", "tau_district", "theta_district_offset", "theta_offset"]
    assert m.named_vars_to_dims["theta_district"] == ("district",)
    assert m.named_vars_to_dims["beta"] == ("covariate",)
    assert m.named_vars_to_dims["gamma"] == ("predictor",)


def test_variance_prior_makes_sq_variable(spec):
    s = spec(level="school", column="school", priors={"tau": {"dist": "invgamma", "alpha": 2, "beta": 40,
                                                               "param": "variance"}})
    m = build_model(level_data(DF, s), s)
    assert "tau_sq" in free(m) and "tau" in m.named_vars


def test_logp_matches_hand_computation(spec):
    """The model's log density equals the formula it documents (centered, shared sd)."""
    from scipy import stats

    s = spec(level="school", column="school", parametrization="centered", noise="shared",
             priors={"mu": {"dist": "normal", "mu": 0, "sigma": 10}, "tau": {"dist": "halfnormal", "sigma": 2},
                     "sigma": {"dist": "halfnormal", "sigma": 3}})
    m = build_model(level_data(DF, s), s)
    point = {"mu": 1.0, "tau_log__": np.log(0.5), "theta": np.array([1.5, 3.5, 5.5]), "sigma_log__": np.log(0.7)}
    theta = point["theta"][[0, 0, 1, 1, 2, 2]]
    expected = (stats.norm(0, 10).logpdf(1.0) + stats.halfnorm(scale=2).logpdf(0.5) + np.log(0.5)
                + stats.norm(1.0, 0.5).logpdf(point["theta"]).sum() + stats.halfnorm(scale=3).logpdf(0.7)
                + np.log(0.7) + stats.norm(theta, 0.7).logpdf(DF["y"]).sum())
    assert float(m.compile_logp()(point)) == pytest.approx(expected, rel=1e-9)


def test_covariates_are_centred_on_the_fitted_rows_and_new_rows_take_their_means(spec):
    """theta is each group's mean at the average covariates: the likelihood is y ~ Normal(theta_g + (x - mean x)
    . beta, sigma), the same model as theta_g - mean x . beta at x = 0, so intercepts and slopes do not trade off
    through rows that all share x = 0 (M5's Mondays)."""
    from scipy import stats

    s = spec(level="school", column="school", covariates=["x"], parametrization="centered", noise="shared",
             priors={"mu": {"dist": "normal", "mu": 0, "sigma": 10}, "tau": {"dist": "halfnormal", "sigma": 2},
                     "sigma": {"dist": "halfnormal", "sigma": 3}, "beta": {"dist": "normal", "mu": 0, "sigma": 5}})
    df = DF.assign(x=[0.0, 1.0, 0.0, 0.0, 0.0, 1.0])  # mean 1/3
    d = level_data(df, s)
    np.testing.assert_allclose(d.X[:, 0], df["x"] - 1 / 3)
    assert d.reference["covariate_means"] == [pytest.approx(1 / 3)]
    new = level_data(df.iloc[[1]].assign(x=2.0), s, like=d)  # new rows: the fitted rows' mean, not their own
    np.testing.assert_allclose(new.X[:, 0], [2.0 - 1 / 3])
    m = build_model(d, s)
    point = {"mu": 1.0, "tau_log__": np.log(0.5), "theta": np.array([1.5, 3.5, 5.5]), "sigma_log__": np.log(0.7),
             "beta": np.array([0.8])}
    mean = point["theta"][[0, 0, 1, 1, 2, 2]] + 0.8 * (df["x"].to_numpy() - 1 / 3)
    expected = (stats.norm(0, 10).logpdf(1.0) + stats.halfnorm(scale=2).logpdf(0.5) + np.log(0.5)
                + stats.norm(1.0, 0.5).logpdf(point["theta"]).sum() + stats.halfnorm(scale=3).logpdf(0.7)
                + np.log(0.7) + stats.norm(0, 5).logpdf(0.8) + stats.norm(mean, 0.7).logpdf(df["y"]).sum())
    assert float(m.compile_logp()(point)) == pytest.approx(expected, rel=1e-8)


def test_default_priors_scale_with_data(spec):
    s = spec(level="school", column="school", covariates=["x"])
    big = DF.assign(y=DF["y"] * 1e6)
    p1 = resolve_priors(s, level_data(DF, s))
    p2 = resolve_priors(s, level_data(big, s))
    assert p2["tau"]["sigma"] == pytest.approx(p1["tau"]["sigma"] * 1e6, rel=1e-3)
    assert p2["mu"]["mu"] == pytest.approx(3.5e6)
    assert p1["beta"]["sigma"] == [pytest.approx(2.5 * np.std(DF["y"]) / 0.5, rel=1e-3)]
    assert all(p["source"] == "default" for p in p1.values())


def test_config_priors_win(spec):
    s = spec(level="school", column="school", priors={"mu": {"dist": "normal", "mu": 0, "sigma": 5}})
    p = resolve_priors(s, level_data(DF, s))
    assert p["mu"] == {"dist": "normal", "mu": 0, "sigma": 5, "source": "config"}


# Count families
WEEKS = pd.DataFrame({
    "product": ["p1"] * 4 + ["p2"] * 4 + ["p3"] * 4, "category": ["c1"] * 8 + ["c2"] * 4,
    "_period": [0, 1, 2, 3] * 3, "units": [3.0, 5, 4, 6, 10, 12, 9, 11, 0, 1, 2, 1],
    "price": [1.0, 1.0, 2.0, 2.0] * 3, "promo": [0.0, 1, 0, 0] * 3,
})


def count_spec(spec, family="negative_binomial", parametrization="noncentered", trend=True, season=True):
    s = spec(level="product", column="product", target="units", parents=["category"],
             parametrization=parametrization)
    s["columns"].update(time="week", price="price", promotion="promo")
    s["model"].update(family=family, trend={"per": 2.0} if trend else None,
                      seasonality={"period": 4.0, "order": 1} if season else None)
    return s


def test_fourier_terms():
    from hbm.models import fourier_terms

    F, names = fourier_terms(np.array([0, 1, 2]), 4.0, 2)
    assert names == ["sin_1", "cos_1", "sin_2", "cos_2"]
    np.testing.assert_allclose(F, [[0, 1, 0, 1], [1, 0, 0, -1], [0, -1, 0, 1]], atol=1e-12)


def test_count_inputs_are_centred(spec):
    s = count_spec(spec)
    d = level_data(WEEKS, s)
    np.testing.assert_allclose(d.u, (WEEKS["_period"] - 1.5) / 2.0)  # centred on the middle, per 2 periods
    mean_log = np.log([1.0, 1.0, 2.0, 2.0]).mean()
    np.testing.assert_allclose(d.log_price, np.log(WEEKS["price"]) - mean_log)
    future = WEEKS.iloc[[0, 4]].assign(_period=[10, 10], price=[2.0, 2.0])
    f = level_data(future, s, like=d)  # new rows are scaled like the fitted data
    np.testing.assert_allclose(f.u, (10 - 1.5) / 2.0)
    np.testing.assert_allclose(f.log_price, np.log(2.0) - mean_log)
    assert f.group_idx.tolist() == [0, 1] and f.groups == d.groups
    with pytest.raises(ValueError, match="'p9' is not a unit of the fitted model"):
        level_data(WEEKS.iloc[[0]].assign(product="p9"), s, like=d)


def test_count_model_variables_and_dims(spec):
    s = count_spec(spec, parametrization={"intercept": "centered", "trend": "centered"})
    m = build_model(level_data(WEEKS, s), s)
    assert free(m) == sorted([
        "mu", "tau", "tau_category", "theta_category_offset", "theta",  # intercept: centered units
        "trend_mu", "trend_tau", "trend_tau_category", "trend_category_offset", "trend",
        "season_mu", "season_tau", "season_tau_category", "season_category_offset", "season_offset",
        "elasticity", "promo_lift", "alpha_inv_sqrt"])
    assert m.named_vars_to_dims["season"] == ("product", "fourier")
    assert m.named_vars_to_dims["season_category"] == ("category", "fourier")
    assert m.named_vars_to_dims["season_mu"] == ("fourier",)
    assert m.named_vars_to_dims["y"] == ("obs_id",)


def test_top_layer_deviations_sum_to_zero(spec):
    """mu is the mean of the category effects, so it cannot trade off against them (identification)."""
    s = count_spec(spec)
    m = build_model(level_data(WEEKS, s), s)
    point = m.initial_point(random_seed=3)
    point = {k: np.random.default_rng(1).normal(size=np.shape(v)) for k, v in point.items()}
    names = ["mu", "theta_category", "season_mu", "season_category"]
    mu, cat, smu, scat = m.compile_fn([m[n] for n in names], inputs=m.value_vars, on_unused_input="ignore")(point)
    assert cat.mean() == pytest.approx(mu, abs=1e-12)
    np.testing.assert_allclose(scat.mean(axis=0), smu, atol=1e-12)


def test_poisson_logp_matches_hand_computation(spec):
    import pytensor.tensor as pt
    from scipy import stats

    s = count_spec(spec, family="poisson", parametrization="centered", trend=False, season=False)
    s["hierarchy"]["parents"] = []
    s["model"]["priors"] = {"mu": {"dist": "normal", "mu": 1, "sigma": 1}, "tau": {"dist": "halfnormal", "sigma": 1},
                            "elasticity": {"dist": "normal", "mu": -1, "sigma": 1},
                            "promotion": {"dist": "normal", "mu": 0, "sigma": 1}}
    d = level_data(WEEKS, s)
    m = build_model(d, s)
    full = np.array([0.2, -0.5, 0.3])  # zero-sum deviations of the 3 products
    forward = m.rvs_to_transforms[m["theta_dev"]].forward
    point = {"mu": 1.5, "tau_log__": np.log(0.8), "theta_dev_zerosum__": forward(pt.as_tensor(full)).eval(), "elasticity": -1.2,
             "promo_lift": 0.3}
    theta = 1.5 + full
    eta = theta[d.group_idx] - 1.2 * d.log_price + 0.3 * d.promo
    n = 3  # pm.ZeroSumNormal(sigma) has density N(0, sigma) on the n-1 free coordinates of an orthonormal basis
    zs = stats.norm(0, 0.8).logpdf(full).sum() + 0.5 * np.log(2 * np.pi * 0.8**2)
    expected = (stats.norm(1, 1).logpdf(1.5) + stats.halfnorm(scale=1).logpdf(0.8) + np.log(0.8) + zs
                + stats.norm(-1, 1).logpdf(-1.2) + stats.norm(0, 1).logpdf(0.3)
                + stats.poisson(np.exp(eta)).logpmf(WEEKS["units"]).sum())
    assert n == len(d.groups)
    assert float(m.compile_logp()(point)) == pytest.approx(expected, rel=1e-9)


def test_count_default_priors(spec):
    s = count_spec(spec)
    p = resolve_priors(s, level_data(WEEKS, s))
    unit_log_means = np.log(WEEKS.groupby(s["hierarchy"]["column"])["units"].mean())
    assert p["mu"] == {"dist": "normal", "mu": pytest.approx(np.median(unit_log_means), rel=1e-3),
                       "sigma": 1.0, "source": "default"}
    assert p["elasticity"]["mu"] == -1.0 and p["dispersion"]["dist"] == "halfnormal"


def test_count_intercept_prior_is_robust_to_a_few_large_units(spec):
    """Five large units among 40 (as Stallion's large SKUs): the prior centre follows the typical unit, not
    the overall mean they dominate."""
    rows = [{"product": f"p{j:02d}", "category": "c1", "_period": t, "units": (5000.0 if j < 5 else 30.0),
             "price": 1.0, "promo": 0.0} for j in range(40) for t in range(4)]
    df = pd.DataFrame(rows)
    s = count_spec(spec)
    p = resolve_priors(s, level_data(df, s))
    assert p["mu"]["mu"] == pytest.approx(np.log(30), rel=1e-3)
    assert np.log(df["units"].mean()) - p["mu"]["mu"] > 2  # the old centre, log mean(y), was 2+ prior sds off


def test_count_slope_prior_keeps_an_indicator_within_a_factor_e2_at_two_sds(spec):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"product": np.repeat(["a", "b"], 50), "category": "c1", "_period": np.tile(np.arange(50), 2),
                       "price": 1.0, "promo": 0.0,
                       "units": rng.poisson(20, 100).astype(float), "flag": (rng.random(100) < 0.5).astype(float),
                       "rare": (np.arange(100) % 30 == 0).astype(float), "temp": rng.normal(15, 5, 100)})
    s = count_spec(spec)
    s["columns"]["covariates"] = ["flag", "rare", "temp"]
    sd = resolve_priors(s, level_data(df, s))["beta"]["sigma"]
    assert 0.95 < sd[0] < 1.1  # 0/1 with p ~ 0.5: 1 / max(2 sd, 1 / 2), sd about 0.5
    assert sd[1] == pytest.approx(2.0, rel=1e-3)  # a rare indicator: limited by its range, 1 / (1 / 2)
    for j, col in enumerate(["flag", "rare", "temp"]):
        x = df[col]
        # two prior sds over two sds of x, and one prior sd over x's whole range: a factor of at most e^2
        assert 2 * sd[j] * 2 * x.std(ddof=0) <= 2.0 + 1e-3 and sd[j] * (x.max() - x.min()) <= 2.0 + 1e-3


def test_new_rows_keep_every_units_group_level_predictors(spec):
    s = spec(level="school", column="school", predictors=["u"])
    d = level_data(DF, s)
    only_c = level_data(DF.iloc[[4]], s, like=d)  # a forecast frame where units a and b have no rows
    np.testing.assert_array_equal(only_c.Z, d.Z)
    assert only_c.group_idx.tolist() == [2]


# Pooling variants (hbm.pooling): complete and no pooling besides the default partial pooling
def _values(model, names, point):
    fn = model.compile_fn([model[n] for n in names], inputs=model.value_vars, on_unused_input="ignore")
    return fn(point)


def test_complete_pooling_shares_the_population_mean(spec):
    s = {**spec(level="school", column="school", parents=["district"], covariates=["x"], predictors=["u"]),
         "pooling": "complete"}
    d = level_data(DF, s)
    m = build_model(d, s)
    assert free(m) == ["beta", "gamma", "mu", "sigma"]  # no tau, no parent layer
    point = {k: np.random.default_rng(2).normal(size=np.shape(v)) for k, v in m.initial_point().items()}
    theta, mu, gamma = _values(m, ["theta", "mu", "gamma"], point)
    np.testing.assert_allclose(theta, mu + d.Z @ gamma, atol=1e-12)  # theta_j = mu + Z_j gamma
    s.update(hierarchy={**s["hierarchy"], "predictors": []})
    m = build_model(level_data(DF, s), s)
    theta, mu = _values(m, ["theta", "mu"], m.initial_point(random_seed=1))
    np.testing.assert_allclose(theta, [mu] * 3)


def test_no_pooling_gives_each_group_mu_s_prior(spec):
    """theta_j independent with mu's prior: the log density is the sum of the groups' own terms."""
    from scipy import stats

    priors = {"mu": {"dist": "normal", "mu": 2.0, "sigma": 10.0}, "sigma": {"dist": "halfnormal", "sigma": 3.0}}
    s = {**spec(level="school", column="school", parents=["district"], predictors=["u"], noise="shared",
                priors=priors), "pooling": "none"}
    m = build_model(level_data(DF, s), s)
    assert free(m) == ["sigma", "theta"]  # no mu, tau, parents or group-level predictors
    theta = np.array([1.5, 3.5, 5.5])
    point = {"theta": theta, "sigma_log__": np.log(0.7)}
    expected = (stats.norm(2, 10).logpdf(theta).sum() + stats.halfnorm(scale=3).logpdf(0.7) + np.log(0.7)
                + stats.norm(theta[[0, 0, 1, 1, 2, 2]], 0.7).logpdf(DF["y"]).sum())
    # rel 1e-7: PyTensor keeps a prior's exactly representable constants (10.0, 3.0) in float32
    assert float(m.compile_logp()(point)) == pytest.approx(expected, rel=1e-7)


def test_count_pooling_variants(spec):
    s = count_spec(spec)
    d = level_data(WEEKS, s)
    complete = build_model(d, {**s, "pooling": "complete"})
    assert free(complete) == ["alpha_inv_sqrt", "elasticity", "mu", "promo_lift", "season_mu", "trend_mu"]
    point = {k: np.random.default_rng(4).normal(size=np.shape(v)) for k, v in complete.initial_point().items()}
    theta, trend, season, mu, trend_mu, season_mu = _values(
        complete, ["theta", "trend", "season", "mu", "trend_mu", "season_mu"], point)
    np.testing.assert_allclose(theta, [mu] * 3)
    np.testing.assert_allclose(trend, [trend_mu] * 3)
    np.testing.assert_allclose(season, np.tile(season_mu, (3, 1)))
    none = build_model(d, {**s, "pooling": "none"})
    assert free(none) == ["alpha_inv_sqrt", "elasticity", "promo_lift", "season", "theta", "trend"]
    assert none.named_vars_to_dims["season"] == ("product", "fourier")
    assert none.named_vars_to_dims["trend"] == ("product",)
    priors = resolve_priors(s, d)  # the population means' priors, per unit
    for name, prior in (("theta", priors["mu"]), ("trend", priors["trend"]), ("season", priors["season"])):
        dist = none[name].owner.op
        assert type(dist).__name__ == "NormalRV", name
        loc, scale = (np.unique(p.eval()).item() for p in none[name].owner.inputs[-2:])
        assert (loc, scale) == (pytest.approx(prior["mu"]), pytest.approx(prior["sigma"])), name


def test_partial_pooling_is_the_default_and_unchanged(spec):
    s = count_spec(spec)
    d = level_data(WEEKS, s)
    default, partial = build_model(d, s), build_model(d, {**s, "pooling": "partial"})
    assert free(default) == free(partial) and "tau" in free(default)
    point = default.initial_point(random_seed=5)
    assert float(default.compile_logp()(point)) == float(partial.compile_logp()(point))
    with pytest.raises(ValueError, match="pooling 'some' is not one of"):
        build_model(d, {**s, "pooling": "some"})
