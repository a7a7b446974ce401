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
