"""Holidays and events for the bottom model (``bottom.events``): a file of dated events.

``bottom.events`` names a CSV or Parquet file with the time column, an ``event`` column (the event's name)
and, optionally, key columns of the bottom model (its series columns or their hierarchies' columns, under
the data's own names) that limit an event to some series::

    week,event,region
    2024-12-23,christmas,            # a blank key cell: every series
    2025-12-22,christmas,            # an event recurs: one row per period it falls in
    2025-03-03,store_opening,region_1   # only the series of region_1

Each event adds one coefficient to the linear predictor of the rows it touches (its period, its series):
``events[event]``, on the log scale, shared by every series unless ``bottom.effects.events`` names hierarchies
to vary along (then pooled as every effect is). Default prior ``events ~ Normal(0, 1)`` (a factor between 1/7
and 7 within two sds), ``events_<layer>_sd ~ HalfNormal(0.5)``. Dates may lie in the data or after it: the
forecasts of a period with an event include it (an event only in the future has only its prior: wide
forecasts, said in the report's parameter table). Anything else is an error naming the file, column and row:
a date off the data's time grid or before the data, a key value the data do not have, an unknown column, a
blank event name, a row given twice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hbm.errors import DataError
from hbm.ingest import PERIOD, check_columns, periods_on_grid, read_raw, read_time
from hbm.model.design import EVENT_COLUMN


def read_events(path, observations: pd.DataFrame, columns: dict, keys: list[str], fmt: str = "auto") -> pd.DataFrame:
    """The events file's rows, checked: ``event`` (text), the period, and the key columns given (text; None
    where blank, i.e. every value)."""
    raw = read_raw(path, fmt)
    time = columns.get("time")
    if not time:
        raise DataError(path, "events need the data's time column ('columns.time')")
    check_columns(raw, path, [time, EVENT_COLUMN])
    unknown = [c for c in raw.columns if c not in {time, EVENT_COLUMN, *keys}]
    if unknown:
        raise DataError(path, f"unknown column; an events file has the time column {time!r}, {EVENT_COLUMN!r} and "
                              f"optionally key columns of {keys}", column=unknown[0])
    out = pd.DataFrame(index=raw.index)
    name = raw[EVENT_COLUMN].astype("string").str.strip()
    blank = (name.isna() | (name == "")).to_numpy()
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        raise DataError(path, "the event has no name", column=EVENT_COLUMN, row=i + 1, value="")
    out[EVENT_COLUMN] = name.astype(object)
    given = [c for c in keys if c in raw.columns]
    for c in given:
        text = raw[c].astype("string").str.strip()
        empty = (text.isna() | (text == "")).to_numpy()
        bad = ~empty & ~text.isin(set(observations[c].astype(str))).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"not a value of {c!r} in the data", column=c, row=i + 1, value=str(text.iloc[i]))
        out[c] = text.astype(object).where(~empty, None)
    out[PERIOD] = periods_on_grid(read_time(raw, path, time), observations.attrs["time_grid"], path, time)
    before = (out[PERIOD] < 0).to_numpy()
    if before.any():
        i = int(np.flatnonzero(before)[0])
        raise DataError(path, "before the data's first period", column=time, row=i + 1, value=str(raw[time].iloc[i]))
    twice = out.astype(str).duplicated().to_numpy()
    if twice.any():
        i = int(np.flatnonzero(twice)[0])
        raise DataError(path, "the same event, period and series as an earlier row", column=EVENT_COLUMN, row=i + 1,
                        value=str(out[EVENT_COLUMN].iloc[i]))
    return out.reset_index(drop=True)
