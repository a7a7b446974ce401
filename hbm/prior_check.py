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
from hbm.models import LIKELIHOOD, build_model, load_level, resolve_priors

log = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


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
    import pymc as pm

    data = load_level(table_path, spec)
    model = build_model(data, spec, resolve_priors(spec, data))
    log.info("level %s: %d prior predictive draws, seed %d", spec["level"], draws, seed)
    try:
        idata = pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
    except ValueError as e:
        if "too large" not in str(e) and "too small" not in str(e):
            raise
        # numpy cannot draw counts with means beyond ~1e19: the priors put exp(linear predictor) there
        raise ConfigError(
            f"level {spec['level']}: the priors put the count mean beyond what can be simulated ({str(e).splitlines()[0]}). "
            "Some prior on the log scale is far too wide for these data, typically the covariate slopes "
            "(default Normal(0, 2.5 / sd(x)): for a 0/1 indicator that is a factor of e^±15 at 2 sd); set "
            "model.priors.beta (e.g. {dist: normal, mu: 0, sigma: 0.5}) or other priors in the analysis config"
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
                                 log1p=data.count), plot_path)
    return summary
