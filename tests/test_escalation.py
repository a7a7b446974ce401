"""The escalation ladder of hbm.fit: known settings attempt by attempt, every attempt recorded."""

import pytest

from hbm import fit
from hbm.seeds import derive_seed

BASE = {"sampler": "nutpie", "chains": 2, "draws": 500, "tune": 400, "target_accept": 0.9, "max_attempts": 3}


def diag(*failed, divergences=1):
    names = ("r_hat", "ess_bulk", "ess_tail", "divergences", "ebfmi")
    checks = [{"name": n, "label": n, "value": divergences if n == "divergences" else 1.0, "op": "<=",
               "threshold": 0.0, "where": "", "passed": n not in failed} for n in names]
    return {"checks": checks, "passed": not failed}


def test_divergences_raise_target_accept_and_tuning_but_not_draws():
    nxt = fit.escalate(BASE, diag("divergences"), 1)
    assert nxt["target_accept"] == 0.95 and nxt["tune"] == 800 and nxt["draws"] == 500
    last = fit.escalate(nxt, diag("divergences"), 2)
    assert last["target_accept"] == 0.99 and last["tune"] == 1600 and last["draws"] == 500
    assert fit.escalate(last, diag("divergences"), 3) is None  # the ladder has three rungs


def test_many_divergences_skip_a_rung_of_target_accept():
    # 2 chains x 500 draws: more than 0.5 % of 1000 draws diverged
    nxt = fit.escalate(BASE, diag("divergences", divergences=30), 1)
    assert nxt["target_accept"] == 0.99 and nxt["tune"] == 800
    assert fit.escalate(nxt, diag("divergences", divergences=30), 2)["target_accept"] == 0.995
    assert fit.escalate(BASE, diag("divergences", divergences=5), 1)["target_accept"] == 0.95


def test_poor_mixing_also_doubles_the_draws_and_a_higher_configured_target_accept_is_kept():
    nxt = fit.escalate({**BASE, "target_accept": 0.98}, diag("r_hat", "ess_bulk"), 1)
    assert nxt["target_accept"] == 0.98 and nxt["draws"] == 1000 and nxt["tune"] == 800


def test_poor_mixing_without_a_divergence_asks_for_longer_chains_not_smaller_steps():
    """M5's product level: attempt 1 failed on one item's R-hat alone, with 0 divergences."""
    nxt = fit.escalate(BASE, diag("r_hat"), 1)
    assert nxt["target_accept"] == 0.9 and nxt["draws"] == 1000 and nxt["tune"] == 800
    last = fit.escalate(nxt, diag("ess_tail", "ebfmi"), 2)
    assert last["target_accept"] == 0.9 and last["draws"] == 2000 and last["tune"] == 1600
    # a divergence on a later attempt still raises it, to the rung of that attempt
    assert fit.escalate(nxt, diag("divergences", "r_hat"), 2)["target_accept"] == 0.99


@pytest.mark.parametrize("max_attempts, attempts", [(1, 1), (2, 2), (3, 3)])
def test_max_attempts_bounds_the_ladder(monkeypatch, max_attempts, attempts):
    seen = []
    monkeypatch.setattr(fit, "sample", lambda model, settings, seed, cores=1, **kw: seen.append((dict(settings), seed)))
    monkeypatch.setattr(fit.diagnostics, "compute", lambda idata, thresholds: diag("divergences"))
    _, d = fit.sample_until_passing(None, {**BASE, "max_attempts": max_attempts}, 7, {})
    assert len(seen) == len(d["attempts"]) == attempts
    assert not d["passed"] and d["escalated"] == (attempts > 1)


def test_a_fit_that_passes_on_the_second_attempt_says_so_with_both_attempts(monkeypatch):
    verdicts = iter([diag("divergences"), diag()])
    seeds = []
    monkeypatch.setattr(fit, "sample", lambda model, settings, seed, cores=1, **kw: seeds.append(seed))
    monkeypatch.setattr(fit.diagnostics, "compute", lambda idata, thresholds: next(verdicts))
    _, d = fit.sample_until_passing(None, BASE, 7, {})
    assert d["passed"] and d["escalated"]
    first, second = d["attempts"]
    assert not first["passed"] and first["failures"] and first["target_accept"] == 0.9 and first["seed"] == 7
    assert second["passed"] and second["target_accept"] == 0.95 and second["tune"] == 800
    # attempt 1 keeps the job's seed (results of fits that pass at once are unchanged); attempt 2 derives its own
    assert seeds == [7, derive_seed(7, "attempt", 2)] and d["seed"] == seeds[1]
    assert d["target_accept"] == 0.95 and d["tune"] == 800


def test_a_fit_that_passes_at_once_is_not_escalated(monkeypatch):
    monkeypatch.setattr(fit, "sample", lambda model, settings, seed, cores=1, **kw: None)
    monkeypatch.setattr(fit.diagnostics, "compute", lambda idata, thresholds: diag())
    _, d = fit.sample_until_passing(None, BASE, 7, {})
    assert d["passed"] and not d["escalated"] and len(d["attempts"]) == 1


def test_a_layer_of_three_groups_starts_at_a_high_target_accept():
    from types import SimpleNamespace

    three = SimpleNamespace(layers=[SimpleNamespace(labels=list("abcdefgh")), SimpleNamespace(labels=list("xyz"))])
    many = SimpleNamespace(layers=[SimpleNamespace(labels=list("abcdefgh"))])
    settings, why = fit.first_settings(BASE, three, {})
    assert settings["target_accept"] == fit.FEW_GROUPS_TARGET_ACCEPT and "3 groups" in why
    assert fit.first_settings(BASE, many, {}) == (BASE, None)
    assert fit.first_settings(BASE, three, {"pooling": "complete"}) == (BASE, None)  # no pooled layer
    assert fit.first_settings({**BASE, "target_accept": 0.995}, three, {})[0]["target_accept"] == 0.995


def test_only_a_few_group_layer_at_or_directly_above_the_fitted_level_raises_target_accept():
    """M5's product level: 3,049 items in 7 departments in 3 categories starts at the config's target_accept
    (the 3 categories are two layers up); its store level, 10 stores in 3 states, at 0.99."""
    from types import SimpleNamespace

    def layers(*sizes):
        return SimpleNamespace(layers=[SimpleNamespace(labels=[f"g{i}" for i in range(n)]) for n in sizes])

    assert fit.first_settings(BASE, layers(3049, 7, 3), {}) == (BASE, None)
    assert fit.first_settings(BASE, layers(10, 3), {})[0]["target_accept"] == fit.FEW_GROUPS_TARGET_ACCEPT
    assert fit.first_settings(BASE, layers(3), {})[0]["target_accept"] == fit.FEW_GROUPS_TARGET_ACCEPT
    assert fit.first_settings(BASE, layers(3049, 3, 30), {})[0]["target_accept"] == fit.FEW_GROUPS_TARGET_ACCEPT


def test_the_effect_a_failed_check_names_gets_the_other_parametrization_on_the_next_attempt(monkeypatch):
    """The ladder's parametrization rung: the model for attempt 2 comes from ``reparametrize`` (the bottom
    model flips the effect the failed check names), the attempt records it, and a model that is kept is
    sampled again."""
    failing = diag("r_hat")
    failing["checks"][0]["where"] = "season_store_sd"
    verdicts = iter([failing, diag()])
    models = []
    monkeypatch.setattr(fit, "sample", lambda model, settings, seed, cores=1, **kw: models.append(model))
    monkeypatch.setattr(fit.diagnostics, "compute", lambda idata, thresholds: next(verdicts))
    asked = []

    def reparametrize(d):
        asked.append([c["where"] for c in d["checks"] if not c["passed"]])
        return "model 2", "season: the other parametrization"

    _, d = fit.sample_until_passing("model 1", BASE, 7, {}, reparametrize=reparametrize)
    assert models == ["model 1", "model 2"] and asked == [["season_store_sd"]]
    assert "parametrization" not in d["attempts"][0]
    assert d["attempts"][1]["parametrization"] == "season: the other parametrization" and d["passed"]


def test_flip_gives_every_layer_the_opposite_of_its_majority_and_variables_map_to_their_effect():
    from types import SimpleNamespace

    from hbm.model.builder import effect_of, flip

    centering = {"season": {"sku": {"mode": "auto", "layers": [{"centered": [True, True, False]}]}},
                 "trend": {"sku": {"mode": "auto", "layers": [{"centered": [False, False, True]}]}}}
    out = flip(centering, ["season"])
    assert out["season"]["sku"]["layers"][0]["centered"] == [False] * 3 and out["season"]["sku"]["mode"] == "auto, flipped"
    assert out["trend"] == centering["trend"] and centering["season"]["sku"]["layers"][0]["centered"][0]  # a copy
    data = SimpleNamespace(effects={"intercept": 0, "trend": 0, "season": 0, "season_weekly": 0})
    assert [effect_of(v, data) for v in ("season_sku_sd", "season_weekly_store_offset[3, 1]", "trend",
                                         "intercept_agency_dev[A_1]", "alpha")] == [
        "season", "season_weekly", "trend", "intercept", None]


def test_flip_leaves_a_layer_no_unit_of_which_the_data_inform_beyond_its_spread():
    """parents_30 of the stress battery (30 categories of 2 products): the trend's product layer could be
    centered (max I_j tau^2 2.8), its category layer not (0.999); flipping both cut the category sd's ESS."""
    from hbm.model.builder import flip, layer_could_center

    product = {"centered": [False] * 4, "tau": 0.1, "information": [283.0, 115.0, 90.0, 100.0]}
    category = {"centered": [False] * 2, "tau": 0.1, "information": [99.8, 80.0]}
    mixed_weak = {"centered": [True, False], "tau": 0.1, "information": [1.0, 1.0]}
    assert [layer_could_center(x) for x in (product, category, mixed_weak)] == [True, False, True]
    out = flip({"trend": {"level": {"mode": "auto", "layers": [product, category, mixed_weak]}}}, ["trend"])
    layers = out["trend"]["level"]["layers"]
    assert [x["centered"] for x in layers] == [[True] * 4, [False] * 2, [True] * 2]
    # the rung after divergences at a low sd makes every layer non-centered, whatever it could be
    out = flip({"trend": {"level": {"mode": "auto", "layers": [product, category, mixed_weak]}}}, ["trend:noncentered"])
    assert [x["centered"] for x in out["trend"]["level"]["layers"]] == [[False] * 4, [False] * 2, [False] * 2]


def test_the_bottom_model_flips_the_effect_whose_sd_a_failed_check_names_first():
    from types import SimpleNamespace

    from hbm.bottom import effects_to_flip

    data = SimpleNamespace(effects={"intercept": 0, "trend": 0, "season": 0})
    decision = {e: {"sku": {"mode": "auto"}} for e in ("intercept", "trend", "season")}
    failed = diag("r_hat", "ess_bulk", "ebfmi")
    failed["checks"][0]["where"] = "intercept_sku_dev[SKU_02]"
    failed["checks"][1]["where"] = "season_sku_sd"
    assert effects_to_flip(failed, data, decision, []) == ["season"]  # the sd named: that effect only
    failed["checks"][1]["where"] = "trend"
    assert effects_to_flip(failed, data, decision, []) == []  # no sd named: longer chains, the same model
    failed["checks"][1]["where"] = "trend_sku_sd"
    assert effects_to_flip(failed, data, decision, []) == ["trend"]
    assert effects_to_flip(failed, data, decision, ["trend"]) == []  # once per effect
    decision["season"]["sku"]["mode"] = "centered"  # chosen in the config: kept
    failed["checks"][1]["where"] = "season_sku_sd"
    assert effects_to_flip(failed, data, decision, []) == []


def test_a_level_fit_flips_the_auto_decided_effect_whose_sd_a_failed_check_names(spec, monkeypatch):
    """The per-level fits have the same model rung: a failed check naming ``trend_tau`` gives the trend the
    other parametrization (its offsets become the effects themselves, or the reverse), once; a config's
    explicit choice is kept; every later model of the fit rebuilds the flip from the posterior's attrs."""
    from types import SimpleNamespace

    from tests.test_models import WEEKS, count_spec

    from hbm.models import build_model, effect_of, fitted_flips, is_sd, level_data, parametrization, resolve_priors

    assert [effect_of(v) for v in ("tau", "tau_category", "theta_offset[p1]", "mu", "trend_tau", "season_dev[p1, sin_1]",
                                   "alpha_inv_sqrt", "elasticity")] == [
        "intercept", "intercept", "intercept", "intercept", "trend", "season", None, None]
    assert [is_sd(v) for v in ("tau", "tau_category", "trend_tau", "season_tau_category", "theta", "mu")] == [
        True, True, True, True, False, False]
    s = count_spec(spec, parametrization="auto")
    data = level_data(WEEKS, s)
    priors = resolve_priors(s, data)
    before = {v.name for v in build_model(data, s, priors).free_RVs}
    decision = parametrization(data, s)
    assert not fit.could_center(decision["trend"])  # 4 weeks each: the data inform no trend more than tau does
    reparametrize, flipped = fit.reparametrizer(data, s, priors, decision)
    failed = diag("r_hat", "divergences")
    failed["checks"][0]["where"] = "theta_offset[p1]"
    failed["checks"][3]["where"] = "trend_tau"
    assert reparametrize(failed) is None  # so the rung keeps it non-centered
    decision["trend"]["layers"][0]["information"] = [1e4] * 3  # as if each product had years of data
    assert fit.could_center(decision["trend"])
    import copy

    from hbm import models

    monkeypatch.setattr(models, "parametrization", lambda *a, **k: copy.deepcopy(decision))  # the models see it too
    model, text = reparametrize(failed)
    assert flipped == ["trend"] and text == "trend: the other parametrization"
    after = {v.name for v in model.free_RVs}
    changed = before ^ after
    assert changed and all(v.startswith("trend") for v in changed)  # only the trend's variables changed
    assert reparametrize(failed) is None  # once per effect: nothing new to flip
    # the fit records the flip; a posterior check or forecast rebuilds that model
    idata = SimpleNamespace(posterior=SimpleNamespace(attrs={"hbm_flipped": '["trend"]'}))
    assert fitted_flips(idata) == ["trend"]
    assert {v.name for v in build_model(data, s, priors, flipped=fitted_flips(idata)).free_RVs} == after
    monkeypatch.undo()
    explicit = count_spec(spec, parametrization={"intercept": "auto", "trend": "noncentered", "season": "auto"})
    reparametrize, flipped = fit.reparametrizer(level_data(WEEKS, explicit), explicit, priors)
    assert reparametrize(failed) is None and flipped == []  # the config's choice for the trend is kept


def test_divergences_at_a_low_sd_make_a_mixed_layer_non_centered_not_its_majority_s_opposite():
    """radon on seed 2: 7 of 85 counties centered, 87 divergences "most at low tau". The centered units'
    funnel is the fault: the rung makes every unit non-centered (``intercept:noncentered``), where the
    majority's opposite would center all 85. Without centered units, or with the divergences elsewhere,
    the rung is the majority's opposite as before."""
    from hbm.model.builder import flip
    from hbm.models import effect_of, is_sd

    mixed = {"mode": "auto", "layers": [{"centered": [True] * 7 + [False] * 78}]}
    failed = diag("divergences")
    failed["checks"][3].update(where="tau", detail="most at low tau")
    assert fit.flip_target(failed, "intercept", effect_of, is_sd, mixed) == "intercept:noncentered"
    out = flip({"intercept": {"level": mixed}}, ["intercept:noncentered"])["intercept"]["level"]
    assert out["layers"][0]["centered"] == [False] * 85 and out["mode"] == "auto, non-centered"
    majority = flip({"intercept": {"level": mixed}}, ["intercept"])["intercept"]["level"]
    assert majority["layers"][0]["centered"] == [True] * 85
    failed["checks"][3]["detail"] = "most at high tau"
    assert fit.flip_target(failed, "intercept", effect_of, is_sd, mixed) == "intercept"
    failed["checks"][3]["detail"] = "most at low tau"
    noncentered = {"mode": "auto", "layers": [{"centered": [False] * 85}]}
    assert fit.flip_target(failed, "intercept", effect_of, is_sd, noncentered) == "intercept"
    # once per effect, whatever its entry
    assert fit.effects_named(failed, effect_of, is_sd, {"intercept": mixed}, ["intercept:noncentered"]) == []


def test_the_rung_leaves_an_effect_non_centered_where_no_unit_is_informed_beyond_the_spread():
    """many_single of the stress battery (300 groups of one value each, I_j tau^2 at most 0.4): an R-hat of
    1.012 on tau asks for longer chains; the all-centered model the rung used to build had E-BFMI 0.01."""
    weak = {"mode": "auto", "layers": [{"centered": [False] * 3, "tau": 1.0, "information": [0.1, 0.4, 0.2]}]}
    assert not fit.could_center(weak)
    strong = {"mode": "auto", "layers": [{"centered": [False] * 3, "tau": 1.0, "information": [0.1, 3.0, 0.2]}]}
    assert fit.could_center(strong)  # one unit the data dominate: centering is worth a try
    mixed = {"mode": "auto", "layers": [{"centered": [True, False], "tau": 0.1, "information": [1.0, 1.0]}]}
    assert fit.could_center(mixed)  # centered units: the rung may make them non-centered
    failed = diag("r_hat")
    failed["checks"][0]["where"] = "tau"
    assert fit.effects_named(failed, lambda w: "intercept", lambda w: w == "tau", {"intercept": weak}, []) == []
    assert fit.effects_named(failed, lambda w: "intercept", lambda w: w == "tau", {"intercept": strong}, []) == [
        "intercept"]


def test_the_bottom_model_judges_each_hierarchy_as_a_level_is_judged():
    """The bottom model's hierarchies are chains of layers (first layer, then parents): M5's item chain
    (items, 7 departments, 3 categories) alone keeps the config's target_accept; its store chain (10 stores
    in 3 states) raises it, and the reason names the chain."""
    from types import SimpleNamespace

    from hbm.bottom import _first_settings

    def chain(*sizes):
        return [SimpleNamespace(labels=[f"g{i}" for i in range(n)]) for n in sizes]

    data = SimpleNamespace(effects={"intercept": SimpleNamespace(hierarchies=["item"])},
                           hierarchies={"item": chain(3049, 7, 3), "store": chain(10, 3)})
    assert _first_settings(BASE, data, {}) == (BASE, None)
    data.effects["season"] = SimpleNamespace(hierarchies=["store"])
    settings, why = _first_settings(BASE, data, {})
    assert settings["target_accept"] == 0.99 and "3 groups" in why and "(store)" in why


def r_hat_failure(parameters, ess, chains=2, draws=1000):
    d = diag("r_hat")
    d["checks"][0].update(value=1.017, threshold=1.01)
    return {**d, "chains": chains, "draws": draws, "parameters": parameters, "r_hat_ess": ess}


def test_r_hat_of_many_parameters_asks_for_the_draws_its_chance_level_needs():
    """M5's product level: about 3,100 scalars, 2 chains of 1,000 draws, autocorrelation time of the folded
    draws about 3. Its largest R-hat by chance alone is then about 1.02 (benchmarks/rhat_max.py), and twice
    the draws still leave it above 1.01 in a quarter of the runs; the ladder asks for enough draws instead."""
    from hbm import diagnostics

    base = {**BASE, "draws": 1000, "tune": 1000}
    need = diagnostics.draws_for_r_hat(3100, 2, 3.0, 1.01)
    assert 2000 < need <= 4000 and need % 100 == 0
    assert diagnostics.chance_r_hat(3100, 2, need, 3.0, q=0.9) <= 1.01 < diagnostics.chance_r_hat(3100, 2, 2000, 3.0, q=0.9)
    nxt = fit.escalate(base, r_hat_failure(3100, 2 * 1000 / 3.0), 1)
    assert nxt["draws"] == need and nxt["target_accept"] == 0.9 and nxt["tune"] == 2000
    # a few dozen parameters: doubling is already enough
    assert fit.escalate(base, r_hat_failure(30, 2 * 1000 / 3.0), 1)["draws"] == 2000
    # bounded: never more than MAX_DRAWS_FACTOR times the failed attempt's draws
    assert fit.escalate(base, r_hat_failure(30490, 2 * 1000 / 40.0), 1)["draws"] == fit.MAX_DRAWS_FACTOR * 1000
    # an ESS failure alone keeps the doubling
    ess_only = {**r_hat_failure(3100, 600.0), "checks": diag("ess_bulk")["checks"]}
    assert fit.escalate(base, ess_only, 1)["draws"] == 2000
