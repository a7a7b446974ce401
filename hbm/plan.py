"""Stage 1b: the forecast plan, an optional file of planned prices and promotions for the forecast horizon.

``forecast.plan`` names a CSV or Parquet file with the time column, one or more of the data's key columns
(a level's column, its parents, or the bottom model's series columns) and the price and/or promotion column,
under the data's own column names::

    week,product,store,price,promo
    2025-02-24,prod_01,store_02,3.49,1       # one series
    2025-02-24,prod_02,store_02,,             # blank price and promotion: no plan for it
    2025-03-03,prod_03,,,1                    # a blank key cell: every store (prod_03 promoted everywhere)

    week,product,promo                        # or a file without the store column
    2025-03-03,prod_01,1

Each row applies to every series of the data whose key columns equal its values (a blank key cell
matches every value), in its period, which must be one of the forecast's future periods. A blank price or promotion (or a blank row) leaves that
series' default: its usual price (:func:`usual_price`: its geometric mean over its last 3 fitted periods) and
no promotion. Prices and
promotions are read as the data's are (blank, 0 and negative prices count as missing; a discount depth
with ``columns.promotion_scale: percent``). Anything else is an error naming the plan's file, column and
row: a period outside the forecast, a key value the data do not have, an unknown column, two rows that
plan the same series and period.

What the forecasts use, per unit of each level (and per bottom series) and future period:

- ``log_price_shift``: the average over the unit's series of ``log(planned price / the series' usual
  price)`` (0 where a series has no planned price), weighted by each series' share of the unit's target
  over the fitted periods (a level's price is the target-weighted mean of its series' prices); the
  forecast's price is the unit's usual price times ``exp(log_price_shift)``;
- ``promotion``: the mean over the unit's series of the planned promotion (0 where none), as a level's
  promotion is the mean over its rows.

Written to ``data/plan.parquet`` (columns ``column``, ``unit``, the period, ``log_price_shift``,
``promotion`` and ``source``, the plan's path as configured), one row per unit and period that a plan row
touches.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hbm.errors import DataError
from hbm.ingest import (PERIOD, check_columns, period_labels, periods_on_grid, read_discount, read_observations,
                        read_price, read_promotion, read_raw, read_time)
from hbm.io import atomic_path
from hbm.model.design import SEP  # joins a bottom series' key values

log = logging.getLogger(__name__)

COLUMNS = ["column", "unit", PERIOD, "log_price_shift", "promotion"]


def read_plan(plan_path, observations: pd.DataFrame, columns: dict, keys: list[str], horizon: int,
              fmt: str = "auto") -> pd.DataFrame:
    """The plan's rows, checked: its key columns (as text), the period, and ``price`` / ``promotion`` (NaN:
    the default)."""
    raw = read_raw(plan_path, fmt)
    time = columns.get("time")
    values = [c for c in (columns.get("price"), columns.get("promotion")) if c]
    if not time or not values or horizon < 1:
        raise DataError(plan_path, "a forecast plan needs columns.time, columns.price or columns.promotion and "
                                   "forecast.horizon >= 1")
    check_columns(raw, plan_path, [time])
    given = [c for c in keys if c in raw.columns]
    unknown = [c for c in raw.columns if c not in {time, *keys, *values}]
    if unknown:
        raise DataError(plan_path, f"unknown column; a plan has the time column {time!r}, key columns of "
                                   f"{keys} and the price or promotion column {values}", column=unknown[0])
    if not given:
        raise DataError(plan_path, f"no key column: name the series it plans with one or more of {keys}")
    if not any(c in raw.columns for c in values):
        raise DataError(plan_path, f"nothing planned: give the price or promotion column {values}")
    out = pd.DataFrame(index=raw.index)
    for c in given:
        text = raw[c].astype("string").str.strip()
        blank = (text.isna() | (text == "")).to_numpy()
        known = set(observations[c].astype(str))
        bad = ~blank & ~text.isin(known).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(plan_path, f"not a value of {c!r} in the data", column=c, row=i + 1,
                            value=str(text.iloc[i]))
        out[c] = text.astype(object).where(~blank, None)  # blank: every value of the column
    out[PERIOD] = periods_on_grid(read_time(raw, plan_path, time), observations.attrs["time_grid"], plan_path, time)
    last = int(observations[PERIOD].max())
    outside = (out[PERIOD] <= last) | (out[PERIOD] > last + horizon)
    if outside.any():
        i = int(np.flatnonzero(outside.to_numpy())[0])
        first, end = period_labels(observations.attrs["time_grid"], [last + 1, last + horizon])
        raise DataError(plan_path, f"not a forecast period (the forecast covers {first} to {end})", column=time,
                        row=i + 1, value=str(raw[time].iloc[i]))
    price, promo = columns.get("price"), columns.get("promotion")
    out["price"] = read_price(raw, plan_path, price) if price and price in raw else np.nan
    if promo and promo in raw:
        blank = raw[promo].isna() | (raw[promo].astype("string").str.strip() == "")
        filled = raw[promo].where(~blank, 0)
        reader = read_discount if columns.get("promotion_scale") == "percent" else read_promotion
        out["promotion"] = np.where(blank, np.nan, reader(raw.assign(**{promo: filled}), plan_path, promo))
    else:
        out["promotion"] = np.nan
    return _expand(out, observations, given, plan_path, raw[time])


def _expand(plan: pd.DataFrame, observations: pd.DataFrame, given: list[str], path, times: pd.Series) -> pd.DataFrame:
    """One row per series (the data's combinations of the plan's key columns) and period that a plan row
    names, a blank key cell standing for every value of its column; two rows naming the same series and
    period are an error naming both."""
    series = observations[given].astype(str).drop_duplicates().sort_values(given).reset_index(drop=True)
    parts = []
    for i, row in enumerate(plan.itertuples(index=False)):
        match = np.ones(len(series), dtype=bool)
        for c in given:
            value = row[plan.columns.get_loc(c)]
            if value is not None:
                match &= (series[c] == value).to_numpy()
        if not match.any():
            names = ", ".join(f"{c} {row[plan.columns.get_loc(c)]}" for c in given)
            raise DataError(path, f"names no series of the data ({names})", row=i + 1)
        parts.append(series.loc[match].assign(**{PERIOD: row[plan.columns.get_loc(PERIOD)], "_plan_row": i + 1,
                                                 "price": row[plan.columns.get_loc("price")],
                                                 "promotion": row[plan.columns.get_loc("promotion")]}))
    out = pd.concat(parts, ignore_index=True)
    twice = out.duplicated([*given, PERIOD], keep="first").to_numpy()
    if twice.any():
        k = int(np.flatnonzero(twice)[0])
        first = out.loc[out[[*given, PERIOD]].eq(out[[*given, PERIOD]].iloc[k]).all(axis=1), "_plan_row"].iloc[0]
        row = int(out["_plan_row"].iloc[k])
        names = ", ".join(f"{c} {out[c].iloc[k]}" for c in given)
        raise DataError(path, f"plans the same series ({names}) and period as row {first}", row=row,
                        value=str(times.iloc[row - 1]))
    return out.drop(columns="_plan_row")


RECENT_PERIODS = 3  # a unit's usual price after the data: the geometric mean over its last 3 fitted periods


def usual_price(fitted: pd.DataFrame, keys: list[str], price: str) -> pd.Series:
    """Each unit's (``keys``) usual price after the data, by key: the geometric mean of its price over its
    last RECENT_PERIODS fitted periods. Not over all of them: prices drift (Stallion's regular prices rose
    5-7 % a year), and at the whole window's mean a forecast would fall back to the price of years ago; the
    bottom model's components plot showed its price factor jumping from 0.72 in the last fitted months to
    1 in the first future one for SKU_01, a forecast 39 % too high from the price alone. Three periods,
    not one, so that one odd price does not set the horizon's."""
    recent = fitted.loc[fitted[PERIOD] > fitted.groupby(keys)[PERIOD].transform("max") - RECENT_PERIODS]
    return np.exp(np.log(recent[price]).groupby([recent[k] for k in keys]).mean())


def shifts(plan: pd.DataFrame, observations: pd.DataFrame, columns: dict, units: dict[str, list[str]],
           holdout: int = 0) -> pd.DataFrame:
    """Per unit of each level and future period touched by the plan: ``log_price_shift`` and ``promotion``
    (see the module docstring). ``units``: unit column name -> the data columns whose values
    name a unit (a level: its column; the bottom model: its series columns, joined by ``SEP``)."""
    keys = list(dict.fromkeys(c for cols in units.values() for c in cols))
    target, price = columns["target"], columns.get("price")
    fitted = observations.loc[observations[PERIOD] <= int(observations[PERIOD].max()) - holdout]
    series = fitted.assign(**{c: fitted[c].astype(str) for c in keys}).groupby(keys, sort=True)
    base = pd.DataFrame({"weight": series[target].sum()})
    if price:
        base["usual"] = usual_price(fitted.assign(**{c: fitted[c].astype(str) for c in keys}), keys, price)
    base = base.reset_index()
    given = [c for c in keys if c in plan.columns]
    periods = np.sort(plan[PERIOD].unique())
    grid = base.merge(pd.DataFrame({PERIOD: periods}), how="cross")
    grid = grid.merge(plan[[*given, PERIOD, "price", "promotion"]], on=[*given, PERIOD], how="left")
    grid["touched"] = grid["price"].notna() | grid["promotion"].notna()
    grid["shift"] = np.log(grid["price"] / grid["usual"]).fillna(0.0) if price else 0.0
    grid["promotion"] = grid["promotion"].fillna(0.0)
    out = []
    for name, cols in units.items():
        unit = grid[cols[0]].str.cat([grid[c] for c in cols[1:]], sep=SEP) if len(cols) > 1 else grid[cols[0]]
        g = grid.assign(unit=unit, wshift=grid["shift"] * grid["weight"]).groupby(["unit", PERIOD], sort=True)
        weight = g["weight"].sum()
        agg = pd.DataFrame({"log_price_shift": g["wshift"].sum() / weight.where(weight > 0),
                            "promotion": g["promotion"].mean(), "touched": g["touched"].any()})
        if (weight <= 0).any():  # units that never sold: a plain mean of the shifts
            agg["log_price_shift"] = agg["log_price_shift"].fillna(g["shift"].mean())
        agg = agg.loc[agg["touched"]].drop(columns="touched").reset_index()
        out.append(agg.assign(column=name))
    return pd.concat(out, ignore_index=True)[COLUMNS] if out else pd.DataFrame(columns=COLUMNS)


def ingest_plan(plan_path, observations_path, out_path, *, columns: dict, units: dict[str, list[str]], horizon: int,
                holdout: int = 0, fmt: str = "auto") -> pd.DataFrame:
    """Read and check the plan, and write each unit's planned shifts (see the module docstring)."""
    observations = read_observations(observations_path)
    keys = list(dict.fromkeys(c for cols in units.values() for c in cols))
    plan = read_plan(plan_path, observations, columns, keys, horizon, fmt)
    out = shifts(plan, observations, columns, units, holdout).assign(source=str(plan_path))
    with atomic_path(out_path) as tmp:
        out.to_parquet(tmp, index=False)
    log.info("%s: %d plan rows touch %d unit-periods over %d levels; wrote %s", plan_path, len(plan), len(out),
             out["column"].nunique(), out_path)
    return out


def apply(rows: pd.DataFrame, plan: pd.DataFrame | None, unit: str, columns: dict) -> pd.DataFrame:
    """Future ``rows`` of one level (unit column ``unit``) with the plan's price and promotion where it has them
    (``rows`` hold the defaults: the unit's usual price, no promotion)."""
    if plan is None or plan.empty:
        return rows
    mine = plan.loc[plan["column"] == unit]
    if mine.empty:
        return rows
    key = pd.MultiIndex.from_arrays([rows[unit].astype(str), rows[PERIOD].astype("int64")])
    found = mine.set_index(["unit", PERIOD]).reindex(key)
    rows = rows.copy()
    if columns.get("price"):
        rows[columns["price"]] = rows[columns["price"]] * np.exp(found["log_price_shift"].fillna(0.0).to_numpy())
    if columns.get("promotion"):
        planned = found["promotion"].to_numpy()
        rows[columns["promotion"]] = np.where(np.isnan(planned), rows[columns["promotion"]], planned)
    return rows
