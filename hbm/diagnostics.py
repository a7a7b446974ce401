"""Convergence diagnostics of a fit, computed by ArviZ from InferenceData.

Thresholds follow the Bayesian workflow (Vehtari et al. 2021, Gelman et al. 2020): R-hat <= 1.01,
bulk and tail ESS >= 100 per chain, no divergent transitions, E-BFMI >= 0.3 in every chain.
"""

from __future__ import annotations

import numpy as np

from hbm.errors import DiagnosticsError

# R-hat's chance level. ArviZ's R-hat splits each of C chains in halves (M = 2C halves of N = draws / 2) and
# reports the larger of the bulk and the folded R-hat. For chains that mix perfectly, every half samples
# the same distribution and its mean varies around the others' with variance sigma^2 tau / N (tau: the
# integrated autocorrelation time, C x draws / ESS), so that the between-halves variance over the
# within-halves one is tau X with X ~ chi^2_(M-1) / (M-1), and R-hat^2 = (N - 1) / N + tau X / N. The
# largest of P parameters' R-hats (two each) is by chance alone at the quantile q^(1/2P) of X with
# probability q. Against benchmarks/rhat_max.py's simulation (3,100 parameters, AR(1) chains, tau 3) the
# medians (q 0.5) this gives for 2 or 4 chains of 1,000 or 2,000 draws, 1.0199 / 1.0117 / 1.0099 / 1.0058,
# lie within 0.0013 above the simulated 1.0193 / 1.0104 / 1.0091 / 1.0054. tau is the longer of the draws'
# (bulk) and the folded draws' (their distance from the median) median autocorrelation time: NUTS draws of a
# well-informed parameter are anticorrelated, so their bulk ESS exceeds the draws (M5's product level: median
# bulk tau 0.39), while the folded draws are not (median folded tau 2.65 there), and the folded R-hat is the
# larger: M5's product level's largest R-hat, 1.017 with 2 chains of 1,000 draws and 1.0094 with 2,000, is
# what chance gives for its 6,125 scalars at tau 2.65 (1.0185 and 1.0093).
R_HAT_PER_PARAMETER = 2      # bulk and folded
CHANCE_Q = 0.5               # the chance level reported: the median of the largest R-hat
SIZING_Q = 0.9               # the escalation ladder sizes draws so that the largest R-hat stays below the
                             # threshold by chance with this probability (hbm.fit.escalate)


def _x_quantile(parameters: int, chains: int, q: float) -> float:
    from scipy import stats

    dof = 2 * chains - 1
    return float(stats.chi2.ppf(q ** (1 / (R_HAT_PER_PARAMETER * max(1, parameters))), dof) / dof)


def chance_r_hat(parameters: int, chains: int, draws: int, tau: float, q: float = CHANCE_Q) -> float:
    """The largest R-hat over ``parameters`` parameters whose ``chains`` chains of ``draws`` draws mix
    perfectly with autocorrelation time ``tau``, by chance alone: exceeded with probability 1 - ``q``."""
    n = draws / 2
    return float(np.sqrt(max(0.0, (n - 1) / n + tau * _x_quantile(parameters, chains, q) / n)))


def draws_for_r_hat(parameters: int, chains: int, tau: float, threshold: float, q: float = SIZING_Q) -> int:
    """Draws per chain for which the largest R-hat of :func:`chance_r_hat` stays below ``threshold`` with
    probability ``q`` (rounded up to a multiple of 100)."""
    n = max(0.0, tau * _x_quantile(parameters, chains, q) - 1) / (threshold ** 2 - 1)
    return int(100 * np.ceil(2 * n / 100))

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
    ess_bulk = az.ess(post[names], method="bulk")
    bulk, bulk_at = _extreme(ess_bulk, "min", constant)
    tail, tail_at = _extreme(az.ess(post[names], method="tail"), "min", constant)
    # every scalar with an R-hat, and its typical autocorrelation time, of the draws (bulk) or of their
    # distance from the median (folded), whichever is longer: R-hat's chance level
    varying = [~np.asarray(constant[v].values, dtype=bool).ravel() for v in names]
    parameters = int(sum(m.sum() for m in varying))
    medians = []
    for ess in (ess_bulk, az.ess(post[names], method="folded")):
        values = np.hstack([np.asarray(ess[v].values, dtype="float64").ravel()[m] for v, m in zip(names, varying)]
                           ) if names else np.array([])
        values = values[np.isfinite(values) & (values > 0)]
        medians.append(float(np.median(values)) if values.size else np.nan)
    typical = float(np.nanmin(medians)) if np.isfinite(medians).any() else None
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
        "parameters": parameters,
        "r_hat_ess": typical,  # the smaller of the median bulk and the median folded ESS
        "r_hat_chance": chance_r_hat(parameters, chains, draws, chains * draws / typical) if typical else None,
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
