"""Stage 3: MCMC for one hierarchy level -> posterior.nc (InferenceData) + diagnostics.json + rank plot."""

from __future__ import annotations

import logging
import time

from hbm import diagnostics, log_likelihood, plots, provenance
from hbm.io import save_figure, write_json, write_netcdf
from hbm.models import build_model, hyperparameters, load_level, resolve_priors
from hbm.seeds import derive_seed

log = logging.getLogger(__name__)

# The escalation ladder: what a fit that failed its diagnostics is retried with, attempt by attempt
# (``inference.max_attempts`` bounds it; 1 turns it off). Divergences ask for smaller steps (a higher
# target_accept, longer tuning to adapt them); a low ESS, a high R-hat or a low E-BFMI without a divergence
# asks for longer chains only (twice the tuning and the draws at the same target_accept: smaller steps would
# only make each draw dearer; M5's product level failed attempt 1 on one item's R-hat alone, 1.017 among
# 3,049 items with 0 divergences, which is what perfectly mixing chains of that length give by chance,
# benchmarks/rhat_max.py). When R-hat failed, the draws are at least what R-hat's chance level asks for: the
# largest R-hat over the fit's P parameters stays below the threshold with probability 0.9 for chains that
# mix as well as the failed attempt's typical parameter (hbm.diagnostics.draws_for_r_hat, from the median
# bulk or folded ESS, the smaller), at most MAX_DRAWS_FACTOR times the failed attempt's draws. For a few
# hundred parameters doubling already gives that; M5's product level (6,125 scalars, 2 chains, folded
# autocorrelation time 2.65) asks for 2,300. Each attempt keeps what the one before it had and never lowers a setting the
# config gave. Many divergences (more than MANY_DIVERGENCES of the draws) skip a rung of target_accept:
# 0.95 seldom cures them (measured on retail_demand's store level: 109 divergences at 0.9, 83 at 0.95, 0 at
# 0.99).
LADDER = (
    {"target_accept": 0.95, "many_divergences": 0.99, "tune_factor": 2, "draws_factor": 2},
    {"target_accept": 0.99, "many_divergences": 0.995, "tune_factor": 2, "draws_factor": 2},
)
MANY_DIVERGENCES = 0.005
MAX_DRAWS_FACTOR = 4
MIXING_CHECKS = ("r_hat", "ess_bulk", "ess_tail", "ebfmi")
# A pooled layer of this many groups or fewer leaves its sd barely identified: its posterior reaches down to
# small values, where the geometry needs small steps. Such a model starts at FEW_GROUPS_TARGET_ACCEPT
# (measured on the bundled examples: grouped's 3 groups, 3 divergences at 0.9, 1 at 0.95, 0 at 0.99;
# retail_demand's 3 regions and the stores within them, 16-21 at 0.9, 0-1 at 0.99). Only the first
# FEW_GROUPS_DEPTH layers count: the fitted level and the layer directly above it (in the bottom model, each
# hierarchy's first layer and its parent). Every measurement above is of such a layer; a few-group layer
# further up sits over a layer of pooled values, not over data, and did not need small steps: M5's product
# level (3,049 items in 7 departments in 3 categories) had 0 divergences at 0.9 both on a sixth of its items
# and on all of them, and sampled 2.6x faster there than at 0.99.
FEW_GROUPS = 3
FEW_GROUPS_TARGET_ACCEPT = 0.99
FEW_GROUPS_DEPTH = 2


def first_settings(inference: dict, data, spec: dict) -> tuple[dict, str | None]:
    """The first attempt's sampler settings, and why they differ from the config's (None if they do not).
    ``data.layers``: the fitted level, then its parents, nearest first (:class:`hbm.models.LevelData`)."""
    if spec.get("pooling", "partial") != "partial":
        return inference, None
    smallest = min(len(layer.labels) for layer in data.layers[:FEW_GROUPS_DEPTH])
    if smallest <= FEW_GROUPS and inference["target_accept"] < FEW_GROUPS_TARGET_ACCEPT:
        return ({**inference, "target_accept": FEW_GROUPS_TARGET_ACCEPT},
                f"a pooled layer has only {smallest} groups: target_accept {FEW_GROUPS_TARGET_ACCEPT} from the start")
    return inference, None


def effects_named(diag: dict, effect_of, is_sd, decision: dict, flipped) -> list[str]:
    """The effects the escalation ladder gives the other parametrization after a failed attempt: the
    auto-decided ones (not flipped yet) whose pooled sd a failed check names (R-hat and ESS their worst
    variable; divergences the scalar where they concentrate, :func:`hbm.diagnostics.divergences_at`). A
    wrong parametrization shows in the sd first (a funnel). A check that names only other variables asks
    for longer chains, not another model: on Stallion's bottom model, attempt 1 named intercept_sku_dev
    for R-hat and season_sku_sd for ESS, and flipping both made the well-informed SKU intercepts mix worse;
    on its SKU level, R-hat named ``mu`` and flipping the (centered, well-informed) intercepts failed every
    later attempt, where longer chains alone had passed. ``decision``: effect -> its parametrization
    entry, or a list of them (the bottom model: one per hierarchy)."""
    where = [c["where"] for c in diag["checks"] if not c["passed"] and c.get("where")]
    named = {effect_of(w) for w in where if is_sd(w)}

    def auto(d):
        return all(x["mode"] == "auto" for x in _entries(d))

    done = {str(f).partition(":")[0] for f in flipped}
    return sorted(e for e in named
                  if e in decision and e not in done and auto(decision[e]) and could_center(decision[e]))


def _entries(decision) -> list[dict]:
    """An effect's parametrization entries: one for a level's fit, one per hierarchy for the bottom model."""
    return decision if isinstance(decision, list) else [decision]


def could_center(decision) -> bool:
    """Whether the other parametrization is worth a try for an auto-decided effect: some of its units are
    centered (the rung may make them non-centered), or some unit's data would dominate its prior at tau's
    estimate itself (I_j tau^2 > 1; the rule asked for more, at tau's lower bound). An effect whose every
    unit the data inform less than the spread between units does stays non-centered: on the stress shape
    many_single (300 groups of one value each, I_j tau^2 at most 0.4) attempt 1 missed R-hat by 0.002 on tau,
    and the all-centered model the rung then built had E-BFMI 0.01 on both later attempts."""
    from hbm.model.builder import layer_could_center

    return any(layer_could_center(layer or {}) for d in _entries(decision) for layer in d.get("layers") or [None])


def flip_target(diag: dict, effect: str, effect_of, is_sd, decision) -> str:
    """The rung's entry for ``effect`` (:func:`hbm.model.builder.flip`): ``<effect>:noncentered`` when the
    divergences concentrate at a low value of the effect's sd and some of its units are centered (their
    funnel: measured on radon, seed 2, 7 of 85 counties centered, 87 divergences "most at low tau"; turning
    the whole layer to its majority's opposite, all centered, gave E-BFMI 0.05 and 0.12 over two more
    attempts), else ``<effect>`` (every layer the opposite of its majority)."""
    div = next((c for c in diag["checks"] if c["name"] == "divergences" and not c["passed"]), None)
    layers = [layer for d in _entries(decision) for layer in d["layers"]]
    centered = any(any(layer["centered"]) for layer in layers)
    if div and str(div.get("detail", "")).startswith("most at low") and is_sd(div.get("where", "")) \
            and effect_of(div["where"]) == effect and centered:
        return f"{effect}:noncentered"
    return effect


def reparametrizer(data, spec: dict, priors: dict, decision: dict | None = None):
    """The escalation ladder's model rung for a level's fit (``reparametrize`` of :func:`sample_until_passing`):
    after a failed attempt, the model with the other parametrization for the effects the failed checks name
    (:func:`effects_named`). ``decision``: :func:`hbm.models.parametrization` of the level, if already made.
    Returns the callback and the list of flipped effects it fills in."""
    from hbm.models import build_model, effect_of, is_sd, parametrization

    if decision is None:
        decision = parametrization(data, spec) if spec.get("pooling", "partial") == "partial" else {}
    flipped: list[str] = []

    def reparametrize(diag):
        new = [flip_target(diag, e, effect_of, is_sd, decision[e])
               for e in effects_named(diag, effect_of, is_sd, decision, flipped)]
        if not new:
            return None
        flipped.extend(new)
        said = {True: "non-centered", False: "the other parametrization"}
        text = ", ".join(f"{e.partition(':')[0]}: {said[e.endswith(':noncentered')]}" for e in new)
        return build_model(data, spec, priors, flipped=flipped), text

    return reparametrize, flipped


def escalate(inference: dict, diag: dict, attempt: int) -> dict | None:
    """The sampler settings of attempt ``attempt + 1`` after attempt ``attempt`` (1-based) failed with
    ``diag``; None when the ladder is exhausted."""
    if attempt > len(LADDER) or attempt >= inference.get("max_attempts", 1 + len(LADDER)):
        return None
    step = LADDER[attempt - 1]
    failed = {c["name"] for c in diag["checks"] if not c["passed"]}
    divergences = next((c["value"] for c in diag["checks"] if c["name"] == "divergences"), 0) or 0
    many = divergences > MANY_DIVERGENCES * inference["chains"] * inference["draws"]
    out = dict(inference)
    if "divergences" in failed:
        out["target_accept"] = max(inference["target_accept"], step["many_divergences" if many else "target_accept"])
    out["tune"] = inference["tune"] * step["tune_factor"]
    if failed & set(MIXING_CHECKS):
        out["draws"] = inference["draws"] * step["draws_factor"]
    r_hat = next((c for c in diag["checks"] if c["name"] == "r_hat"), None)
    if "r_hat" in failed and diag.get("parameters") and diag.get("r_hat_ess"):
        tau = inference["chains"] * inference["draws"] / diag["r_hat_ess"]
        need = diagnostics.draws_for_r_hat(diag["parameters"], inference["chains"], tau, r_hat["threshold"])
        if need > out["draws"]:
            out["draws"] = min(need, inference["draws"] * MAX_DRAWS_FACTOR)
            log.info("R-hat's chance level over %d parameters (%d chains, autocorrelation time %.2f) asks "
                     "for %d draws per chain; next attempt: %d", diag["parameters"], inference["chains"], tau,
                     need, out["draws"])
    return out


def sample_until_passing(model, inference: dict, seed: int, thresholds: dict, cores: int = 1,
                         label: str = "", reparametrize=None) -> tuple:
    """:func:`sample`, retried along :data:`LADDER` while the diagnostics fail.

    Attempt 1 uses ``seed`` and the configured settings; attempt k > 1 a seed derived from ``seed`` and k.
    ``reparametrize(diag)``: after a failed attempt that the ladder continues, a model with the other
    parametrization for the effects the failed checks name, and what changed (``(model, text)``), or None
    to keep the model. Returns the last attempt's InferenceData and diagnostics, the latter with ``attempts``
    (every attempt's settings, seed, verdict, failures and, where it changed, its parametrization) and
    ``escalated`` (True when the result needed more than one)."""
    attempts, settings, attempt, changed = [], dict(inference), 1, None
    while True:
        attempt_seed = seed if attempt == 1 else derive_seed(seed, "attempt", attempt)
        t0 = time.perf_counter()
        idata = sample(model, settings, attempt_seed, cores=cores, progress_label=f"{label}attempt {attempt}: ")
        diag = diagnostics.compute(idata, thresholds)
        failures = diagnostics.failures(diag)
        attempts.append({"attempt": attempt, "seed": attempt_seed, "target_accept": settings["target_accept"],
                         "tune": settings["tune"], "draws": settings["draws"], "passed": diag["passed"],
                         "failures": failures, "seconds": round(time.perf_counter() - t0, 2),
                         **({"parametrization": changed} if changed else {})})
        log.info("%sattempt %d (target_accept %g, %d tune + %d draws, seed %d): %s", label, attempt,
                 settings["target_accept"], settings["tune"], settings["draws"], attempt_seed,
                 "; ".join(failures) or "all diagnostics passed")
        following = None if diag["passed"] else escalate(settings, diag, attempt)
        if following is None:
            break
        other = reparametrize(diag) if reparametrize else None
        if other is not None:
            model, changed = other
        log.info("%sattempt %d failed; refitting with target_accept %g, %d tune + %d draws%s", label, attempt,
                 following["target_accept"], following["tune"], following["draws"],
                 f"; {changed}" if other is not None else "")
        settings, attempt = following, attempt + 1
    diag.update(attempts=attempts, escalated=len(attempts) > 1, tune=settings["tune"],
                target_accept=settings["target_accept"], seed=attempts[-1]["seed"])
    return idata, diag


def numpyro_options(chains: int) -> dict:
    """NumPyro's chain method: its default, one chain per device, runs the chains one after another when
    there are fewer devices than chains, as on a node with one GPU; there they are vectorized instead (one
    program steps every chain at once; benchmarks/gpu.py). On the CPU the default stays."""
    import jax

    if jax.default_backend() != "cpu" and jax.local_device_count() < chains:
        return {"chain_method": "vectorized"}
    return {}


def sample(model, inference: dict, seed: int, cores: int = 1, progress_label: str = ""):
    """NUTS with the configured sampler; returns posterior, sample_stats, observed_data and constant_data
    (the log-likelihood is computed as the fit is written: :mod:`hbm.log_likelihood`)."""
    import pymc as pm

    from hbm import cache

    cache.install()  # a cold and a warm numba cache give the same draws (hbm.cache; project issue 15)
    sampler = inference["sampler"]
    if inference.get("adaptation", "diag") != "diag" and sampler != "nutpie":
        raise ValueError(f"inference.adaptation {inference['adaptation']!r} needs sampler nutpie, not {sampler!r}")
    kwargs = dict(
        draws=inference["draws"], tune=inference["tune"], chains=inference["chains"],
        cores=max(1, min(cores, inference["chains"])), target_accept=inference["target_accept"],
        random_seed=seed, progressbar=False, model=model, compute_convergence_checks=False,
    )
    t0 = time.perf_counter()
    # The sampler is always named: PyMC 6 picks nutpie when no nuts_sampler is given.
    if sampler == "pymc":
        idata = pm.sample(**kwargs, nuts_sampler="pymc")
    elif sampler == "nutpie":
        from hbm.progress import logged

        with logged(label=progress_label):  # a line in the job's log every 30 s: draws, divergences, time left
            idata = pm.sample(**kwargs, nuts_sampler=sampler, nuts={"adaptation": inference.get("adaptation", "diag")})
    else:
        idata = pm.sample(**kwargs, nuts_sampler=sampler, nuts=numpyro_options(inference["chains"]))
    total = time.perf_counter() - t0
    sampling = float(idata.posterior.attrs.get("sampling_time", total))
    # compile = wall - the sampler's own sampling time; nutpie's clock can run past ours by a second when
    # the compiled model comes from the cache (M5's product level: -1.2 s), so never below 0
    log.info("%s: compiled in %.1f s, sampled in %.1f s", sampler, max(0.0, total - sampling), sampling)
    for group in [g for g in idata.children if g.startswith("warmup_")]:
        del idata[group]
    transformed = [v for v in idata.posterior.data_vars if str(v).endswith("__")]  # nutpie keeps them
    if transformed:
        idata["posterior"] = idata.posterior.to_dataset().drop_vars(transformed)
    if "observed_data" not in idata.children or "constant_data" not in idata.children:
        from pymc.backends.arviz import DataTreeConverter

        conv = DataTreeConverter(trace=None, model=model)
        for group, data in (("observed_data", conv.observed_data_to_xarray()),
                            ("constant_data", conv.constant_data_to_xarray())):
            if group not in idata.children and data is not None:
                idata[group] = data
    return idata


def stamp(idata, spec: dict, priors: dict, sources: dict | None = None, **extra) -> None:
    """Record in every group's attrs what made this result (read back by reports and comparisons):
    the provenance of :func:`hbm.provenance.netcdf_attrs` plus the level's spec, priors and sampler settings."""
    import json

    attrs = {
        **provenance.netcdf_attrs(sources),
        "hbm_analysis": spec["analysis"],
        "hbm_level": spec["level"],
        "hbm_spec": json.dumps(spec, sort_keys=True),
        "hbm_priors": json.dumps(priors, sort_keys=True, default=lambda a: a.tolist()),
        **{f"hbm_{k}": (v if isinstance(v, (int, float, str)) else json.dumps(v, sort_keys=True)) for k, v in extra.items()},
    }
    provenance.stamp(idata, attrs)


def fit(table_path, posterior_path, diagnostics_path, rank_plot_path, *, spec: dict, inference: dict,
        thresholds: dict, seed: int, threads: int = 1, sources: dict | None = None,
        parametrization_path=None) -> dict:
    """Fit one level and write its InferenceData, diagnostics and rank plot. Returns the diagnostics.

    ``sources`` ({"config_file", "data_file"}) puts the config's content and sha256 and the data's sha256
    into the NetCDF attributes. ``parametrization_path``: where to write the centered/non-centered decision
    per effect, layer and group with the numbers behind it (:mod:`hbm.parametrization`)."""
    from hbm.models import flip_effects, parametrization
    from hbm.parametrization import RULE, summary

    data = load_level(table_path, spec)
    priors = resolve_priors(spec, data)
    t0 = time.perf_counter()
    if data.dropped:
        log.info("level %s: layer %s left out of the model: each of its units has one child (their sds would "
                 "trade off)", spec["level"], ", ".join(data.dropped))
    raw = parametrization(data, spec) if spec.get("pooling", "partial") == "partial" else {}
    decision = summary(raw, data)
    for effect, d in decision.items():
        log.info("level %s, %s (%s): %s", spec["level"], effect, d["mode"], "; ".join(
            f"{r['layer']}: {r['centered']} of {r['groups']} centered" + (
                f" (I*tau^2 {r['ratio_min']:.3g} to {r['ratio_max']:.3g})" if "ratio_min" in r else "")
            for r in d["layers"]))
    model = build_model(data, spec, priors)
    log.info(
        "level %s: %d observations in %d groups; sampling %d chains x (%d tune + %d draws) with %s, seed %d",
        spec["level"], data.y.size, len(data.groups), inference["chains"], inference["tune"],
        inference["draws"], inference["sampler"], seed,
    )
    settings, why = first_settings(inference, data, spec)
    if why:
        log.info("level %s: %s", spec["level"], why)
    reparametrize, flipped = reparametrizer(data, spec, priors, raw)
    idata, diag = sample_until_passing(model, settings, seed, thresholds, cores=threads,
                                       label=f"level {spec['level']}: ", reparametrize=reparametrize)
    diag["first_attempt_rule"] = why
    if flipped:  # what parametrization.json says, and what every later model of this fit rebuilds (hbm_flipped)
        decision = summary(flip_effects(raw, flipped), data)
    seconds = time.perf_counter() - t0
    diag.update(level=spec["level"], sampler=inference["sampler"], seconds=round(seconds, 2),
                layers_left_out=data.dropped, parametrization={e: {**d, "layers": [{k: v for k, v in r.items() if k != "per_group"}
                                                     for r in d["layers"]]} for e, d in decision.items()})
    if diag["escalated"]:
        log.info("level %s: %s after %d attempts", spec["level"],
                 "passed" if diag["passed"] else "still failing", len(diag["attempts"]))
    for line in diagnostics.failures(diag) or ["all diagnostics passed"]:
        log.info("level %s: %s", spec["level"], line)
    stamp(idata, spec, priors, sources, inference=inference, seed=seed, attempts=diag["attempts"], flipped=flipped)
    # the log-likelihood under the model that drew the posterior: the last attempt's parametrization
    final = build_model(data, spec, priors, flipped=flipped) if flipped else model
    t1 = time.perf_counter()
    write_netcdf(idata, posterior_path, streamed=log_likelihood.pointwise(final, idata))
    log.info("level %s: posterior and pointwise log-likelihood written in %.1f s", spec["level"],
             time.perf_counter() - t1)
    write_json(diag, diagnostics_path)
    if parametrization_path is not None:
        write_json({"level": spec["level"], "rule": RULE,
                    "effects": decision}, parametrization_path)
    save_figure(plots.rank(idata, hyperparameters(spec)), rank_plot_path)
    log.info("level %s: fitted in %.1f s", spec["level"], seconds)
    return diag
