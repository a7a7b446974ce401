"""Stage 2: prior predictive check of one level -> prior_predictive.nc, .json, .png.

Compares quantiles of the observed target with the spread of the same quantiles over prior predictive
draws, and reports the share of prior predictive values inside the analysis's plausible range.
"""

from __future__ import annotations

import logging

import numpy as np

from hbm import plots, provenance
from hbm.errors import ConfigError
from hbm.io import save_figure, write_json, write_netcdf
from hbm.model import PREDICTIVE_COMPILE
from hbm.models import LIKELIHOOD, build_model, load_level, resolve_priors

log = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# What drawing counts with an absurd mean raises: numpy's "lam value too large" (ValueError), and with
# PyTensor's numba backend a ZeroDivisionError (or an overflow).
SIMULATION_ERRORS = (ValueError, ZeroDivisionError, OverflowError, FloatingPointError)
NARROWING = 0.01


def _narrowed(prior: dict) -> dict:
    """The same prior with its scale parameters (sigma, beta) times ``NARROWING``."""
    out = dict(prior)
    for key in ("sigma", "beta"):
        if key in out and out.get("dist") != "invgamma":
            out[key] = (np.asarray(out[key], dtype="float64") * NARROWING).tolist()
    return out


def too_wide(data, spec: dict, priors: dict, draws: int, seed: int) -> list[str]:
    """The priors that alone make the prior predictive impossible to simulate: narrowing each one in turn,
    those whose narrowing lets the draws through. Empty if none does (then the failure is something else)."""
    found = []
    for name, prior in priors.items():
        trial = {**priors, name: _narrowed(prior)}
        try:
            _simulate(build_model(data, spec, trial), draws, seed, data.family_def)
        except SIMULATION_ERRORS:
            continue
        found.append(name)
    return found


def _simulate(model, draws: int, seed: int, family):
    """Prior predictive draws; counts that overflowed (numba returns the smallest int64 instead of raising)
    and values of a continuous log-link family that overflowed to infinity (or NaN) raise OverflowError like
    the other backends' errors. ``family``: the registry entry (:mod:`hbm.model.families`)."""
    import pymc as pm

    idata = pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed, compile_kwargs=PREDICTIVE_COMPILE)
    y = idata["prior_predictive"][LIKELIHOOD].values
    if family.discrete and (y < 0).any():
        raise OverflowError(f"{int((y < 0).sum())} simulated counts overflowed to negative values")
    if family.log_link and not family.discrete and not np.isfinite(y).all():
        raise OverflowError(f"{int((~np.isfinite(y)).sum())} simulated values overflowed to infinity or NaN")
    return idata


def summarize(y_obs: np.ndarray, y_rep: np.ndarray, plausible_range) -> dict:
    """``y_rep`` has shape (draws, observations)."""
    per_draw = np.quantile(y_rep, QUANTILES, axis=1)  # (quantile, draw)
    observed = np.quantile(y_obs, QUANTILES)
    rows = []
    for q, obs, draws in zip(QUANTILES, observed, per_draw):
        lo, mid, hi = np.quantile(draws, [0.05, 0.5, 0.95])
        rows.append({"quantile": q, "observed": float(obs), "prior_median": float(mid), "prior_q05": float(lo),
                     "prior_q95": float(hi), "observed_inside_90": bool(lo <= obs <= hi)})
    out = {"draws": int(y_rep.shape[0]), "quantiles": rows,
           "observed_quantiles_inside_90": int(sum(r["observed_inside_90"] for r in rows))}
    if plausible_range is not None:
        lo, hi = plausible_range
        out["plausible_range"] = [float(lo), float(hi)]
        out["share_in_plausible_range"] = float(np.mean((y_rep >= lo) & (y_rep <= hi)))
    return out


def prior_check(table_path, idata_path, summary_path, plot_path, *, spec: dict, draws: int,
                plausible_range, seed: int, sources: dict | None = None) -> dict:
    data = load_level(table_path, spec)
    priors = resolve_priors(spec, data)
    model = build_model(data, spec, priors)
    log.info("level %s: %d prior predictive draws, seed %d", spec["level"], draws, seed)
    try:
        idata = _simulate(model, draws, seed, data.family_def)
    except SIMULATION_ERRORS as e:
        culprits = too_wide(data, spec, priors, draws, seed)
        if not culprits:
            raise
        names = " and ".join(f"model.priors.{c}" for c in culprits)
        # e.g. numpy's "lam value too large" or, with PyTensor's numba backend, a ZeroDivisionError: counts
        # (or continuous values) whose mean is far beyond anything the data could hold cannot be drawn
        what = "count mean" if data.family_def.discrete else "mean"
        raise ConfigError(
            f"level {spec['level']}: the priors put the {what} beyond what can be simulated "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}). The prior too wide "
            f"for these data is {names} (with it narrowed 100-fold the prior predictive simulates): set "
            f"{names} in the analysis config to a narrower prior on the log scale, e.g. "
            "{dist: normal, mu: 0, sigma: 0.5} for a slope"
        ) from None
    y_rep = idata.prior_predictive[LIKELIHOOD].stack(sample=("chain", "draw")).transpose("sample", ...).values
    summary = {"level": spec["level"], "seed": seed, **summarize(data.y, y_rep, plausible_range)}
    if "share_in_plausible_range" in summary:
        log.info("level %s: %.1f%% of prior predictive values inside the plausible range %s", spec["level"],
                 100 * summary["share_in_plausible_range"], plausible_range)
    provenance.stamp(idata, {**provenance.netcdf_attrs(sources), "hbm_level": spec["level"], "hbm_seed": seed})
    write_netcdf(idata, idata_path)
    write_json(summary, summary_path)
    save_figure(plots.predictive(idata, "prior", plausible_range, f"Prior predictive check: {spec['level']}",
                                 log1p=data.family_def.plot_scale == "log1p"), plot_path)
    return summary
