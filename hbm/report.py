"""Stage 5: one self-contained HTML report per analysis (images embedded) + provenance.json.

Every string from data or config reaches the page through Jinja2 with autoescaping on.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import jinja2

from hbm import __version__
from hbm.io import read_json, write_json, write_text
from hbm.models import group_parameters, hyperparameters
from hbm.provenance import collect

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_GROUP_ROWS = 60


def _img(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def parameter_table(idata, var_names, max_rows=None) -> list[dict]:
    import arviz as az

    names = [v for v in var_names if v in idata.posterior]
    if not names:
        return []
    # The 5 % and 95 % quantiles (a 90 % equal-tailed interval; ArviZ 1's default would be 89 %).
    s = az.summary(idata, var_names=names, kind="all", ci_kind="eti", ci_prob=0.9, round_to="none")
    s = s.rename(columns={"eti90_lb": "q05", "eti90_ub": "q95"})
    rows = [{"parameter": str(i), **{k: float(v) for k, v in r.items()}} for i, r in s.iterrows()]
    return rows[:max_rows] if max_rows else rows


def level_section(name: str, spec: dict, files: dict) -> dict:
    from hbm.io import read_netcdf

    idata = read_netcdf(files["posterior"], exclude=("log_likelihood",))
    groups = parameter_table(idata, group_parameters(spec))
    return {
        "name": name,
        "column": spec["hierarchy"]["column"],
        "parents": spec["hierarchy"]["parents"],
        "prior": read_json(files["prior_json"]),
        "prior_png": _img(files["prior_png"]),
        "diagnostics": read_json(files["diagnostics"]),
        "rank_png": _img(files["rank_png"]),
        "hyper": parameter_table(idata, hyperparameters(spec)),
        "groups": groups[:MAX_GROUP_ROWS],
        "groups_left_out": max(0, len(groups) - MAX_GROUP_ROWS),
        "ppc": read_json(files["ppc_json"]),
        "ppc_png": _img(files["ppc_png"]),
        "loo_pit_png": _img(files["loo_pit_png"]),
        "shrinkage_png": _img(files["shrinkage_png"]),
        "forecast": read_json(files["forecast_json"]) if "forecast_json" in files else None,
        "forecast_png": _img(files["forecast_png"]) if "forecast_png" in files else None,
        "pooling": read_json(files["pooling_json"]) if "pooling_json" in files else None,
        "pooling_png": _img(files["pooling_png"]) if "pooling_png" in files else None,
    }


def render_template(name: str, context: dict) -> str:
    """Render a template of hbm/templates with autoescaping (every string from data or config is escaped)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    from hbm.parametrization import CENTER_ABOVE

    env.globals["center_above"] = CENTER_ABOVE  # the rule's margin, written where the report states the rule
    return env.get_template(name).render(**context)


def render(context: dict) -> str:
    return render_template("report.html.j2", context)


def _num(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if x != x:
        return "NaN"
    if digits == 0 or abs(x) >= 1e5:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


# a noise parameter's sampled variable -> the one usually shown, which does not exist where the noise varies by
# series (``bottom.dispersion``): then the sampled one (the population value) is shown
NOISE = {"cv": "shape", "alpha_inv_sqrt": "alpha"}


def bottom_section(spec: dict, files: dict) -> dict:
    """The bottom model's part of the report: its diagnostics, forecasts by level, hyperparameters."""
    from hbm.io import read_netcdf
    from hbm.model.design import BOTTOM_EFFECTS, effect_hierarchies, seasonalities

    idata = read_netcdf(files["posterior"], exclude=("log_likelihood",))
    # the fitted model's effects (each one's population value is a variable of its name), seasonalities in
    # the place of "season"
    order = [e for x in BOTTOM_EFFECTS for e in ([s["name"] for s in seasonalities(spec)] if x == "season" else [x])]
    effects = [e for e in order if e in idata.posterior]
    hyper = [v for v in idata.posterior.data_vars if idata.posterior[v].ndim <= 3 and v != "shock" and
             (v in effects or str(v).endswith(("_sd", "_size_slope")) or v in ("alpha", "sigma", "shape", "psi")
              or (v in NOISE and NOISE[v] not in idata.posterior))]
    return {
        "spec": spec["bottom"],
        "effects": {e: effect_hierarchies(spec, e) for e in effects},
        "diagnostics": read_json(files["diagnostics"]),
        "parametrization": read_json(files["parametrization"]),
        "rank_png": _img(files["rank_png"]),
        "hyper": parameter_table(idata, hyper),
        "forecast": read_json(files["forecast_json"]) if files.get("forecast_json") else None,
        "forecast_png": _img(files["forecast_png"]) if files.get("forecast_png") else None,
        "components_png": _img(files["components_png"]) if files.get("components_png") else None,
    }


def report(html_path, provenance_path, *, analysis: dict, specs: dict, level_files: dict, summary_path,
           coherence_path=None, benchmarks=(), seed: int, validation_paths=(), recovery_paths=None,
           bottom_spec: dict | None = None, bottom_files: dict | None = None) -> None:
    """Write the report of one analysis; ``level_files`` maps level -> its stage outputs."""
    levels = [level_section(name, specs[name], files) for name, files in level_files.items()]
    job_seeds = {}
    for lv in levels:  # every job's derived seed, as its own output recorded it
        for stage, part in (("prior_check", "prior"), ("fit", "diagnostics"), ("posterior_check", "ppc"),
                            ("forecast", "forecast")):
            if lv.get(part):
                job_seeds[f"{stage}_{lv['name']}"] = lv[part]["seed"]
        for r in (lv["pooling"] or {}).get("variants", []):  # the pooling variants' fits
            if r["variant"] != "partial":
                job_seeds[f"fit_{r['variant']}_{lv['name']}"] = r["diagnostics"]["seed"]
    bottom = bottom_section(bottom_spec, bottom_files) if bottom_files else None
    if bottom:
        job_seeds["fit_bottom"] = bottom["diagnostics"]["seed"]
        if bottom["forecast"]:
            job_seeds["forecast_bottom"] = bottom["forecast"]["seed"]
    provenance = collect(analysis["config_file"], analysis["data"]["path"], seed, benchmarks, job_seeds)
    context = {
        "analysis": analysis,
        "summary": read_json(summary_path),
        "levels": levels,
        "forecasting": any(lv["forecast"] for lv in levels),
        "coherence": read_json(coherence_path) if coherence_path else None,
        "validation": [read_json(p) for p in validation_paths],
        "recovery": read_json(recovery_paths[0]) if recovery_paths else None,
        "recovery_png": _img(recovery_paths[1]) if recovery_paths else None,
        "bottom": bottom,
        "all_passed": all(lv["diagnostics"]["passed"] for lv in levels) and (not bottom or bottom["diagnostics"]["passed"]),
        "provenance": provenance,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "hbm_version": __version__,
    }
    write_text(render(context), html_path)
    write_json(provenance, provenance_path)
