"""Validation against a reference posterior -> results/<a>/validation/<level>/reference.json, recovery.json.

A reference is either a summary CSV (param, mean, sd and the Monte Carlo standard error of the mean as
``mcse_mean`` / ``pdb_mcse_mean``, or an ``ess_bulk`` to derive it from: posteriordb's official references
and long-run references) or a long run of the analysis's own model (more draws, higher target_accept:
the model's own reference). For every mapped parameter:

    z = (mean_ours - mean_ref) / sqrt(MCSE_ours**2 + MCSE_ref**2)

and the ratio of posterior sds. A parameter passes when |z| < 4 and its sd is within 10 % of the
reference's, or the two sds differ by less than 4 Monte Carlo standard errors of the sd (``mcse_sd``, ours
and the reference's where it has one): a heavy-tailed posterior (the mean of 3 groups) has an sd whose
estimate from a few thousand draws is itself uncertain by several percent, and a flat 10 % then flags
Monte Carlo noise (measured on grouped's mu: sd ratio 0.884 with mcse_sd about 6 % of the sd). The
level passes when every parameter does.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hbm.errors import ConfigError
from hbm.io import read_netcdf, write_json

log = logging.getLogger(__name__)

Z_MAX = 4.0
SD_TOLERANCE = 0.10


def reference_from_csv(path) -> pd.DataFrame:
    """param -> mean, sd, mcse (from an mcse column, else sd / sqrt(ess_bulk))."""
    ref = pd.read_csv(path).set_index("param")
    mcse = next((c for c in ("mcse_mean", "pdb_mcse_mean") if c in ref), None)
    if mcse is not None:
        ref["mcse"] = ref[mcse]
    elif "ess_bulk" in ref:
        ref["mcse"] = ref["sd"] / np.sqrt(ref["ess_bulk"])
    else:
        raise ConfigError(f"{path}: a reference posterior needs a column mcse_mean, pdb_mcse_mean or ess_bulk "
                          f"(it has {list(ref.columns)})")
    ref["mcse_sd"] = ref["mcse_sd"] if "mcse_sd" in ref else 0.0
    return ref[["mean", "sd", "mcse", "mcse_sd"]]


def reference_from_posterior(idata) -> pd.DataFrame:
    """The summary of a long run, with our own parameter labels."""
    import arviz as az

    s = az.summary(idata, kind="all", round_to="none")
    return pd.DataFrame({"mean": s["mean"], "sd": s["sd"], "mcse": s["mcse_mean"], "mcse_sd": s["mcse_sd"]})


def _ours(idata) -> pd.DataFrame:
    import arviz as az

    s = az.summary(idata, kind="all", round_to="none")
    return pd.DataFrame({"mean": s["mean"], "sd": s["sd"], "mcse": s["mcse_mean"], "mcse_sd": s["mcse_sd"]})


def expand_mapping(mapping: dict, ours: pd.DataFrame) -> dict[str, str]:
    """Our parameter label -> the reference's. A variable name maps every element, in order, to
    ``<reference name>[1]``, ``[2]``, ... (Stan's 1-based indexing); a label like "gamma[log_u]" maps one."""
    out = {}
    for mine, theirs in mapping.items():
        if mine in ours.index:
            out[mine] = theirs
            continue
        elements = [p for p in ours.index if p.startswith(f"{mine}[")]
        if not elements:
            raise ConfigError(f"key 'validation.parameters': the model has no parameter {mine!r}")
        for i, label in enumerate(elements, 1):
            out[label] = f"{theirs}[{i}]"
    return out


def compare(ours: pd.DataFrame, ref: pd.DataFrame, mapping: dict[str, str]) -> list[dict]:
    rows = []
    for mine, theirs in mapping.items():
        if theirs not in ref.index:
            raise ConfigError(f"key 'validation.parameters': the reference has no parameter {theirs!r}")
        o, r = ours.loc[mine], ref.loc[theirs]
        z = float((o["mean"] - r["mean"]) / np.hypot(o["mcse"], r["mcse"]))
        ratio = float(o["sd"] / r["sd"])
        sd_mcse = float(np.hypot(o.get("mcse_sd", 0.0), r.get("mcse_sd", 0.0)))
        sd_z = float((o["sd"] - r["sd"]) / sd_mcse) if sd_mcse > 0 else None
        rows.append({"parameter": mine, "reference_parameter": theirs, "mean": float(o["mean"]),
                     "reference_mean": float(r["mean"]), "mcse": float(o["mcse"]), "reference_mcse": float(r["mcse"]),
                     "z": z, "sd": float(o["sd"]), "reference_sd": float(r["sd"]), "sd_ratio": ratio,
                     "sd_z": sd_z, "passed": bool(abs(z) < Z_MAX and (abs(ratio - 1) <= SD_TOLERANCE or (sd_z is not None and abs(sd_z) < Z_MAX)))})
    return rows


def validate(posterior_path, out_path, *, level: str, reference: str, parameters: dict | None = None,
             reference_posterior_path=None) -> dict:
    """Compare one level's posterior with its reference and write the verdict."""
    idata = read_netcdf(posterior_path)
    ours = _ours(idata)
    if reference_posterior_path is not None:
        ref = reference_from_posterior(read_netcdf(reference_posterior_path))
        mapping = {p: p for p in ours.index} if not parameters else expand_mapping(parameters, ours)
        source = "long run of the same model"
    else:
        ref = reference_from_csv(reference)
        mapping = expand_mapping(parameters or {}, ours)
        source = str(reference)
    rows = compare(ours, ref, mapping)
    out = {"level": level, "reference": source, "z_max": Z_MAX, "sd_tolerance": SD_TOLERANCE,
           "passed": all(r["passed"] for r in rows), "parameters": rows,
           "max_abs_z": max(abs(r["z"]) for r in rows),
           "max_sd_deviation": max(abs(r["sd_ratio"] - 1) for r in rows)}
    write_json(out, out_path)
    log.info("level %s against %s: %s (max |z| %.2f, max sd deviation %.1f%%)", level, source,
             "passed" if out["passed"] else "FAILED", out["max_abs_z"], 100 * out["max_sd_deviation"])
    return out


def recovery_rows(idata, truth: dict, mapping: dict, prob: float = 0.9) -> list[dict]:
    """Each mapped parameter's true value (a number, or a list over the parameter's elements in order)
    against its central ``prob`` posterior interval."""
    post = idata.posterior
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows = []
    for name, key in mapping.items():
        if name not in post:
            raise ConfigError(f"key 'recovery.levels': the model has no parameter {name!r}")
        if key not in truth:
            raise ConfigError(f"key 'recovery.levels': the truth file has no key {key!r}")
        da = post[name]
        values = np.atleast_1d(np.asarray(truth[key], dtype=float))
        flat = da.stack(sample=("chain", "draw")).transpose(..., "sample").values.reshape(-1, da.sizes["chain"]
                                                                                          * da.sizes["draw"])
        if flat.shape[0] != values.size:
            raise ConfigError(f"key 'recovery.levels': {name} has {flat.shape[0]} elements, {key!r} has "
                              f"{values.size} values")
        from hbm.compare import element_labels

        labels = element_labels(da.isel(chain=0, draw=0, drop=True)) if da.ndim > 2 else [name]
        for label, draws, true in zip(labels, flat, values):
            lo, med, hi = np.quantile(draws, [lo_q, 0.5, hi_q])
            rows.append({"parameter": label, "truth_key": key, "true": float(true), "median": float(med),
                         "lower": float(lo), "upper": float(hi), "inside": bool(lo <= true <= hi)})
    return rows


def recovery(posterior_paths: dict, truth_path, out_path, plot_path, *, mapping: dict, prob: float = 0.9) -> dict:
    """True values of a simulated example against the posterior intervals of each listed level."""
    import json
    from pathlib import Path

    from hbm.io import save_figure

    truth = json.loads(Path(truth_path).read_text())
    levels = {level: recovery_rows(read_netcdf(path), truth, mapping[level], prob)
              for level, path in posterior_paths.items()}
    rows = [r for rs in levels.values() for r in rs]
    out = {"truth": str(truth_path), "prob": prob, "levels": levels,
           "inside": sum(r["inside"] for r in rows), "parameters": len(rows)}
    save_figure(_recovery_plot(levels, prob), plot_path)
    write_json(out, out_path)
    log.info("recovery: %d of %d true values inside their %d%% intervals", out["inside"], len(rows), 100 * prob)
    return out


def _recovery_plot(levels: dict, prob: float):
    """One row per parameter on the scale of its own interval: lower end at -1, upper end at +1."""
    import matplotlib.pyplot as plt

    rows = [(f"{lv}: {r['parameter']}", r) for lv, rs in levels.items() for r in rs]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.3 * len(rows)))
    reach = 1.5
    for i, (_, r) in enumerate(rows):
        half = (r["upper"] - r["lower"]) / 2 or 1.0
        mid = (r["upper"] + r["lower"]) / 2
        x_true, x_med = (r["true"] - mid) / half, (r["median"] - mid) / half
        reach = max(reach, 1.1 * abs(x_true))
        ax.plot(x_med, i, "o", color="C0", ms=4)
        ax.plot(x_true, i, "x" if r["inside"] else "X", color="black" if r["inside"] else "C3", ms=8)
    ax.axvspan(-1, 1, color="C0", alpha=0.15)
    ax.set_xlim(-reach, reach)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"position in the {int(prob * 100)}% interval (-1 lower end, +1 upper end): "
                  f"median (dot), true value (x; red outside)")
    ax.set_title("Parameter recovery: true values against posterior intervals")
    return fig
