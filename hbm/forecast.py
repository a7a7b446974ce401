"""Stage 5 (log-link families with time): forecasts per unit of a level, holdout scores, coherence across levels.

For every unit of the level the posterior predictive distribution of the target is drawn for the held-out
periods (``forecast.holdout``; their actual price, promotion and covariates are used) and for the
``forecast.horizon`` periods after the last period of the data. Periods after the data have no known
price or promotion: the forecast assumes the unit's usual price (its geometric mean price over its last 3
fitted periods, :func:`hbm.plan.usual_price`), no promotion and covariates at their fitted mean, except where a forecast plan
(``forecast.plan``, :mod:`hbm.plan`) gives a planned price or promotion.

Writes ``forecasts/<level>.parquet`` (one row per unit and period: ``unit``, ``period`` (its date at the data's
frequency, e.g. ``2017-07`` for monthly data, or the integer period), ``_period``, ``kind``
(holdout | future), ``observed``, ``mean``, ``median``, ``q05``, ``q25``, ``q75``, ``q95``, and the
unit's parent columns),
``forecasts/<level>.json`` (holdout scores against a seasonal-naive forecast) and a plot of the
largest units.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hbm import diagnostics, plots, scores
from hbm import plan as plan_lib
from hbm.aggregate import HOLDOUT, fit_rows
from hbm.ingest import PERIOD, display_labels, period_labels, read_observations
from hbm.io import atomic_path, read_json, read_netcdf, save_figure, write_json
from hbm.model import PREDICTIVE_COMPILE
from hbm.models import LIKELIHOOD, build_model, fitted_flips, level_data, resolve_priors

log = logging.getLogger(__name__)

QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}


def season_length(spec: dict) -> int:
    """The seasonal-naive lag: the season's period rounded to whole periods, or 1 without seasonality."""
    season = spec["model"].get("seasonality")
    return max(1, int(round(season["period"]))) if season else 1


def future_rows(table: pd.DataFrame, train: pd.DataFrame, spec: dict, horizon: int,
                plan: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows for the ``horizon`` periods after the data, for every unit the model was fitted to: the unit's
    usual price, no promotion, covariates at their mean, or the price and promotion of the forecast plan
    (:mod:`hbm.plan`) where it has them."""
    cols, hier = spec["columns"], spec["hierarchy"]
    unit = hier["column"]
    if horizon == 0:
        return table.iloc[:0].copy()
    last = int(table[PERIOD].max())
    first = train.groupby(unit, sort=True).first()
    units = first.index.to_numpy()
    periods = np.arange(last + 1, last + 1 + horizon)
    rows = pd.DataFrame({unit: np.repeat(units, horizon), PERIOD: np.tile(periods, len(units))})
    for c in [*hier["parents"], *hier["predictors"]]:
        rows[c] = first[c].reindex(rows[unit]).to_numpy()
    rows[cols["target"]] = 0.0
    if cols.get("price"):
        rows[cols["price"]] = plan_lib.usual_price(train, [unit], cols["price"]).reindex(rows[unit]).to_numpy()
    if cols.get("promotion"):
        rows[cols["promotion"]] = 0.0
    for c in cols["covariates"]:
        rows[c] = float(train[c].mean())
    if cols.get("time"):
        rows[cols["time"]] = period_labels(table.attrs["time_grid"], rows[PERIOD])
    return plan_lib.apply(rows, plan, unit, cols)


def future_assumption(plan: pd.DataFrame | None) -> str:
    """What the forecasts after the data assume about price and promotion, for the report."""
    usual = "each unit's usual price (its geometric mean over its last 3 fitted periods) and no promotion"
    if plan is None:
        return usual
    source = plan["source"].iloc[0] if "source" in plan and len(plan) else "the forecast plan"
    return f"the planned prices and promotions of {source} where it gives them, else {usual}"


def draw(idata, frame: pd.DataFrame, train, spec: dict, seed: int) -> np.ndarray:
    """Posterior predictive draws (draws, rows) of the target for ``frame``'s rows."""
    import pymc as pm

    data = level_data(frame, spec, like=train)
    model = build_model(data, spec, resolve_priors(spec, train), flipped=fitted_flips(idata))
    pp = pm.sample_posterior_predictive(idata, model=model, var_names=[LIKELIHOOD], random_seed=seed,
                                        predictions=True, progressbar=False, compile_kwargs=PREDICTIVE_COMPILE)
    return pp.predictions[LIKELIHOOD].stack(sample=("chain", "draw")).transpose("sample", ...).values


def summarize_draws(draws: np.ndarray) -> dict:
    out = {"mean": draws.mean(axis=0)}
    for name, q in QUANTILES.items():
        out[name] = np.quantile(draws, q, axis=0)
    return out


def holdout_scores(table, train, frame, draws, spec: dict) -> dict:
    """Interval coverage, CRPS and MASE of the held-out periods, for the model and a seasonal-naive forecast."""
    unit, target = spec["hierarchy"]["column"], spec["columns"]["target"]
    held = frame["kind"].to_numpy() == "holdout"
    if not held.any():
        return {}
    m = season_length(spec)
    y = frame[target].to_numpy("float64")[held]
    d = draws[:, held]
    median = np.median(d, axis=0)
    naive = np.full(y.size, np.nan)
    per_unit = []
    start = int(table.loc[table[HOLDOUT], PERIOD].min())
    units = frame.loc[held, unit].to_numpy()
    periods = frame.loc[held, PERIOD].to_numpy()
    for u in np.unique(units):
        hist = train.loc[train[unit] == u]
        series = np.full(start, np.nan)
        series[hist[PERIOD].to_numpy()] = hist[target].to_numpy("float64")
        series = series[int(hist[PERIOD].min()):]  # from the unit's first period: no padding before it started
        sel = units == u
        steps = periods[sel] - start + 1
        naive[sel] = scores.seasonal_naive(series, int(steps.max()), m)[steps - 1]
        scale = scores.mase_scale(series, m)
        per_unit.append({"unit": str(u), "mase": scores.mase(y[sel], median[sel], scale),
                         "mase_naive": scores.mase(y[sel], naive[sel], scale)})
    crps = scores.crps_sample(d, y)
    model = {"coverage_50": scores.interval_coverage(d, y, 0.5), "coverage_90": scores.interval_coverage(d, y, 0.9),
             "crps": float(np.mean(crps)), "mae": float(np.mean(np.abs(y - median))),
             "mase": _nanmean([r["mase"] for r in per_unit])}
    baseline = {"crps": float(np.mean(np.abs(y - naive))), "mae": float(np.mean(np.abs(y - naive))),
                "mase": _nanmean([r["mase_naive"] for r in per_unit])}
    return {"periods": int(np.unique(periods).size), "observations": int(y.size), "season_length": m,
            "model": model, "seasonal_naive": baseline,
            "crps_ratio": model["crps"] / baseline["crps"] if baseline["crps"] > 0 else None,
            "per_unit": per_unit}


def _nanmean(values) -> float | None:
    a = np.asarray(values, dtype="float64")
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def forecast(table_path, posterior_path, diagnostics_path, forecast_path, scores_path, plot_path, *, spec: dict,
             horizon: int, plot_units: int, on_failure: str, seed: int, plan_path=None) -> dict:
    """Forecast one level (see the module docstring). Returns the scores. ``plan_path``: the forecast plan's
    shifts (data/plan.parquet, :mod:`hbm.plan`), or None."""
    diagnostics.require_passed(read_json(diagnostics_path), on_failure, str(diagnostics_path))
    cols, unit = spec["columns"], spec["hierarchy"]["column"]
    table = read_observations(table_path)
    plan = pd.read_parquet(plan_path) if plan_path else None
    train_rows = fit_rows(table)
    train = level_data(train_rows, spec)
    held = table.loc[table[HOLDOUT]] if HOLDOUT in table else table.iloc[:0]
    unknown = ~held[unit].isin(train.groups)
    if unknown.any():
        log.warning("level %s: %d held-out rows of units with no fitted data are not forecast (e.g. %s)",
                    spec["level"], int(unknown.sum()), held.loc[unknown, unit].iloc[0])
        held = held.loc[~unknown]
    frame = pd.concat([held.assign(kind="holdout"),
                       future_rows(table, train_rows, spec, horizon, plan).assign(kind="future")], ignore_index=True)
    frame.attrs = dict(table.attrs)
    log.info("level %s: forecasting %d held-out and %d future unit-periods, seed %d", spec["level"],
             len(held), len(frame) - len(held), seed)
    draws = draw(read_netcdf(posterior_path, exclude=("log_likelihood",)), frame, train, spec, seed)
    grid = table.attrs.get("time_grid")
    stats = summarize_draws(draws)
    out = pd.DataFrame({
        "unit": frame[unit].astype(str).to_numpy(),
        "period": display_labels(grid, frame[PERIOD]) if grid else frame[PERIOD].astype(str).to_numpy(),
        PERIOD: frame[PERIOD].to_numpy("int64"),
        "kind": frame["kind"].to_numpy(),
        "observed": np.where(frame["kind"] == "holdout", frame[cols["target"]].to_numpy("float64"), np.nan),
        **stats,
    })
    for c in spec["hierarchy"]["parents"]:  # for coherence across levels (store -> region)
        if c not in out:
            out[c] = frame[c].astype(str).to_numpy()
    result = {"level": spec["level"], "seed": seed, "horizon": horizon, "units": len(train.groups),
              "future_assumption": future_assumption(plan),
              "holdout": holdout_scores(table, train_rows, frame, draws, spec)}
    if result["holdout"]:
        h = result["holdout"]
        log.info("level %s: holdout CRPS %.3g (seasonal naive %.3g), MASE %.3g (naive %.3g), 90%% coverage %.2f",
                 spec["level"], h["model"]["crps"], h["seasonal_naive"]["crps"], h["model"]["mase"] or np.nan,
                 h["seasonal_naive"]["mase"] or np.nan, h["model"]["coverage_90"])
    with atomic_path(forecast_path) as tmp:
        out.to_parquet(tmp, index=False)
    write_json(result, scores_path)
    largest = train_rows.groupby(unit)[cols["target"]].sum().sort_values(ascending=False, kind="stable")
    save_figure(plots.forecast(train_rows, out, largest.index[:plot_units].astype(str).tolist(), unit, cols["target"],
                               spec["level"], grid=grid, time=cols["time"]), plot_path)
    return result


def coherence(forecast_paths: dict, specs: dict) -> dict:
    """Do the levels' forecasts add up? Posterior mean totals per period of each level, and per parent unit.

    ``forecast_paths``: level -> forecasts parquet. The chain total of every level is compared with that of
    the level with the fewest units, the ``reference`` (the sum of posterior means is the posterior mean of
    the sum). Each held-out period also gets the ``observed`` total: the sum of the reference level's held-out
    observations (None for periods after the data). Where one level's units are
    the parents of another's (store -> region), each parent unit's forecast is compared with the sum of its
    children's.
    """
    frames = {lv: pd.read_parquet(p) for lv, p in forecast_paths.items()}
    totals = pd.DataFrame({lv: f.groupby("period")["mean"].sum() for lv, f in frames.items()})
    reference = min(frames, key=lambda lv: frames[lv]["unit"].nunique())  # the most aggregated level
    ref = frames[reference]
    held = ref.loc[ref["kind"] == "holdout"]
    observed = held.groupby("period")["observed"].sum(min_count=1) if "observed" in held else pd.Series(dtype=float)
    out = {"levels": list(frames), "reference": reference, "total": [
        {"period": str(p), "kind": _kind(frames, p), "observed": _float_or_none(observed.get(p)),
         **{lv: float(v) for lv, v in row.items()}}
        for p, row in totals.iterrows()], "by_parent": []}
    for child, cspec in specs.items():
        for parent, pspec in specs.items():
            pcol = pspec["hierarchy"]["column"]
            if child == parent or pcol not in cspec["hierarchy"]["parents"] or child not in frames:
                continue
            summed = frames[child].groupby([pcol, "period"])["mean"].sum()
            own = frames[parent].set_index(["unit", "period"])["mean"]
            joined = pd.DataFrame({"children": summed, "parent": own.rename_axis(["parent", "period"])}).dropna()
            ratio = joined["children"] / joined["parent"]
            out["by_parent"].append({"child": child, "parent": parent, "pairs": int(len(joined)),
                                     "ratio_median": float(ratio.median()), "ratio_min": float(ratio.min()),
                                     "ratio_max": float(ratio.max())})
    return out


def _float_or_none(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def _kind(frames: dict, period) -> str:
    f = next(iter(frames.values()))
    kinds = f.loc[f["period"] == period, "kind"].unique()
    return str(kinds[0]) if kinds.size else ""


def write_coherence(coherence_path, *, forecast_paths: dict, specs: dict) -> dict:
    """Write the coherence summary of an analysis's forecasts (see :func:`coherence`)."""
    result = coherence(forecast_paths, specs)
    write_json(result, coherence_path)
    return result
