"""Simulation-based calibration (Talts et al. 2018) of a level's model -> results/<a>/sbc/<level>/<variant>/.

One job per simulation by default (:func:`simulate_and_fit`; ``sbc.batch`` simulations per job otherwise):
draw every parameter from the prior, simulate data of the level's shape (same groups, covariates, prices,
periods), fit the model to them, and record the rank of each true value among posterior draws thinned to
about ``L`` = 100 (nearly) independent draws. If the inference is right, each parameter's ranks are
uniform on 0..L over the simulations. A job compiles the model once, with the observations as a Data
container, and gives each simulated data set to the compiled model (:func:`refitter`): a batch of k
simulations pays one compilation (about 5 s with nutpie) instead of k. Each simulation has its own seed,
derived from its index, so the results do not depend on the batch size.

The gather job (:func:`summarize`) turns the ranks into rank histograms and ECDF-difference plots with
simultaneous bands (Säilynoja, Bürkner and Vehtari 2022, their optimized band: :func:`ecdf_band`), and a
verdict per parameter: *calibrated* when the ECDF stays inside its band, else *miscalibrated*. The bands
hold the family-wise error of a variant at 5 %: with K parameters each band is a 1 - 0.05 / K band
(Bonferroni), so a calibrated model with many parameters is not flagged by chance (with K = 8 separate
95 % bands, one in three calibrated models would be). A chi-square p-value over 10 rank bins and the share
of simulations whose fit diverged are reported beside it.

The priors of every simulation are resolved once from the real data (the data-scaled defaults), so the
model that simulates and the model that fits are the same model. A level whose parametrization is
``auto`` (the default) has it decided on each simulated data set, as a fit job decides on the user's data
(:func:`auto_refitter`; one compilation per distinct decision): the decision is part of what is
calibrated, and the summary counts the simulations per decision (``decided``).
"""

from __future__ import annotations

import collections
import functools
import logging
import time

import numpy as np

from hbm.io import read_json, save_figure, write_json
from hbm.model import PREDICTIVE_COMPILE
from hbm.models import LIKELIHOOD, OBSERVED, build_model, group_parameters, hyperparameters, load_level, resolve_priors
from hbm.models import parametrization as parametrization_of

log = logging.getLogger(__name__)

RANKS = 100  # L: ranks lie in 0..L
BINS = 10
FAMILY_ERROR = 0.05  # chance that a calibrated variant is flagged (Bonferroni over its parameters)


def variant_spec(spec: dict, parametrization: str) -> dict:
    """The level's spec with the parametrization of the SBC variant ("model" keeps the analysis's own)."""
    if parametrization == "model":
        return spec
    return {**spec, "model": {**spec["model"], "parametrization": parametrization}}


def parameters(spec: dict) -> list[str]:
    return hyperparameters(spec) + group_parameters(spec)


def _flat(da) -> dict[str, float]:
    """{"name[coord, ...]": value} for every element of a DataArray without sample dims."""
    from hbm.compare import element_labels

    return dict(zip(element_labels(da), np.asarray(da.values, dtype=float).ravel()))


def thinned(post, names: list[str], size: int = RANKS):
    """``size`` draws of the posterior, spread evenly over the chains after thinning by the smallest bulk
    ESS (so the kept draws are close to independent)."""
    import arviz as az

    post = post.to_dataset() if hasattr(post, "to_dataset") else post  # a DataTree node or a Dataset
    stacked = post[names].stack(sample=("chain", "draw"))
    total = stacked.sizes["sample"]
    ess = az.ess(post[names], method="bulk")
    min_ess = float(np.nanmin([np.nanmin(ess[v].values) for v in names]))
    step = max(1, int(total // max(min_ess, 1.0)))
    idx = np.arange(0, total, step)
    if idx.size > size:
        idx = idx[np.linspace(0, idx.size - 1, size).round().astype(int)]
    return stacked.isel(sample=idx), min_ess


def ranks_of(truth: dict[str, float], draws) -> dict[str, int]:
    """Rank of each true value among the draws: the number of draws below it (ties broken by halves)."""
    out = {}
    for name, value in truth.items():
        var = name.split("[", 1)[0]
        da = draws[var]
        flat = _flat_draws(da)
        d = flat[name]
        out[name] = int(np.sum(d < value) + np.sum(d == value) // 2)
    return out


def _flat_draws(da) -> dict[str, np.ndarray]:
    """{"name[coord, ...]": draws} for a DataArray with a ``sample`` dim."""
    from hbm.compare import element_labels

    other = [d for d in da.dims if d != "sample"]
    da = da.transpose(*other, "sample")
    template = da.isel(sample=0)
    values = da.values.reshape(-1, da.sizes["sample"])
    return dict(zip(element_labels(template), values))


def refitter(model, inference: dict):
    """``fit(y, seed)`` -> InferenceData of ``model`` (built with ``observed_as_data=True``) fitted to the
    observations ``y``, compiling the model once for all the data sets a job fits: nutpie's compiled model
    takes new observations through ``with_data``; PyMC's own sampler gets them by ``pm.set_data`` (its C
    code is cached on disk anyway)."""
    import pymc as pm

    from hbm import cache

    cache.install()  # before anything compiles (pm.set_data too): the same draws, cold or warm cache (hbm.cache)
    if inference["sampler"] == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)

        def fit(y, seed: int):
            return nutpie.sample(compiled.with_data(**{OBSERVED: y}), draws=inference["draws"],
                                 tune=inference["tune"], chains=inference["chains"], cores=1, seed=seed,
                                 target_accept=inference["target_accept"], save_warmup=False, progress_bar=False)

        return fit

    from hbm.fit import sample

    def fit(y, seed: int):
        with model:
            pm.set_data({OBSERVED: y})
        return sample(model, inference, seed, cores=1)

    return fit


def _key(decision: dict) -> tuple:
    """What identifies a model among the parametrizations :func:`hbm.parametrization.decide` can give."""
    return tuple((effect, i, tuple(bool(c) for c in layer["centered"]))
                 for effect, d in sorted(decision.items()) for i, layer in enumerate(d["layers"]))


def decided(decision: dict, data) -> str:
    """The decision in one line, e.g. ``intercept: group 3/3 centered`` (per effect, its layers from the
    fitted level up, by column): what a simulation's fit was given."""
    return "; ".join(f"{effect}: " + ", ".join(f"{layer.column} {sum(d_layer['centered'])}/{len(d_layer['centered'])}"
                                               for layer, d_layer in zip(data.layers, d["layers"]))
                     for effect, d in sorted(decision.items())) + " centered"


def auto_refitter(data, spec: dict, priors: dict, inference: dict, models: dict):
    """``fit(y, seed)`` for a level whose parametrization is ``auto``: decided on each simulated data set,
    as a fit job decides on the user's data (:func:`hbm.parametrization.decide`), so SBC calibrates the
    whole procedure, decision included. A model is compiled once per distinct decision, when a simulation
    first needs it (``models``: ones built already, by :func:`_key`, e.g. the real data's). ``fit.decided``
    says what the last simulation got, ``fit.last_compile`` how long its call spent compiling and
    ``fit.compile_seconds`` the total of those compilations."""
    import dataclasses

    fits = {}

    def fit(y, seed: int):
        sim = dataclasses.replace(data, y=np.asarray(y, dtype=data.y.dtype))
        decision = parametrization_of(sim, spec)
        key = _key(decision)
        t0 = time.perf_counter()
        if key not in fits:
            model = models.get(key) or build_model(sim, spec, priors, observed_as_data=True)
            fits[key] = refitter(model, inference)
        fit.last_compile = time.perf_counter() - t0
        fit.compile_seconds += fit.last_compile
        fit.decided = decided(decision, sim)
        return fits[key](y, seed)

    fit.decided, fit.last_compile, fit.compile_seconds = None, 0.0, 0.0
    return fit


def simulate_and_fit(table_path, out_path, *, spec: dict, inference: dict, seeds: list[int], indices: list[int],
                     parametrization: str = "model", draws: int = RANKS) -> list[dict]:
    """The SBC simulations ``indices`` (with their ``seeds``) of one level and variant, in one process:
    prior draw -> simulated data -> fit -> ranks, for each. The model is compiled once per job. Writes
    ``{"compile_seconds": ..., "simulations": [record, ...]}`` and returns the records."""
    t0 = time.perf_counter()
    spec = variant_spec(spec, parametrization)
    data = load_level(table_path, spec)
    priors = resolve_priors(spec, data)  # from the real data: the same priors for every simulation
    model = build_model(data, spec, priors, observed_as_data=True)
    decision = parametrization_of(data, spec)
    if any(d["mode"] == "auto" for d in decision.values()):
        fit = auto_refitter(data, spec, priors, inference, {_key(decision): model})
    else:
        fit = refitter(model, inference)
    compile_seconds = time.perf_counter() - t0
    log.info("%s, %s: model %s in %.1f s; %d simulation(s) to fit with %s, %d chains x (%d tune + %d draws)",
             spec["level"], spec["model"]["parametrization"],
             "built (compiled per decision, when a simulation needs it)" if hasattr(fit, "decided") else "compiled",
             compile_seconds, len(indices), inference["sampler"], inference["chains"], inference["tune"],
             inference["draws"])
    records = [simulate_once(model, fit, spec, seed=seed, index=index, y_dtype=data.y.dtype, draws=draws)
               for index, seed in zip(indices, seeds, strict=True)]
    compile_seconds += getattr(fit, "compile_seconds", 0.0)  # auto: the decisions compiled on the way
    write_json({"compile_seconds": round(compile_seconds, 2), "simulations": records}, out_path)
    return records


def simulate_once(model, fit, spec: dict, *, seed: int, index: int, y_dtype, draws: int) -> dict:
    """One simulation of the variant ``spec``: draw every parameter and the data from the prior (seeded),
    fit them with ``fit`` (:func:`refitter`), rank the truth."""
    import pymc as pm

    parametrization = spec["model"]["parametrization"]
    t0 = time.perf_counter()
    # One draw: FAST_COMPILE skips the C compilation and most graph rewrites (0.3 s instead of 0.8 s).
    prior = pm.sample_prior_predictive(draws=1, model=model, random_seed=seed,
                                       compile_kwargs=PREDICTIVE_COMPILE)
    names = [n for n in parameters(spec) if n in prior.prior]
    truth = {}
    for n in names:
        truth.update(_flat(prior.prior[n].isel(chain=0, draw=0)))
    y = np.asarray(prior.prior_predictive[LIKELIHOOD].isel(chain=0, draw=0).values, dtype=y_dtype)
    idata = fit(y, seed + 1)
    kept, min_ess = thinned(idata.posterior, names, draws)
    n = int(kept.sizes["sample"])
    ranks = ranks_of(truth, kept)
    # With fewer than L kept draws (an ESS below L), put the rank on the common scale 0..L: if r is uniform
    # on 0..n, (r + U) / (n + 1) is uniform on (0, 1) (U uniform, seeded).
    rng = np.random.default_rng(seed)
    scaled = {k: r if n == draws else int(np.floor((r + rng.uniform()) / (n + 1) * (draws + 1))) for k, r in ranks.items()}
    record = {
        "index": index, "seed": seed, "parametrization": parametrization,
        "draws_kept": n, "max_rank": draws, "min_ess_bulk": min_ess,
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "decided": getattr(fit, "decided", None),  # auto: the parametrization decided on this data set
        "seconds": round(time.perf_counter() - t0 - getattr(fit, "last_compile", 0.0), 2),  # compilation apart
        "truth": truth, "ranks_among_kept": ranks, "ranks": scaled,
    }
    log.info("simulation %d (%s): %d divergences, min bulk ESS %.0f, %d kept draws, %.1f s", index,
             parametrization, record["divergences"], min_ess, record["draws_kept"], record["seconds"])
    return record


def band_prob(n_parameters: int) -> float:
    """Per-parameter band probability that holds the family-wise error of ``n_parameters`` at FAMILY_ERROR."""
    return 1.0 - FAMILY_ERROR / max(n_parameters, 1)


EXACT_BAND_MAX_N = 5000  # above: the band's pointwise level is the one computed for this n (see ecdf_band)


def ecdf_band(n_sims: int, max_rank: int, prob: float = 1.0 - FAMILY_ERROR):
    """Evaluation points z_i = i / (L + 1), i = 1..L, and the ``prob`` simultaneous band of the ECDF of
    ``n_sims`` uniform ranks on 0..L (equivalently of n uniform values, evaluated at the z_i).

    The band is the "optimized" band of Säilynoja, Bürkner and Vehtari (2022), as ArviZ 0.x computed it
    (``arviz.stats.ecdf_utils.ecdf_confidence_band(method="optimized")``, gone from ArviZ 1.x, whose
    arviz-stats only simulates): the pointwise binomial intervals of level gamma at every z_i, with gamma
    chosen so that the exact probability that a uniform ECDF stays inside all of them at once is ``prob``.
    Deterministic, no simulation; identical to ArviZ 0.x's band. Its cost grows like L * n, so above
    ``EXACT_BAND_MAX_N`` values (LOO-PIT of large data sets; never SBC) gamma is the one computed for
    ``EXACT_BAND_MAX_N`` values: gamma still grows slowly with n (0.95 band, L = 100: 0.99735 at n = 1000,
    0.99761 at 4000, 0.99769 at 8000), so such a band is a little narrow. Returns (z, lower, upper),
    each of length L.
    """
    from scipy.stats import binom

    n = int(n_sims)
    z = np.arange(1, max_rank + 1) / (max_rank + 1)
    gamma = _optimized_gamma(min(n, EXACT_BAND_MAX_N), int(max_rank), float(prob))
    count_lower, count_upper = binom.interval(gamma, n, z)
    return z, count_lower / n, count_upper / n


@functools.lru_cache(maxsize=64)
def _optimized_gamma(n: int, max_rank: int, prob: float) -> float:
    """The pointwise level whose binomial intervals at z_i = i / (L + 1) hold a uniform ECDF of n values
    inside all of them with probability ``prob``: as ArviZ 0.x, |P(inside) - prob| minimised over gamma in
    (prob, 1) by bounded Brent (a step function of gamma: the counts are integers)."""
    from scipy.optimize import minimize_scalar

    if not 0 < prob < 1:
        raise ValueError(f"band probability must lie in (0, 1), got {prob}")
    z = np.arange(1, max_rank + 1) / (max_rank + 1)
    return float(minimize_scalar(lambda g: abs(_band_interior_probability(g, n, z) - prob), bounds=(prob, 1),
                                 method="bounded").x)


def _band_interior_probability(gamma: float, n: int, cdf: np.ndarray) -> float:
    """P(a uniform ECDF of n values stays inside the pointwise ``gamma`` binomial intervals at every point
    of ``cdf``): forward recursion over the points on the counts inside the band, where the count at the
    next point is the count here plus a Binomial(n - count, (F_i - F_{i-1}) / (1 - F_{i-1})).

    The interior counts are taken as ArviZ 0.x took them, ``int(lower * n)`` to ``int(upper * n)``
    inclusive, truncating the float products (29 / 100 * 100 = 28.999... -> 28); kept so that the bands,
    and with them the verdicts, are those of the earlier version."""
    from scipy.stats import binom

    count_lower, count_upper = binom.interval(gamma, n, cdf)
    lower = (count_lower / n * n).astype(int)
    upper = (count_upper / n * n).astype(int) + 1  # exclusive
    previous = np.insert(cdf[:-1], 0, 0.0)
    step = (cdf - previous) / (1.0 - previous)
    left, prob_left = np.arange(1), np.ones(1)
    for i in range(cdf.size):
        right = np.arange(lower[i], upper[i])
        conditional = binom.pmf(right[None, :] - left[:, None], n - left[:, None], step[i])
        prob_left = prob_left @ conditional
        left = right
    return float(prob_left.sum())


def uniformity(ranks: np.ndarray, max_rank: int, band) -> dict:
    """ECDF inside the simultaneous band? Plus a chi-square p-value over ``BINS`` bins of the ranks."""
    from scipy import stats

    z, lower, upper = band
    ecdf = np.array([np.mean(ranks <= i - 1) for i in range(1, max_rank + 1)])
    outside = (ecdf < lower - 1e-12) | (ecdf > upper + 1e-12)
    edges = np.linspace(0, max_rank + 1, BINS + 1)
    observed = np.histogram(ranks, bins=edges)[0]
    sizes = np.diff(np.floor(edges - 1e-9)).clip(min=0)  # rank values per bin
    expected = ranks.size * sizes / sizes.sum()
    p = float(stats.chisquare(observed, expected).pvalue)
    return {"inside_band": bool(not outside.any()), "points_outside": int(outside.sum()),
            "max_ecdf_diff": float(np.max(np.abs(ecdf - z))), "chi2_p": p, "ecdf": ecdf.tolist()}


def summarize(record_paths, summary_path, hist_path, ecdf_path, *, title: str) -> dict:
    """Gather the simulations of one variant: verdict per parameter, rank histograms, ECDF differences."""
    jobs = [read_json(p) for p in record_paths]
    records = sorted((r for job in jobs for r in job["simulations"]), key=lambda r: r["index"])
    max_rank = records[0]["max_rank"]
    names = list(records[0]["ranks"])
    ranks = {n: np.array([r["ranks"][n] for r in records]) for n in names}
    prob = band_prob(len(names))
    band = ecdf_band(len(records), max_rank, prob)
    params = {n: uniformity(ranks[n], max_rank, band) for n in names}
    diverged = sum(r["divergences"] > 0 for r in records)
    summary = {
        "simulations": len(records), "max_rank": max_rank, "band_prob": prob, "family_wise_error": FAMILY_ERROR,
        "parametrization": records[0]["parametrization"],
        "simulations_with_divergences": diverged,
        # auto: how many simulations got each parametrization, decided on their own data
        "decided": dict(collections.Counter(r["decided"] for r in records if r.get("decided"))),
        "simulations_with_fewer_than_max_rank_effective_draws": sum(r["draws_kept"] < max_rank for r in records),
        "median_seconds": float(np.median([r["seconds"] for r in records])),  # a fit, compilation apart
        "jobs": len(jobs), "median_compile_seconds": float(np.median([j["compile_seconds"] for j in jobs])),
        "calibrated": all(p["inside_band"] for p in params.values()),
        "miscalibrated": [n for n, p in params.items() if not p["inside_band"]],
        "parameters": {n: {k: v for k, v in p.items() if k != "ecdf"} for n, p in params.items()},
    }
    save_figure(_hist_plot(ranks, max_rank, len(records), title), hist_path)
    save_figure(_ecdf_plot(params, band, title, prob), ecdf_path)
    write_json(summary, summary_path)
    verdict = "calibrated" if summary["calibrated"] else f"MISCALIBRATED: {', '.join(summary['miscalibrated'])}"
    log.info("%s: %d simulations (%d with divergences): %s", title, len(records), diverged, verdict)
    return summary


def _grid(n: int):
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def _hist_plot(ranks: dict, max_rank: int, n_sims: int, title: str):
    from scipy import stats

    fig, axes = _grid(len(ranks))
    edges = np.linspace(0, max_rank + 1, BINS + 1)
    expected = n_sims / BINS
    lo, hi = stats.binom.ppf([0.005, 0.995], n_sims, 1 / BINS)
    for ax, (name, r) in zip(axes, ranks.items()):
        ax.axhspan(lo, hi, color="0.9")
        ax.axhline(expected, color="0.5", lw=0.8)
        ax.hist(r, bins=edges, color="C0", alpha=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
    fig.suptitle(f"{title}: rank histograms ({n_sims} simulations; grey: 99% range of a bin under uniformity)")
    fig.tight_layout()
    return fig


def _ecdf_plot(params: dict, band, title: str, prob: float):
    z, lower, upper = band
    fig, axes = _grid(len(params))
    for ax, (name, p) in zip(axes, params.items()):
        ax.fill_between(z, lower - z, upper - z, color="0.85", step="mid")
        ax.plot(z, np.asarray(p["ecdf"]) - z, color="C0" if p["inside_band"] else "C3", drawstyle="steps-mid")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(f"{name}{'' if p['inside_band'] else ' (outside)'}", fontsize=9,
                     color="black" if p["inside_band"] else "C3")
    fig.suptitle(f"{title}: ECDF difference of the ranks, {100 * prob:.2f}% simultaneous bands "
                 f"(family-wise {100 * FAMILY_ERROR:.0f}% over {len(params)} parameters)")
    fig.tight_layout()
    return fig


def collect(summary_paths, out_path) -> dict:
    """One verdict per level and variant of an analysis (from .../sbc/<level>/<variant>/summary.json)."""
    from pathlib import Path

    rows = []
    for path in summary_paths:
        s = read_json(path)
        level, variant = Path(path).parts[-3], Path(path).parts[-2]
        rows.append({"level": level, "variant": variant, "simulations": s["simulations"],
                     "calibrated": s["calibrated"], "miscalibrated": s["miscalibrated"],
                     "simulations_with_divergences": s["simulations_with_divergences"]})
    out = {"calibrated": all(r["calibrated"] for r in rows), "variants": rows}
    write_json(out, out_path)
    return out
