"""Stage 2: the validated observations -> one table per hierarchy level (``data/levels/<level>.parquet``).

Families that keep their rows (``aggregate: None`` in :mod:`hbm.model.families`: normal, studentt), or
no time column: the level's table is the observations themselves (the columns the level uses).
Families that sum (``aggregate: sum``: the log-link families) with a time column: rows are summed to one
observation per (unit of the level, period): the target summed, price averaged weighted by the target
(plain mean where the target sums to 0), promotion as the mean over rows (the share of promoted rows, or
the mean discount share), other covariates as the mean. The observations hold only each series' window
(ingest drops the zeros before a series' first sale, and after its last with ``columns.series_end:
last_sale``), so a unit enters its level's table at the first period one of its series sold, and a (unit,
period) with no rows left is missing, not zero.

With ``forecast.holdout = k`` the last k periods of the data are marked ``_holdout``: fits skip them and
the forecast stage scores them.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hbm.errors import HbmError
from hbm.ingest import PERIOD, ROW, read_observations
from hbm.io import atomic_path
from hbm.model import families

log = logging.getLogger(__name__)

HOLDOUT = "_holdout"  # True for the held-out last periods
ROWS = "_rows"  # number of raw rows summed into an aggregated observation


def _weighted_mean(values: pd.Series, weights: pd.Series, keys: list[pd.Series]) -> pd.Series:
    frame = pd.DataFrame({"vw": values * weights, "w": weights, "v": values})
    g = frame.groupby(keys, sort=True)
    total = g["w"].sum()
    return (g["vw"].sum() / total.where(total > 0)).fillna(g["v"].mean())


# A level's price and promotion are "a mix" (the report warns) when the rows summed into a (unit, period)
# differ this much: the median over unit-periods of the sd of log price, or the share of unit-periods whose
# rows' promotions differ.
MIX_PRICE_SD = 0.02
MIX_PROMOTION_SHARE = 0.1


def mix(obs: pd.DataFrame, keys: list, cols: dict) -> dict | None:
    """How much price and promotion vary between the rows summed into each (unit, period) of a level: a
    level's elasticity and lift then describe a price index of a mix of prices, not any series' own (the
    bottom model estimates those). Over the unit-periods of more than one row: the median and 90 % quantile
    of the sd of log price and the share with an sd above 0.01; the share whose promotions differ."""
    if not (cols.get("price") or cols.get("promotion")):
        return None
    n = obs.groupby(keys, sort=True).size()
    several = (n > 1).to_numpy()
    out = {"unit_periods": int(several.sum())}
    if not several.any():
        return {**out, "material": False}
    material = False
    if cols.get("price"):
        sd = np.log(obs[cols["price"]]).groupby(keys, sort=True).std(ddof=0).to_numpy()[several]
        out["price"] = {"log_price_sd_median": float(np.median(sd)), "log_price_sd_q90": float(np.quantile(sd, 0.9)),
                        "share_varying": float(np.mean(sd > 0.01))}
        material |= out["price"]["log_price_sd_median"] > MIX_PRICE_SD
    if cols.get("promotion"):
        g = obs[cols["promotion"]].groupby(keys, sort=True)
        varying = (g.max() > g.min()).to_numpy()[several]
        out["promotion"] = {"share_varying": float(np.mean(varying))}
        material |= out["promotion"]["share_varying"] > MIX_PROMOTION_SHARE
    out["material"] = bool(material)
    return out


def level_table(obs: pd.DataFrame, spec: dict, holdout: int = 0) -> pd.DataFrame:
    """The table one level's model is fitted to (see the module docstring)."""
    cols, hier = spec["columns"], spec["hierarchy"]
    unit, target, time = hier["column"], cols["target"], cols["time"]
    group_cols = [unit, *hier["parents"]]
    optional = [c for c in (cols.get("price"), cols.get("promotion"), cols.get("measurement_sd")) if c]
    mixed = None  # how much price and promotion vary within a summed unit-period (summed levels only)
    if not (families.get(spec["model"]["family"]).aggregate == "sum" and time):
        keep = [ROW, *group_cols, *hier["predictors"], target, *cols["covariates"], *optional]
        keep += [time, PERIOD] if time else []
        table = obs[list(dict.fromkeys(keep))].reset_index(drop=True)
    else:
        keys = [obs[unit], obs[PERIOD]]
        g = obs.groupby(keys, sort=True)
        table = g[[*group_cols[1:], *hier["predictors"], time]].first()
        table[target] = g[target].sum()
        table[ROWS] = g.size().astype("int64")
        if cols.get("price"):
            table[cols["price"]] = _weighted_mean(obs[cols["price"]], obs[target], keys)
        if cols.get("promotion"):
            table[cols["promotion"]] = g[cols["promotion"]].mean()
        for c in cols["covariates"]:
            table[c] = g[c].mean()
        table = table.reset_index()
        mixed = mix(obs, keys, cols)
    if time:
        last = int(obs[PERIOD].max())
        table[HOLDOUT] = table[PERIOD] > last - holdout
    table.attrs = dict(obs.attrs)
    if mixed is not None:
        table.attrs["mix"] = mixed
    return table


def fit_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a level's model is fitted to: all but the held-out periods."""
    if HOLDOUT in table:
        out = table.loc[~table[HOLDOUT]].reset_index(drop=True)
        out.attrs = dict(table.attrs)
        return out
    return table


def aggregate(observations_path, table_path, *, spec: dict, holdout: int = 0) -> pd.DataFrame:
    """Write one level's table (Parquet, the observations' schema metadata kept)."""
    source = pq.read_table(observations_path)
    table = level_table(read_observations(observations_path), spec, holdout)
    held = int(table[HOLDOUT].sum()) if HOLDOUT in table else 0
    if held == len(table):
        raise HbmError(f"key 'forecast.holdout': holding out the last {holdout} periods leaves no data to fit "
                       f"(the data have {int(table[PERIOD].max()) + 1} periods)")
    column = spec["hierarchy"]["column"]
    units = table[column].unique()
    if len(units) < 2:
        raise HbmError(
            f"{observations_path}, column '{column}': level '{spec['level']}' has a single group ({units[0]!r}); "
            f"partial pooling needs at least two groups to learn how much groups differ (with one, its sd "
            f"'tau' rests on the prior alone and the sampler diverges). Add data of more groups, or drop the "
            f"level from 'levels' in the analysis config"
        )
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = {k: v for k, v in (source.schema.metadata or {}).items() if k.startswith(b"hbm.")}
    if "mix" in table.attrs:
        meta[b"hbm.mix"] = json.dumps(table.attrs["mix"]).encode()
        if table.attrs["mix"]["material"]:
            log.warning("level %s: prices or promotions differ between the rows summed into a unit and period "
                        "(%s): the level's elasticity and lift describe a mix", spec["level"], table.attrs["mix"])
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **meta})
    with atomic_path(table_path) as tmp:
        pq.write_table(arrow, tmp)
    log.info("level %s: %d observations of %d units (%d held out) from %d rows; wrote %s", spec["level"],
             len(table), table[spec["hierarchy"]["column"]].nunique(), held, len(source), table_path)
    return table



