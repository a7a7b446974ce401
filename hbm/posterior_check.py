"""Stage 4: posterior predictive checks of one level.

Writes posterior_predictive.nc and .json (Bayesian p-values of mean, sd, min and max; 50 % and 90 %
central interval coverage overall and per group; PSIS-LOO elpd with Pareto k counts; LOO-PIT) and the
plots: posterior predictive, LOO-PIT, shrinkage.
"""

from __future__ import annotations

import logging

import numpy as np

from hbm import diagnostics, plots, provenance
from hbm.io import read_json, read_netcdf, save_figure, write_json, write_netcdf
from hbm.model import PREDICTIVE_COMPILE
from hbm.models import LIKELIHOOD, build_model, fitted_flips, load_level, resolve_priors

log = logging.getLogger(__name__)

STATISTICS = {"mean": np.mean, "sd": lambda a, axis: np.std(a, axis=axis, ddof=1), "min": np.min, "max": np.max}


def p_values(y_obs: np.ndarray, y_rep: np.ndarray) -> dict:
    """P(T(y_rep) >= T(y)) for each test statistic; ``y_rep`` is (draws, observations)."""
    return {name: float(np.mean(f(y_rep, axis=1) >= f(y_obs, axis=0))) for name, f in STATISTICS.items()}


def coverage(y_obs, y_rep, group_idx, labels, widths=(0.5, 0.9)) -> dict:
    """Share of observations inside their central posterior predictive intervals, overall and per group."""
    out = {}
    for w in widths:
        lo, hi = np.quantile(y_rep, [(1 - w) / 2, (1 + w) / 2], axis=0)
        inside = (y_obs >= lo) & (y_obs <= hi)
        per_group = np.bincount(group_idx, weights=inside, minlength=len(labels)) / np.maximum(
            np.bincount(group_idx, minlength=len(labels)), 1)
        out[f"{int(w * 100)}"] = {"nominal": w, "overall": float(inside.mean()),
                                  "per_group": dict(zip(labels, map(float, per_group)))}
    return out


def loo_summary(idata, pareto_k_threshold: float) -> dict:
    import arviz as az

    loo = az.loo(idata, pointwise=True)
    k = np.asarray(loo.pareto_k).ravel()
    return {
        "elpd_loo": float(loo.elpd), "se": float(loo.se), "p_loo": float(loo.p),
        "pareto_k": {"good (k < 0.5)": int((k < 0.5).sum()),
                     f"ok (0.5 <= k < {pareto_k_threshold})": int(((k >= 0.5) & (k < pareto_k_threshold)).sum()),
                     f"bad (k >= {pareto_k_threshold})": int((k >= pareto_k_threshold).sum())},
        "max_pareto_k": float(k.max()),
        "passed": bool((k < pareto_k_threshold).all()),
    }


def loo_pit_values(idata, rng: np.random.Generator, block: int = 2048) -> np.ndarray:
    """LOO-PIT of every observation (flattened), randomized where the outcome has ties:

        PIT_i = P_loo(y_rep < y_i) + U_i * P_loo(y_rep = y_i),   U_i ~ Uniform(0, 1) from ``rng``,

    with P_loo the posterior predictive draws weighted by their PSIS-LOO weights (ArviZ's ``loo``). For a
    calibrated model these are uniform also for counts; ``P_loo(y_rep <= y_i)`` is not (it piles up near
    1 when a few values take most of the mass), and ArviZ 0.x's loo_pit smoothed integer outcomes,
    flagging well calibrated count models (issue 21: KS 0.186 against 0.03). For continuous outcomes ties
    have probability zero and this is the usual LOO-PIT. Needs the posterior_predictive, observed_data
    and log_likelihood groups; ``block`` observations at a time bound the memory."""
    import arviz as az
    from scipy.special import logsumexp

    y_rep = idata["posterior_predictive"][LIKELIHOOD]
    y_obs = idata["observed_data"][LIKELIHOOD]
    log_w = az.loo(idata, var_name=LIKELIHOOD, pointwise=True).log_weights
    obs_dims = [d for d in y_rep.dims if d not in ("chain", "draw")]
    if len(obs_dims) != 1:  # one observation dimension, in the order of the flattened observations
        y_rep, y_obs, log_w = (a.stack(__obs__=obs_dims) for a in (y_rep, y_obs, log_w))
        obs_dims = ["__obs__"]
    dim = obs_dims[0]
    n, draws = y_obs.sizes[dim], y_rep.sizes["chain"] * y_rep.sizes["draw"]
    u = rng.uniform(size=n)
    pit = np.empty(n)
    for start in range(0, n, block):
        s = slice(start, start + block)
        rep = y_rep.isel({dim: s}).transpose(dim, "chain", "draw").values.reshape(-1, draws)
        lw = log_w.isel({dim: s}).transpose(dim, "chain", "draw").values.reshape(rep.shape)
        y = y_obs.isel({dim: s}).values.reshape(-1, 1)
        w = np.exp(lw - logsumexp(lw, axis=1, keepdims=True))
        pit[s] = np.sum(w * (rep < y), axis=1) + u[s] * np.sum(w * (rep == y), axis=1)
    return np.clip(pit, 0.0, 1.0)


def loo_pit_summary(idata, seed: int = 0, pit: np.ndarray | None = None) -> dict:
    """LOO-PIT values should look uniform; report a KS test and the tails' shares. ``pit``: the values of
    :func:`loo_pit_values` when the caller has them (to plot them too); else they are computed here with
    a Generator seeded by ``seed``."""
    from scipy import stats

    if pit is None:
        pit = loo_pit_values(idata, np.random.default_rng(seed))
    pit = np.asarray(pit, dtype=float).ravel()
    ks = stats.kstest(pit, "uniform")
    return {"ks_statistic": float(ks.statistic), "ks_p_value": float(ks.pvalue),
            "share_below_0.05": float(np.mean(pit < 0.05)), "share_above_0.95": float(np.mean(pit > 0.95))}


def shrinkage_table(data, idata) -> dict:
    post = idata.posterior["theta"]
    # each group's own estimate on theta's scale (log scale for the log-link families)
    raw_n, raw_mean = data.family_def.raw_location(data.y, data.group_idx, len(data.groups))
    return {
        "scale": "log" if data.log_link else "identity",
        "group": data.groups, "n": raw_n.tolist(), "raw_mean": raw_mean.tolist(),
        "posterior_mean": post.mean(("chain", "draw")).values.tolist(),
        "q05": post.quantile(0.05, ("chain", "draw")).values.tolist(),
        "q95": post.quantile(0.95, ("chain", "draw")).values.tolist(),
        # the population mean is the common centre only without parents or group-level predictors
        "mu": float(idata.posterior["mu"].mean()) if len(data.layers) == 1 and not data.predictors else None,
    }


def table_mix(table_path) -> dict | None:
    """How much price and promotion vary within the level's summed unit-periods (:func:`hbm.aggregate.mix`),
    from the level table's metadata."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(table_path).metadata or {}
    return json.loads(meta[b"hbm.mix"]) if b"hbm.mix" in meta else None


def posterior_check(table_path, posterior_path, diagnostics_path, idata_path, summary_path,
                    ppc_plot_path, loo_pit_plot_path, shrinkage_plot_path, *, spec: dict, seed: int,
                    pareto_k: float, on_failure: str, sources: dict | None = None) -> dict:
    import pymc as pm

    diagnostics.require_passed(read_json(diagnostics_path), on_failure, str(diagnostics_path))
    data = load_level(table_path, spec)
    idata = read_netcdf(posterior_path)
    model = build_model(data, spec, resolve_priors(spec, data), flipped=fitted_flips(idata))
    log.info("level %s: posterior predictive draws, seed %d", spec["level"], seed)
    pp = pm.sample_posterior_predictive(idata, model=model, random_seed=seed, progressbar=False,
                                        compile_kwargs=PREDICTIVE_COMPILE)
    idata["posterior_predictive"] = pp["posterior_predictive"]
    y_rep = idata.posterior_predictive[LIKELIHOOD].stack(sample=("chain", "draw")).transpose("sample", ...).values
    shrink = shrinkage_table(data, idata)
    # randomized LOO-PIT (ties of discrete outcomes spread uniformly), seeded from the job's seed
    pit = loo_pit_values(idata, np.random.default_rng([seed, 1]))
    summary = {
        "level": spec["level"], "seed": seed,
        "p_values": p_values(data.y, y_rep),
        "coverage": coverage(data.y, y_rep, data.group_idx, data.groups),
        "loo": loo_summary(idata, pareto_k),
        "loo_pit": loo_pit_summary(idata, pit=pit),
        "shrinkage": shrink,
        "mix": table_mix(table_path),
    }
    log.info("level %s: elpd_loo %.1f (se %.1f), max Pareto k %.2f, 90%% coverage %.2f", spec["level"],
             summary["loo"]["elpd_loo"], summary["loo"]["se"], summary["loo"]["max_pareto_k"],
             summary["coverage"]["90"]["overall"])
    provenance.stamp(pp, {**provenance.netcdf_attrs(sources), "hbm_level": spec["level"], "hbm_seed": seed})
    write_netcdf(pp, idata_path)
    write_json(summary, summary_path)
    save_figure(plots.predictive(idata, "posterior", title=f"Posterior predictive check: {spec['level']}",
                                 log1p=data.family_def.plot_scale == "log1p"), ppc_plot_path)
    save_figure(plots.loo_pit(pit, title=f"LOO-PIT: {spec['level']}"), loo_pit_plot_path)
    save_figure(plots.shrinkage(shrink["raw_mean"], shrink["n"], shrink["posterior_mean"], shrink["q05"],
                                shrink["q95"], shrink["group"], spec["level"], shrink["mu"], shrink["scale"]),
                shrinkage_plot_path)
    return summary
