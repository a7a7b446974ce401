"""Pooling comparison of one level: complete, no and partial pooling compared by PSIS-LOO.

A hierarchical model exists to answer whether the groups should share information. Each level is
refitted twice besides its partially pooled fit (``fits/<level>/posterior.nc``):

- ``complete``: every unit takes the population values (theta_j = mu, trend_j = trend_mu, ...);
- ``none``: each unit's effects get independent priors (no sds, no parents).

:func:`fit_variant` writes ``pooling/<level>/<variant>.nc`` and ``<variant>_diagnostics.json``;
:func:`compare_pooling` runs ``az.compare`` (PSIS-LOO, stacking weights) on the three and writes
``comparison.json`` (elpd_loo, p_loo, elpd difference and its standard error, weights, Pareto k counts and
each variant's convergence diagnostics, so that a variant that did not converge is shown, never hidden)
and ``comparison.png``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from hbm import diagnostics, log_likelihood
from hbm.io import open_netcdf, read_json, save_figure, write_json, write_netcdf

log = logging.getLogger(__name__)

VARIANTS = ("complete", "none")  # fitted by the fit_pooling rule; "partial" is the level's own fit
LABELS = {"partial": "partial pooling", "complete": "complete pooling", "none": "no pooling"}
ORDER = ("complete", "partial", "none")  # from the most to the least pooled
CLEAR = 2.0  # a difference in elpd larger than this many standard errors (dse) counts as clear ...
SMALL = 4.0  # ... unless it is below this: then it is small, and its dse is itself unreliable (Sivula et al. 2022)


def variant_spec(spec: dict, variant: str) -> dict:
    """The level's spec with its pooling variant (see :func:`hbm.models.pooling_of`)."""
    return {**spec, "pooling": variant}


def fit_variant(table_path, posterior_path, diagnostics_path, *, spec: dict, variant: str, inference: dict,
                thresholds: dict, seed: int, threads: int = 1, sources: dict | None = None) -> dict:
    """Fit one pooling variant of a level with the level's sampler settings; write its InferenceData
    (with log_likelihood) and diagnostics. A variant that fails its diagnostics does not stop the run:
    the comparison shows its verdict."""
    from hbm.fit import sample_until_passing, stamp
    from hbm.models import build_model, load_level, resolve_priors

    if variant not in VARIANTS:
        raise ValueError(f"pooling variant {variant!r} is not one of {list(VARIANTS)}")
    data = load_level(table_path, spec)
    vspec = variant_spec(spec, variant)
    priors = resolve_priors(vspec, data)
    t0 = time.perf_counter()
    model = build_model(data, vspec, priors)
    log.info("level %s, %s: %d observations in %d groups; sampling %d chains x (%d tune + %d draws) with %s, "
             "seed %d", spec["level"], LABELS[variant], data.y.size, len(data.groups), inference["chains"],
             inference["tune"], inference["draws"], inference["sampler"], seed)
    idata, diag = sample_until_passing(model, inference, seed, thresholds, cores=threads,
                                       label=f"level {spec['level']}, {LABELS[variant]}: ")
    seconds = time.perf_counter() - t0
    diag.update(level=spec["level"], pooling=variant, sampler=inference["sampler"], seconds=round(seconds, 2))
    for line in diagnostics.failures(diag) or ["all diagnostics passed"]:
        log.info("level %s, %s: %s", spec["level"], LABELS[variant], line)
    stamp(idata, vspec, priors, sources, inference=inference, seed=seed)
    write_netcdf(idata, posterior_path, streamed=log_likelihood.pointwise(model, idata))
    write_json(diag, diagnostics_path)
    return diag


def pareto_k_counts(k, threshold: float) -> dict:
    k = np.asarray(k).ravel()
    return {"good (k < 0.5)": int((k < 0.5).sum()),
            f"ok (0.5 <= k < {threshold})": int(((k >= 0.5) & (k < threshold)).sum()),
            f"bad (k >= {threshold})": int((k >= threshold).sum())}


def _check(diag: dict, name: str):
    return next((c["value"] for c in diag["checks"] if c["name"] == name), None)


def comparison(idatas: dict, diags: dict, pareto_k: float = 0.7) -> dict:
    """PSIS-LOO comparison of the variants in ``idatas`` (name -> InferenceData with log_likelihood, which may
    be read lazily from its file: PSIS-LOO goes a block of observations at a time,
    :func:`hbm.posterior_check.elpd_data`); ``diags``: each variant's diagnostics (``hbm.diagnostics.compute``
    output)."""
    import arviz as az

    from hbm.posterior_check import elpd_data

    loos = {name: elpd_data(idata) for name, idata in idatas.items()}
    table = az.compare(loos, method="stacking", round_to="none")  # unrounded: ArviZ 1 rounds by default
    rows = []
    for name, r in table.iterrows():
        k = np.asarray(loos[name].pareto_k)
        diag = diags[name]
        rows.append({
            "variant": name, "label": LABELS.get(name, name), "rank": int(r["rank"]),
            "elpd_loo": float(r["elpd"]), "se": float(r["se"]), "p_loo": float(r["p"]),
            # hbm's sign: the best minus this one (>= 0). ArviZ 1 reports this one minus the best (<= 0).
            "elpd_diff": -float(r["elpd_diff"]), "dse": float(r["dse"]), "weight": float(r["weight"]),
            "warning": bool(loos[name].warning),
            "pareto_k": pareto_k_counts(k, pareto_k), "max_pareto_k": float(np.nanmax(k)),
            "bad_pareto_k": int((k >= pareto_k).sum()),
            "diagnostics": {"passed": bool(diag["passed"]), "failures": diagnostics.failures(diag),
                            "divergences": _check(diag, "divergences"), "max_r_hat": _check(diag, "r_hat"),
                            "seed": diag.get("seed")},
        })
    out = {"ic": "loo", "method": "stacking", "scale": "log", "pareto_k_threshold": pareto_k,
           "observations": int(np.asarray(next(iter(loos.values())).elpd_i).size),
           "best": rows[0]["variant"], "variants": rows}
    out["summary"] = interpret(out)
    return out


def interpret(result: dict) -> str:
    """One paragraph, from the numbers: which variant predicts best, by how much (in dse), the weights,
    and any variant whose estimate cannot be trusted (failed diagnostics, high Pareto k)."""
    rows = result["variants"]
    best = rows[0]
    parts = [f"{best['label'].capitalize()} predicts best (elpd_loo {best['elpd_loo']:.1f} ± {best['se']:.1f})."]
    for r in rows[1:]:
        diff, dse = r["elpd_diff"], r["dse"]  # ArviZ: best minus this one, >= 0
        if diff <= CLEAR * dse:
            verdict = f"within {CLEAR:g} standard errors of the difference: not clearly worse"
        elif round(diff, 1) < SMALL:  # as printed: "4.0 lower" is not below 4
            verdict = f"more than {CLEAR:g} standard errors of the difference, but below {SMALL:g}: a small difference"
        else:
            verdict = f"more than {CLEAR:g} standard errors of the difference: a clear difference"
        parts.append(f"{r['label'].capitalize()} is {diff:.1f} ± {dse:.1f} lower ({verdict}).")
    by_name = {r["variant"]: r for r in rows}
    ordered = [by_name[v] for v in ORDER if v in by_name] + [r for r in rows if r["variant"] not in ORDER]
    parts.append("Stacking weights: " + ", ".join(f"{r['label']} {r['weight']:.2f}" for r in ordered) + ".")
    failed = [r["label"] for r in ordered if not r["diagnostics"]["passed"]]
    if failed:
        parts.append(f"Caution: {' and '.join(failed)} failed the convergence diagnostics, so "
                     f"{'its elpd is' if len(failed) == 1 else 'their elpds are'} not reliable.")
    high_k = [f"{r['label']} ({r['bad_pareto_k']})" for r in ordered if r["bad_pareto_k"]]
    if high_k:
        parts.append(f"Observations with Pareto k ≥ {result['pareto_k_threshold']:g}: {', '.join(high_k)}; "
                     "PSIS-LOO is unreliable for them, so read that elpd with care.")
    return " ".join(parts)


def plot(result: dict, level: str):
    """elpd_loo of each variant with its standard error, and the difference to the best with dse."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["variants"]
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.75 * len(rows)))
    y = np.arange(len(rows))[::-1]
    elpd = np.array([r["elpd_loo"] for r in rows])
    ax.errorbar(elpd, y, xerr=[r["se"] for r in rows], fmt="o", color="black", mfc="white", capsize=3,
                label="elpd_loo ± se")
    diff_y = y[1:] - 0.25
    ax.errorbar(elpd[0] - np.array([r["elpd_diff"] for r in rows[1:]]), diff_y,
                xerr=[r["dse"] for r in rows[1:]], fmt="^", color="tab:grey", capsize=3,
                label="difference to the best ± dse")
    ax.axvline(elpd[0], color="tab:grey", ls="--", lw=1)
    ax.set_yticks(y, [f"{r['label']}\n(weight {r['weight']:.2f})" for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.4)
    ax.set_xlabel("elpd_loo (log score; higher predicts better)")
    ax.set_title(f"PSIS-LOO comparison of pooling: {level}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def compare_pooling(partial_path, partial_diagnostics_path, variant_paths: dict, variant_diagnostics_paths: dict,
                    json_path, plot_path, *, level: str, pareto_k: float = 0.7) -> dict:
    """Compare a level's partially pooled fit with its pooling variants; write comparison.json and .png.
    Each posterior is read whole but its log-likelihood (draws x rows) a block of observations at a time."""
    from contextlib import ExitStack

    diags = {"partial": read_json(partial_diagnostics_path),
             **{v: read_json(p) for v, p in variant_diagnostics_paths.items()}}
    with ExitStack() as files:
        idatas = {name: files.enter_context(open_netcdf(path, lazy=("log_likelihood",)))
                  for name, path in {"partial": partial_path, **variant_paths}.items()}
        result = {"level": level, **comparison(idatas, diags, pareto_k)}
    for r in result["variants"]:
        log.info("level %s, %s: elpd_loo %.1f (se %.1f), diff %.1f (dse %.1f), weight %.2f, max Pareto k %.2f, "
                 "diagnostics %s", level, r["label"], r["elpd_loo"], r["se"], r["elpd_diff"], r["dse"], r["weight"],
                 r["max_pareto_k"], "passed" if r["diagnostics"]["passed"] else "FAILED")
    log.info("level %s: %s", level, result["summary"])
    write_json(result, json_path)
    save_figure(plot(result, level), plot_path)
    return result
