"""The bottom model's stages: one fit over every bottom series, forecasts summed draw by draw to every level.

- :func:`table`: the validated observations -> one row per bottom series and period (the target summed,
  price averaged weighted by the target, promotion averaged: as a level's table, :mod:`hbm.aggregate`), the
  last ``forecast.holdout`` periods marked held out;
- :func:`fit`: NUTS on the model of :mod:`hbm.model.builder` (automatic parametrization, the escalation
  ladder of :mod:`hbm.fit`; the likelihood summed in one Potential where the family has a fast form, so the
  posterior holds no pointwise log-likelihood) -> ``bottom/posterior.nc``, ``bottom/diagnostics.json``,
  ``bottom/parametrization.json``, ``bottom/rank.png``;
- :func:`forecast`: posterior predictive draws of every bottom series for the held-out and the future
  periods, summed draw by draw to every column of every hierarchy and to the total, so the forecasts of all
  levels are coherent by construction and each level's intervals are those of its own sum. Each level's
  held-out periods are scored (CRPS, MASE, interval coverage; seasonal-naive baseline) and, where a
  per-level fit of the same column exists, compared with it -> ``bottom/forecasts.parquet``,
  ``bottom/forecasts.json``, ``bottom/forecasts.png``, and what each term contributes to the largest series
  (:func:`components`) -> ``bottom/components.png``.

Periods after the data assume each series' usual price (its geometric mean over its last 3 fitted periods,
:func:`hbm.plan.usual_price`) and no promotion; the report says so.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd

from hbm import diagnostics, plots
from hbm.aggregate import HOLDOUT, fit_rows, level_table
from hbm.ingest import PERIOD, display_labels, read_observations
from hbm.io import atomic_path, read_json, read_netcdf, save_figure, write_json, write_netcdf
from hbm.model import PREDICTIVE_COMPILE, families
from hbm.model.builder import (SHOCK, TERM, build, effect_of, flip, hyperparameters, nested_units, parametrization,
                               resolve_priors, shock_parametrization)
from hbm.model.design import LIKELIHOOD, SEP, design

log = logging.getLogger(__name__)

SERIES = "_series"  # the joined series key of the bottom table
TOTAL = "total"
COMPONENT_SERIES = 6  # the largest bottom series (by fitted total) whose terms the components plot shows


def hierarchy_columns(spec: dict) -> list[str]:
    """Every column of every hierarchy, bottom columns first."""
    chains = spec["bottom"]["hierarchies"].values()
    return list(dict.fromkeys([*(c[0] for c in chains), *(c for chain in chains for c in chain[1:])]))


def summed_columns(spec: dict) -> list[str]:
    """The columns the bottom model's forecasts are summed to: every hierarchy's (:func:`hierarchy_columns`),
    then the per-level fits' (``levels``) columns and parents that each series has one value of (a level on a
    series column or a hierarchy's column, and its parents, which ingest checks are nested in it). A layer
    the model does not pool along (left out of ``bottom.hierarchies``) is still a level of the forecasts."""
    own = hierarchy_columns(spec)
    known = {*spec["bottom"]["series"], *own}
    extra = [c for lv in (spec.get("levels") or {}).values() if lv["hierarchy"]["column"] in known
             for c in (lv["hierarchy"]["column"], *lv["hierarchy"].get("parents", []))]
    return list(dict.fromkeys([*own, *extra]))


def table(obs: pd.DataFrame, spec: dict, holdout: int = 0) -> pd.DataFrame:
    """One row per bottom series and period (see the module docstring)."""
    obs = obs.copy()
    keys = obs[spec["bottom"]["series"]].astype(str)
    obs[SERIES] = keys.iloc[:, 0].str.cat([keys[c] for c in keys.columns[1:]], sep=SEP) if keys.shape[1] > 1 \
        else keys.iloc[:, 0]
    return level_table(obs, as_level(spec), holdout)


def read_bottom_events(events_path, obs: pd.DataFrame, spec: dict) -> pd.DataFrame | None:
    """The checked events table of ``bottom.events`` (:mod:`hbm.events`), or None without one."""
    if not events_path:
        return None
    from hbm.events import read_events

    return read_events(events_path, obs, spec["columns"], hierarchy_columns(spec))


def as_level(spec: dict) -> dict:
    """The bottom model's spec as a level's whose unit is the series (for :mod:`hbm.aggregate` and
    :func:`hbm.forecast.future_rows`), its other columns carried as parents."""
    others = list(dict.fromkeys([*spec["bottom"]["series"], *summed_columns(spec)]))
    return {**spec, "hierarchy": {"column": SERIES, "parents": others, "predictors": []}}


def _first_settings(inference: dict, data, spec: dict) -> tuple[dict, str | None]:
    """:func:`hbm.fit.first_settings` for the bottom model: each used hierarchy is a chain of layers (its
    first layer, then its parents), judged as a level's are; the first that asks for other settings wins."""
    from hbm.fit import first_settings

    for h in sorted({h for eff in data.effects.values() for h in eff.hierarchies}):
        settings, why = first_settings(inference, SimpleNamespace(layers=data.hierarchies[h]), spec)
        if why:
            return settings, f"{why} ({h})"
    return inference, None


def effects_to_flip(diag: dict, data, decision: dict, flipped) -> list[str]:
    """The effects the escalation ladder gives the other parametrization after a failed attempt
    (:func:`hbm.fit.effects_named`; the bottom model's pooled sds are named ``<effect>_<layer>_sd``)."""
    from hbm.fit import effects_named

    return effects_named(diag, lambda w: effect_of(w, data), lambda w: w.split("[")[0].endswith("_sd"),
                         {e: list(d.values()) for e, d in decision.items()}, flipped)


def fit(observations_path, posterior_path, diagnostics_path, parametrization_path, rank_plot_path, *, spec: dict,
        inference: dict, thresholds: dict, seed: int, threads: int = 1, sources: dict | None = None,
        events_path=None) -> dict:
    """Fit the bottom model and write its InferenceData, diagnostics, parametrization and rank plot.
    ``events_path``: the file of ``bottom.events``, if any."""
    from hbm.fit import sample_until_passing, stamp
    from hbm.parametrization import RULE, summary

    t0 = time.perf_counter()
    obs = read_observations(observations_path)
    train = fit_rows(table(obs, spec, spec.get("holdout", 0)))
    data = design(train, spec, events=read_bottom_events(events_path, obs, spec))
    priors = resolve_priors(spec, data)
    decision = {e: {h: summary({e: d}, data.layer_data(h))[e] for h, d in by_h.items()}
                for e, by_h in parametrization(data, spec).items()}
    model = build(data, spec, priors, fast=True)  # the likelihood as one Potential: same posterior, cheaper
    log.info("bottom model: %d observations of %d series; hierarchies %s; %d free variables; %s, %d chains x "
             "(%d tune + %d draws), seed %d", data.y.size, len(data.series),
             {h: [layer.column for layer in layers] for h, layers in data.hierarchies.items()},
             len(model.free_RVs), inference["sampler"], inference["chains"], inference["tune"], inference["draws"],
             seed)
    for e, by_h in decision.items():
        for h, d in by_h.items():
            log.info("bottom model, %s along %s (%s): %s", e, h, d["mode"], "; ".join(
                f"{r['layer']}: {r['centered']} of {r['groups']} centered" for r in d["layers"]))
    nested = nested_units(data)
    for e, by_child in nested.items():
        for child, d in by_child.items():
            log.info("bottom model, %s along %s: %d of %d units lie in one unit of %s, pooled around their "
                     "parent plus that unit's value", e, child, d["alone"], d["units"], d["container"])
    shocks = {c: shock_parametrization(data, c) for c in (data.effects[SHOCK].components if SHOCK in data.effects else [])}
    for c, d in shocks.items():
        log.info("bottom model, shock %s (auto): %s (tau %.3g, information %.3g per cell, I*tau^2 %.3g)", c,
                 "centered" if d["centered"] else "non-centered", d["tau"], d["information"], d["ratio"])
    settings, why = _first_settings(inference, data, spec)
    if why:
        log.info("bottom model: %s", why)
    flipped = []

    def reparametrize(diag):
        new = effects_to_flip(diag, data, {**decision, **({SHOCK: shocks} if shocks else {})}, flipped)
        if not new:
            return None
        flipped.extend(new)
        return build(data, spec, priors, fast=True, flipped=flipped), f"{', '.join(new)}: the other parametrization"

    idata, diag = sample_until_passing(model, settings, seed, thresholds, cores=threads, label="bottom model: ",
                                       reparametrize=reparametrize)
    if flipped:  # what the predictions must rebuild (bottom.draw) and what parametrization.json says
        decision = {e: {h: summary({e: d}, data.layer_data(h))[e] for h, d in by_h.items()}
                    for e, by_h in flip(parametrization(data, spec), flipped).items()}
    if shocks:
        decision[SHOCK] = {c: {**d, **({"mode": "auto, flipped", "centered": not d["centered"]} if SHOCK in flipped else {})}
                           for c, d in shocks.items()}
    seconds = time.perf_counter() - t0
    diag.update(level="bottom", sampler=inference["sampler"], seconds=round(seconds, 2), first_attempt_rule=why,
                series=len(data.series), observations=int(data.y.size))
    for line in diagnostics.failures(diag) or ["all diagnostics passed"]:
        log.info("bottom model: %s", line)
    stamp(idata, spec, priors, sources, inference=inference, seed=seed, attempts=diag["attempts"], flipped=flipped)
    write_netcdf(idata, posterior_path)
    write_json(diag, diagnostics_path)
    write_json({"level": "bottom", "rule": f"{RULE}, per effect, hierarchy, layer and unit", "effects": decision,
                "nested": nested}, parametrization_path)
    save_figure(plots.rank(idata, hyperparameters(data)), rank_plot_path)
    log.info("bottom model: fitted in %.1f s", seconds)
    return diag


def _predictive_model(idata, frame: pd.DataFrame, fitted, spec: dict, events, source, terms: bool = False):
    """The bottom model over ``frame``'s rows with the fit's parametrization, checked against the posterior."""
    flipped = json.loads(idata.posterior.attrs.get("hbm_flipped", "[]"))  # the fit's parametrization (fit)
    model = build(design(frame, spec, like=fitted, events=events), spec, resolve_priors(spec, fitted), flipped=flipped,
                  terms=terms)
    # every variable but the shocks of periods after the fitted ones must come from the posterior: PyMC would
    # draw a missing one from its prior, silently (a posterior of another version of the model: measured, a
    # fit whose agencies' layer had been renamed since added prior noise to every agency's forecast)
    missing = [v.name for v in model.free_RVs if v.name not in idata.posterior and not v.name.endswith("_new")]
    if missing:
        raise ValueError(f"{source} has no draws of {', '.join(missing)}, which the bottom model built now has: "
                         "it was fitted by another version of the model or config; rerun the fit (fit_bottom)")
    return model


def _sample(idata, model, var_names: list[str], seed: int) -> dict[str, np.ndarray]:
    import pymc as pm

    with warnings.catch_warnings():  # the zero-sum layers' Potentials shape the prior, not y given the draws
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        pp = pm.sample_posterior_predictive(idata, model=model, var_names=var_names, random_seed=seed,
                                            predictions=True, progressbar=False, compile_kwargs=PREDICTIVE_COMPILE)
    return {v: pp.predictions[v].stack(sample=("chain", "draw")).transpose("sample", ...).values for v in var_names}


def draw(idata, frame: pd.DataFrame, fitted, spec: dict, seed: int, events: pd.DataFrame | None = None,
         source="the posterior") -> np.ndarray:
    """Posterior predictive draws (draws, rows) of the target for ``frame``'s rows (``source``: the posterior's
    file, for messages)."""
    return _sample(idata, _predictive_model(idata, frame, fitted, spec, events, source), [LIKELIHOOD], seed)[LIKELIHOOD]


def components(idata, frame: pd.DataFrame, fitted, spec: dict, seed: int, events: pd.DataFrame | None = None,
               source="the posterior") -> dict[str, np.ndarray]:
    """Each effect's part of the linear predictor (draws, rows) for ``frame``'s rows, by effect name, in the
    model's order: what a forecast is made of (the trend, its changes, each season, price, promotion, the
    shocks). On the link scale (log for the count and positive families): the parts add up to the linear
    predictor, and ``exp`` of a part is the factor it multiplies the mean by. The shocks of periods after the
    fitted ones are drawn as the forecasts draw them (``seed``)."""
    model = _predictive_model(idata, frame, fitted, spec, events, source, terms=True)
    names = [v.name for v in model.deterministics if v.name.startswith(TERM)]
    return {v.removeprefix(TERM): d for v, d in _sample(idata, model, names, seed).items()}


COMPONENT_DRAWS = 400  # posterior draws the components plot summarizes (thinned evenly): quantiles, not tails


def component_summary(idata, rows: pd.DataFrame, fitted, spec: dict, seed: int, events: pd.DataFrame | None = None,
                      source="the posterior") -> pd.DataFrame:
    """Each effect's part (:func:`components`) of ``rows`` summarized over at most COMPONENT_DRAWS draws: one row
    per (series, period, effect) with its 5 %, 50 % and 95 % quantiles and the row's ``kind``."""
    import xarray as xr

    post = idata.posterior.to_dataset()
    step = max(1, int(np.ceil(post.sizes["chain"] * post.sizes["draw"] / COMPONENT_DRAWS)))
    thinned = xr.DataTree.from_dict({"posterior": post.isel(draw=slice(None, None, step))})
    parts = components(thinned, rows, fitted, spec, seed, events=events, source=source)
    out = []
    for effect, d in parts.items():
        q05, median, q95 = np.quantile(d, [0.05, 0.5, 0.95], axis=0)
        out.append(pd.DataFrame({"series": rows[SERIES].to_numpy(), PERIOD: rows[PERIOD].to_numpy(),
                                 "kind": rows["kind"].to_numpy(), "effect": effect, "q05": q05, "median": median,
                                 "q95": q95}))
    return pd.concat(out, ignore_index=True)


def sum_to(frame: pd.DataFrame, draws: np.ndarray, column: str | None, target: str):
    """The draws and rows of ``frame`` summed per (unit of ``column``, period); ``None``: the total."""
    units = frame[column].astype(str) if column else pd.Series(TOTAL, index=frame.index)
    keys = pd.MultiIndex.from_arrays([units.to_numpy(), frame[PERIOD].to_numpy()], names=["unit", PERIOD])
    codes, uniques = pd.factorize(keys, sort=True)
    summed = np.zeros((draws.shape[0], len(uniques)))
    np.add.at(summed.T, codes, draws.T)  # summed[:, g] += draws[:, i] for rows i of group g
    rows = pd.DataFrame({"unit": uniques.get_level_values(0), PERIOD: uniques.get_level_values(1)})
    g = frame.groupby(codes, sort=True)
    rows["kind"] = g["kind"].first().to_numpy()
    rows[target] = g[target].sum().to_numpy()
    return rows, summed


def _history(train: pd.DataFrame, column: str | None, target: str) -> pd.DataFrame:
    units = train[column].astype(str) if column else pd.Series(TOTAL, index=train.index)
    out = train.groupby([units.rename("unit"), train[PERIOD]])[target].sum().reset_index()
    return out


def forecast(observations_path, posterior_path, diagnostics_path, forecasts_path, scores_path, plot_path, *,
             spec: dict, horizon: int, on_failure: str, seed: int, level_scores: dict | None = None,
             plan_path=None, events_path=None, components_path=None) -> dict:
    """Forecast every bottom series and every level above them (see the module docstring). ``level_scores``:
    level name -> forecasts/<level>.json of the per-level fits, compared where their column is a level here.
    ``components_path``: where to plot what each term contributes to the COMPONENT_SERIES largest series
    (:func:`component_summary`, :func:`hbm.plots.components`), fitted and forecast periods."""
    from hbm.forecast import future_assumption, future_rows, holdout_scores, summarize_draws

    diagnostics.require_passed(read_json(diagnostics_path), on_failure, str(diagnostics_path))
    cols, target = spec["columns"], spec["columns"]["target"]
    obs = read_observations(observations_path)
    tab = table(obs, spec, spec.get("holdout", 0))
    train = fit_rows(tab)
    events = read_bottom_events(events_path, obs, spec)
    fitted = design(train, spec, events=events)
    held = tab.loc[tab[HOLDOUT]] if HOLDOUT in tab else tab.iloc[:0]
    known = held[SERIES].isin(fitted.series)
    if not known.all():
        log.warning("bottom model: %d held-out rows of series with no fitted data are not forecast", int((~known).sum()))
        held = held.loc[known]
    plan = pd.read_parquet(plan_path) if plan_path else None
    future = future_rows(tab, train, as_level(spec), horizon, plan)
    frame = pd.concat([held.assign(kind="holdout"), future.assign(kind="future")], ignore_index=True)
    log.info("bottom model: forecasting %d held-out and %d future series-periods, seed %d", len(held),
             len(frame) - len(held), seed)
    idata = read_netcdf(posterior_path)
    draws = draw(idata, frame, fitted, spec, seed, events=events, source=posterior_path)
    grid = tab.attrs.get("time_grid")
    per_level_fits = {}
    for name, path in (level_scores or {}).items():
        per_level_fits[name] = read_json(path)
    column_of = {s["hierarchy"]["column"]: name for name, s in (spec.get("levels") or {}).items()}
    levels = [("series", SERIES), *((c, c) for c in summed_columns(spec)), (TOTAL, None)]
    out, result = [], {"seed": seed, "horizon": horizon, "future_assumption": future_assumption(plan), "levels": {}}
    for name, column in levels:
        rows, summed = sum_to(frame, draws, column, target)
        stats = summarize_draws(summed)
        out.append(pd.DataFrame({
            "level": name, "unit": rows["unit"].to_numpy(),
            "period": display_labels(grid, rows[PERIOD]) if grid else rows[PERIOD].astype(str).to_numpy(),
            PERIOD: rows[PERIOD].to_numpy("int64"), "kind": rows["kind"].to_numpy(),
            "observed": np.where(rows["kind"] == "holdout", rows[target].to_numpy("float64"), np.nan), **stats}))
        history = _history(train, column, target)
        level_spec = {"hierarchy": {"column": "unit"}, "columns": {"target": target}, "model": spec["model"]}
        hist_tab = pd.concat([history.assign(**{HOLDOUT: False}), rows.loc[rows["kind"] == "holdout", ["unit", PERIOD, target]]
                              .assign(**{HOLDOUT: True})], ignore_index=True)
        scores = holdout_scores(hist_tab, history, rows, summed, level_spec)
        scores.pop("per_unit", None)
        entry = {"units": int(rows["unit"].nunique()), "holdout": scores}
        fit_name = column_of.get(column)
        if fit_name in per_level_fits and per_level_fits[fit_name].get("holdout"):
            entry["per_level_fit"] = {"level": fit_name, **per_level_fits[fit_name]["holdout"]["model"]}
        result["levels"][name] = entry
        if scores:
            log.info("bottom model, %s (%d units): holdout CRPS %.4g (seasonal naive %.4g), 90%% coverage %.2f%s",
                     name, entry["units"], scores["model"]["crps"], scores["seasonal_naive"]["crps"],
                     scores["model"]["coverage_90"],
                     f"; per-level fit CRPS {entry['per_level_fit']['crps']:.4g}" if "per_level_fit" in entry else "")
    forecasts = pd.concat(out, ignore_index=True)
    with atomic_path(forecasts_path) as tmp:
        forecasts.to_parquet(tmp, index=False)
    write_json(result, scores_path)
    top = [c for c in (chain[-1] for chain in spec["bottom"]["hierarchies"].values())]
    shown = forecasts.loc[forecasts["level"].isin([TOTAL, *top])].assign(
        unit=lambda f: np.where(f["level"] == TOTAL, TOTAL, f["level"] + " " + f["unit"].astype(str)))
    hist = pd.concat([_history(train, c, target).assign(unit=lambda f, c=c: (c + " " + f["unit"]) if c else TOTAL)
                      for c in [None, *top]], ignore_index=True)
    units = [TOTAL] + [u for u in shown["unit"].unique() if u != TOTAL][:7]
    save_figure(plots.forecast(hist, shown, units, "unit", target, "bottom model:", grid=grid, time=cols.get("time")),
                plot_path)
    if components_path:
        largest = train.groupby(SERIES)[target].sum().nlargest(COMPONENT_SERIES).index.tolist()
        rows = pd.concat([train.loc[train[SERIES].isin(largest)].assign(kind="fitted"),
                          frame.loc[frame[SERIES].isin(largest)]], ignore_index=True)
        summary = component_summary(idata, rows, fitted, spec, seed, events=events, source=posterior_path)
        save_figure(plots.components(summary, largest, families.get(spec["model"]["family"]).log_link, grid=grid,
                                     time=cols.get("time")), components_path)
    return result
