"""Convergence diagnostics of a fit, computed by ArviZ from InferenceData.

Thresholds follow the Bayesian workflow (Vehtari et al. 2021, Gelman et al. 2020): R-hat <= 1.01,
bulk and tail ESS >= 100 per chain, no divergent transitions, E-BFMI >= 0.3 in every chain.
"""

from __future__ import annotations

import numpy as np

from hbm.errors import DiagnosticsError

TREE_DEPTH_STATS = ("maxdepth_reached", "reached_max_treedepth")  # nutpie, PyMC/numpyro


def _varying(posterior) -> list[str]:
    """Posterior variables whose draws vary (constant ones have no R-hat or ESS)."""
    return [v for v in posterior.data_vars if not float(posterior[v].std()) == 0.0]  # NaN stays, and fails


# Divergent draws whose mean percentile lies this many standard errors (sqrt(1 / (12 k)) for k draws
# placed at random) from 1/2 are said to concentrate there.
CONCENTRATED = 2.5


def divergences_at(post, diverging) -> tuple[str, str]:
    """Where the divergent transitions concentrate: of the scalar variables, the one whose divergent draws
    sit furthest from its typical values, measured by their mean percentile among all its draws (a funnel
    diverges where its sd is smallest: percentiles near 0), and ``"low"`` or ``"high"``; ``("", "")`` when no
    variable's shift exceeds ``CONCENTRATED`` standard errors of k draws placed at random. Vectors are left
    out: with a handful of divergences, the most extreme of hundreds of elements is chance."""
    div = np.asarray(diverging, dtype=bool).ravel()
    k = int(div.sum())
    if not k:
        return "", ""
    best, where, side = CONCENTRATED * np.sqrt(1 / (12 * k)), "", ""
    for name, da in post.data_vars.items():
        if da.ndim != 2:  # chain, draw only
            continue
        values = np.asarray(da.values, dtype="float64").ravel()
        if values.size != div.size or not np.isfinite(values).all() or values.std() == 0:
            continue
        percentile = (np.argsort(np.argsort(values)) + 0.5) / values.size
        shift = float(percentile[div].mean()) - 0.5
        if abs(shift) > best:
            best, where, side = abs(shift), str(name), "low" if shift < 0 else "high"
    return where, side


def _extreme(ds, worst: str, constant=None) -> tuple[float, str]:
    """The worst value over every variable (``worst`` is "max" or "min"; NaN is worst of all) and where.
    ``constant``: per variable, the elements whose draws are all equal (e.g. the level steps of a series alone
    in its group, zero by construction), left out: they have no R-hat or ESS."""
    found = []
    for name, da in ds.data_vars.items():
        values = np.asarray(da.values, dtype="float64")
        if constant is not None and name in constant:
            values = np.where(np.asarray(constant[name].values, dtype=bool), np.inf if worst == "min" else -np.inf,
                              values)
        if values.size == 0 or not (np.isfinite(values) | np.isnan(values)).any():
            continue
        flat = values.ravel()
        nan = np.flatnonzero(np.isnan(flat))
        i = int(nan[0]) if nan.size else int(flat.argmax() if worst == "max" else flat.argmin())
        where = name
        if da.dims:
            idx = np.unravel_index(i, values.shape)
            where += "[" + ", ".join(str(da[d].values[k]) for d, k in zip(da.dims, idx)) + "]"
        found.append((float(flat[i]), where))
    if not found:
        return float("nan"), ""
    nans = [f for f in found if np.isnan(f[0])]
    if nans:
        return nans[0]
    return (max if worst == "max" else min)(found, key=lambda f: f[0])


def compute(idata, thresholds: dict) -> dict:
    """Diagnostics of one fit, with each check's value, threshold and verdict."""
    import arviz as az

    post, stats = idata["posterior"].to_dataset(), idata["sample_stats"].to_dataset()
    chains, draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    names = _varying(post)
    constant = post[names].std(dim=("chain", "draw")) == 0
    rhat, rhat_at = _extreme(az.rhat(post[names]), "max", constant)
    bulk, bulk_at = _extreme(az.ess(post[names], method="bulk"), "min", constant)
    tail, tail_at = _extreme(az.ess(post[names], method="tail"), "min", constant)
    divergences = int(stats["diverging"].sum())
    ebfmi = [float(x) for x in np.atleast_1d(az.bfmi(idata)["energy"].values)]
    depth_stat = next((s for s in TREE_DEPTH_STATS if s in stats), None)
    depth_hits = int(stats[depth_stat].sum()) if depth_stat else None
    min_ess = thresholds["ess_per_chain"] * chains
    at, side = divergences_at(post, stats["diverging"].values)  # the variable the failed check names
    checks = [
        _check("r_hat", "max R-hat", rhat, "<=", thresholds["r_hat"], rhat_at),
        _check("ess_bulk", "min bulk ESS", bulk, ">=", min_ess, bulk_at),
        _check("ess_tail", "min tail ESS", tail, ">=", min_ess, tail_at),
        _check("divergences", "divergent transitions", divergences, "<=", thresholds["divergences"], at),
        _check("ebfmi", "min E-BFMI", min(ebfmi), ">=", thresholds["ebfmi"], ""),
    ]
    if at:
        checks[3]["detail"] = f"most at {side} {at}"
    return {
        "chains": chains,
        "draws": draws,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "ebfmi_per_chain": ebfmi,
        "tree_depth_hits": depth_hits,
        "variables": names,
    }


def _check(key, label, value, op, threshold, where) -> dict:
    ok = bool(np.isfinite(value)) and (value <= threshold if op == "<=" else value >= threshold)
    return {"name": key, "label": label, "value": value, "op": op, "threshold": threshold, "where": where, "passed": ok}


def failures(diag: dict) -> list[str]:
    """One line per failed check, e.g. ``max R-hat 1.05 (tau) > 1.01``."""
    flip = {"<=": ">", ">=": "<"}
    return [
        f"{c['label']} {c['value']:.4g}" + (f" ({c.get('detail') or c['where']})" if c["where"] else "")
        + f" {flip[c['op']]} {c['threshold']:.4g}"
        for c in diag["checks"]
        if not c["passed"]
    ]


def require_passed(diag: dict, on_failure: str, source: str) -> None:
    """Stop the run if the fit failed and the analysis says failures stop it."""
    if diag["passed"] or on_failure != "stop":
        return
    raise DiagnosticsError(
        f"{source}: the fit failed its convergence diagnostics: " + "; ".join(failures(diag))
        + ". The fit is kept for inspection. Change the model or sampler settings, or set "
        "'checks.on_failure: flag' to report the failed fit instead of stopping."
    )
