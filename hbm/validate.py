"""Validation against a reference posterior -> results/<a>/validation/<level>.json.

A reference is either a summary CSV (param, mean, sd and the Monte Carlo standard error of the mean as
``mcse_mean`` / ``pdb_mcse_mean``, or an ``ess_bulk`` to derive it from: posteriordb's official references
and long-run references) or a long run of the analysis's own model (more draws, higher target_accept:
the model's own reference). For every mapped parameter:

    z = (mean_ours - mean_ref) / sqrt(MCSE_ours**2 + MCSE_ref**2)

and the ratio of posterior sds. A parameter passes when |z| < 4 and its sd is within 10 % of the
reference's; the level passes when every parameter does.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

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
        raise ValueError(f"{path}: needs a column mcse_mean, pdb_mcse_mean or ess_bulk")
    return ref[["mean", "sd", "mcse"]]


def reference_from_posterior(idata) -> pd.DataFrame:
    """The summary of a long run, with our own parameter labels."""
    import arviz as az

    s = az.summary(idata, kind="all", round_to="none")
    return pd.DataFrame({"mean": s["mean"], "sd": s["sd"], "mcse": s["mcse_mean"]})


def _ours(idata) -> pd.DataFrame:
    import arviz as az

    s = az.summary(idata, kind="all", round_to="none")
    return pd.DataFrame({"mean": s["mean"], "sd": s["sd"], "mcse": s["mcse_mean"]})


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
            raise KeyError(f"'validation.parameters': the model has no parameter {mine!r}")
        for i, label in enumerate(elements, 1):
            out[label] = f"{theirs}[{i}]"
    return out


def compare(ours: pd.DataFrame, ref: pd.DataFrame, mapping: dict[str, str]) -> list[dict]:
    rows = []
    for mine, theirs in mapping.items():
        if theirs not in ref.index:
            raise KeyError(f"'validation.parameters': the reference has no parameter {theirs!r}")
        o, r = ours.loc[mine], ref.loc[theirs]
        z = float((o["mean"] - r["mean"]) / np.hypot(o["mcse"], r["mcse"]))
        ratio = float(o["sd"] / r["sd"])
        rows.append({"parameter": mine, "reference_parameter": theirs, "mean": float(o["mean"]),
                     "reference_mean": float(r["mean"]), "mcse": float(o["mcse"]), "reference_mcse": float(r["mcse"]),
                     "z": z, "sd": float(o["sd"]), "reference_sd": float(r["sd"]), "sd_ratio": ratio,
                     "passed": bool(abs(z) < Z_MAX and abs(ratio - 1) <= SD_TOLERANCE)})
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
