"""Compare two versions of an analysis -> compare/<a>_vs_<b>.html and .json.

For the versions' results folders (see :mod:`hbm.versions`) it shows:

- the config diff (from each version's provenance.json, i.e. the config that made those results) and
  whether the data, hbm code or package versions differ;
- per level fitted by both, the posterior shift of each shared parameter: (mean_b - mean_a) / sd_a,
  the difference in posterior means in units of version a's posterior sd;
- the change in expected log predictive density, elpd_loo(b) - elpd_loo(a), with its standard error
  (paired over observations when both versions saw the same observations, as ``az.compare`` does;
  otherwise the two se combined, marked unpaired, since the elpds then score different data);
- each version's convergence diagnostics and, where present, the change in holdout forecast metrics.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
from pathlib import Path

import numpy as np

from hbm.io import open_netcdf, read_json, save_figure, write_json, write_text
from hbm.models import LIKELIHOOD, group_parameters, hyperparameters

log = logging.getLogger(__name__)

SAMPLE_DIMS = ("chain", "draw")
SHOWN_GROUP_ROWS = 15
HOLDOUT_METRICS = ("crps", "mae", "mase", "coverage_50", "coverage_90")


def config_diff(text_a: str, text_b: str, name_a: str, name_b: str) -> list[dict]:
    """Unified diff lines of two config texts, each {"kind": "+"|"-"|"@"|" "|"h", "text": line}."""
    out = []
    for line in difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), name_a, name_b, lineterm=""):
        kind = "h" if line.startswith(("---", "+++")) else (line[:1] or " ")
        out.append({"kind": kind, "text": line})
    return out


def element_labels(da) -> list[str]:
    """"name[coord, coord]" (ArviZ's flat labels) for every element of a DataArray without sample dims."""
    name = str(da.name)
    if da.ndim == 0:
        return [name]
    index = np.stack(np.meshgrid(*[da[d].values for d in da.dims], indexing="ij"), axis=-1).reshape(-1, da.ndim)
    return [f"{name}[{', '.join(str(v) for v in row)}]" for row in index]


def posterior_shift(post_a, post_b, var_names=None) -> list[dict]:
    """One row per element of each parameter in both posteriors, on the coordinates they share.

    ``shift`` = (mean_b - mean_a) / sd_a. ``var_names`` limits and orders the parameters.
    """
    import xarray as xr

    names = [v for v in (var_names or sorted(post_a.data_vars)) if v in post_a and v in post_b]
    rows = []
    for name in names:
        a, b = post_a[name], post_b[name]
        if set(a.dims) != set(b.dims):
            continue
        a, b = xr.align(a, b, join="inner", exclude=SAMPLE_DIMS)
        if a.size == 0:
            continue
        mean_a, sd_a = a.mean(SAMPLE_DIMS), a.std(SAMPLE_DIMS, ddof=1)
        mean_b, sd_b = b.mean(SAMPLE_DIMS).transpose(*mean_a.dims), b.std(SAMPLE_DIMS, ddof=1).transpose(*mean_a.dims)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(sd_a.values > 0, (mean_b.values - mean_a.values) / sd_a.values, np.nan)
        for label, ma, sa, mb, sb, s in zip(element_labels(mean_a), mean_a.values.ravel(), sd_a.values.ravel(),
                                            mean_b.values.ravel(), sd_b.values.ravel(), np.ravel(shift)):
            rows.append({"variable": name, "parameter": label, "mean_a": float(ma), "sd_a": float(sa),
                         "mean_b": float(mb), "sd_b": float(sb), "shift": float(s)})
    return rows


def elpd_change(idata_a, idata_b) -> dict:
    """elpd_loo(b) - elpd_loo(a) and its standard error (paired when both saw the same observations).
    PSIS-LOO as ``arviz.loo`` computes it, a block of observations at a time
    (:func:`hbm.posterior_check.elpd_data`): the log-likelihoods may be read lazily from their files."""
    from hbm.posterior_check import elpd_data

    loo_a, loo_b = elpd_data(idata_a), elpd_data(idata_b)
    out = {"elpd_a": float(loo_a.elpd), "se_a": float(loo_a.se), "elpd_b": float(loo_b.elpd),
           "se_b": float(loo_b.se), "delta": float(loo_b.elpd - loo_a.elpd),
           "max_pareto_k_a": float(loo_a.pareto_k.max()), "max_pareto_k_b": float(loo_b.pareto_k.max())}
    obs_a = idata_a.observed_data[LIKELIHOOD].values
    obs_b = idata_b.observed_data[LIKELIHOOD].values
    if obs_a.shape == obs_b.shape and np.array_equal(obs_a, obs_b):
        diff = loo_b.elpd_i.values - loo_a.elpd_i.values
        out.update(se=float(np.sqrt(diff.size * np.var(diff))), paired=True)
    else:
        out.update(se=float(np.hypot(loo_a.se, loo_b.se)), paired=False)
    return out


def _diagnostics(path: Path) -> dict | None:
    if not path.is_file():
        return None
    d = read_json(path)
    return {"passed": d["passed"], "seconds": d.get("seconds"),
            **{c["name"]: c["value"] for c in d["checks"]}}


def holdout_change(path_a: Path, path_b: Path) -> dict | None:
    """Holdout metrics of both versions' model forecasts and their difference (b - a), if both have them."""
    if not (path_a.is_file() and path_b.is_file()):
        return None
    a, b = read_json(path_a).get("holdout"), read_json(path_b).get("holdout")
    if not a or not b:
        return None
    rows = []
    for m in HOLDOUT_METRICS:
        va, vb = a["model"].get(m), b["model"].get(m)
        if va is not None and vb is not None:
            rows.append({"metric": m, "a": va, "b": vb, "delta": vb - va})
    return {"periods_a": a["periods"], "periods_b": b["periods"], "metrics": rows}


def level_comparison(level: str, dir_a: Path, dir_b: Path) -> dict:
    """One level of two versions: posterior shifts, elpd change, diagnostics and holdout. The posteriors are
    read whole, their log-likelihoods (draws x rows) a block of observations at a time."""
    with open_netcdf(dir_a / "fits" / level / "posterior.nc", lazy=("log_likelihood",)) as idata_a, \
            open_netcdf(dir_b / "fits" / level / "posterior.nc", lazy=("log_likelihood",)) as idata_b:
        return _level_comparison(level, dir_a, dir_b, idata_a, idata_b)


def _level_comparison(level: str, dir_a: Path, dir_b: Path, idata_a, idata_b) -> dict:
    spec = json.loads(idata_b.posterior.attrs["hbm_spec"]) if "hbm_spec" in idata_b.posterior.attrs else None
    hyper = hyperparameters(spec) if spec else []
    groups = group_parameters(spec) if spec else []
    rows = posterior_shift(idata_a.posterior, idata_b.posterior, hyper + groups or None)
    for r in rows:
        r["kind"] = "group" if r["variable"] in groups else "population"
    group_rows = sorted((r for r in rows if r["kind"] == "group"), key=lambda r: -abs(np.nan_to_num(r["shift"])))
    shifts = np.array([r["shift"] for r in rows], dtype=float)
    return {
        "level": level,
        "shift": rows,
        "population_rows": [r for r in rows if r["kind"] == "population"],
        "group_rows_shown": group_rows[:SHOWN_GROUP_ROWS],
        "group_rows_left_out": max(0, len(group_rows) - SHOWN_GROUP_ROWS),
        "max_abs_shift": float(np.nanmax(np.abs(shifts))) if np.isfinite(shifts).any() else None,
        "elpd": elpd_change(idata_a, idata_b),
        "diagnostics": {"a": _diagnostics(dir_a / "fits" / level / "diagnostics.json"),
                        "b": _diagnostics(dir_b / "fits" / level / "diagnostics.json")},
        "holdout": holdout_change(dir_a / "forecasts" / f"{level}.json", dir_b / "forecasts" / f"{level}.json"),
    }


def shift_plot(levels: list[dict], label_a: str, label_b: str):
    """Posterior shift of every parameter element, one row per variable and level."""
    import matplotlib.pyplot as plt

    rows = [(f"{lv['level']}: {var}", [r["shift"] for r in lv["shift"] if r["variable"] == var])
            for lv in levels for var in dict.fromkeys(r["variable"] for r in lv["shift"])]
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.32 * max(1, len(rows))))
    for i, (_, values) in enumerate(rows):
        v = np.asarray(values, dtype=float)
        jitter = np.linspace(-0.15, 0.15, v.size) if v.size > 1 else np.zeros(1)
        ax.scatter(v, i + jitter, s=12, alpha=0.7, color="C0")
    ax.axvspan(-1, 1, color="0.92", zorder=0)
    finite = np.abs([s for _, v in rows for s in v if np.isfinite(s)] or [0.0])
    reach = max(1.5, 1.1 * float(np.max(finite)))
    ax.set_xlim(-reach, reach)
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"posterior shift: (mean {label_b} - mean {label_a}) / sd {label_a}")
    ax.set_title(f"{label_a} vs {label_b}: shaded band = within one posterior sd")
    return fig


def compare(html_path, json_path, plot_path, *, analysis: str, label_a: str, label_b: str, dir_a, dir_b) -> dict:
    """Compare versions ``label_a`` and ``label_b`` of ``analysis`` (results in ``dir_a`` and ``dir_b``)."""
    from hbm.report import _img, render_template

    dir_a, dir_b = Path(dir_a), Path(dir_b)
    prov_a, prov_b = read_json(dir_a / "provenance.json"), read_json(dir_b / "provenance.json")
    import yaml

    levels_a = list((yaml.safe_load(prov_a["config_text"]) or {}).get("levels", {}))
    levels_b = list((yaml.safe_load(prov_b["config_text"]) or {}).get("levels", {}))
    shared = [lv for lv in levels_b if lv in levels_a]
    log.info("comparing %s %s with %s on levels %s", analysis, label_a, label_b, ", ".join(shared) or "(none)")
    levels = [level_comparison(lv, dir_a, dir_b) for lv in shared]
    packages = sorted(k for k in prov_a["packages"] if prov_a["packages"].get(k) != prov_b["packages"].get(k))
    result = {
        "analysis": analysis,
        "a": {"label": label_a, "results": str(dir_a), **{k: prov_a.get(k) for k in
              ("config_file", "config_sha256", "data_file", "data_sha256", "hbm_version", "git")}},
        "b": {"label": label_b, "results": str(dir_b), **{k: prov_b.get(k) for k in
              ("config_file", "config_sha256", "data_file", "data_sha256", "hbm_version", "git")}},
        "same_config": prov_a["config_sha256"] == prov_b["config_sha256"],
        "same_data": prov_a["data_sha256"] == prov_b["data_sha256"],
        "same_code": (prov_a["git"] or {}).get("commit") == (prov_b["git"] or {}).get("commit"),
        "packages_changed": {k: [prov_a["packages"].get(k), prov_b["packages"].get(k)] for k in packages},
        "config_diff": config_diff(prov_a["config_text"], prov_b["config_text"], label_a, label_b),
        "levels_only_in_a": [lv for lv in levels_a if lv not in shared],
        "levels_only_in_b": [lv for lv in levels_b if lv not in levels_a],
        "levels": levels,
    }
    if levels:
        save_figure(shift_plot(levels, label_a, label_b), plot_path)
    else:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no level fitted by both versions", ha="center", va="center")
        ax.axis("off")
        save_figure(fig, plot_path)
    context = {**result, "shift_png": _img(plot_path),
               "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    display = ("population_rows", "group_rows_shown", "group_rows_left_out")
    write_json({**result, "levels": [{k: v for k, v in lv.items() if k not in display} for lv in levels]}, json_path)
    write_text(render_template("compare.html.j2", context), html_path)
    return result
