"""Stage 1: raw CSV/Parquet -> validated Parquet (explicit pyarrow schema) + summary.json.

Every check failure raises :class:`hbm.errors.DataError` naming the file, the column and the offending
row (1-based data row, header not counted) or value. Nothing is written unless every check passes.

The target must lie in its family's support (:meth:`hbm.model.families.Family.invalid`: e.g. gamma and
lognormal refuse 0 and negative values, the count families a value that is not a whole number of at least 0).

What is not refused but repaired, and counted in summary.json (log-link families; config/README.md, "Prices,
discounts and when a series starts"):

- a price that is blank, NaN, 0 or negative is treated as missing and filled from the same series' nearest
  usable price (the earlier one on a tie);
- a discount depth (``columns.promotion_scale: percent``) becomes the share depth / 100; a blank one, or one
  above 100 % (a price below zero), is treated as missing and filled the same way; a negative depth is refused;
- with ``columns.series_start: first_sale`` (the default) a series starts at its first sale: its zero periods
  before it are dropped (a series that never sold is dropped whole); with ``columns.series_end: last_sale``
  the zero periods after its last sale are dropped too.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hbm.errors import DataError
from hbm.io import atomic_path, sha256_file, write_json
from hbm.model import families
from hbm.model.design import PERIOD  # noqa: F401 (the period column: stages import it from here)

log = logging.getLogger(__name__)

ROW = "_row"  # the source row number (1-based) kept in the validated data, for messages downstream


def read_raw(path, fmt: str = "auto") -> pd.DataFrame:
    """Read a raw table; a missing, empty or unreadable file raises a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    try:
        if fmt == "parquet":
            df = pq.read_table(path).to_pandas()
        else:
            header = path.open(encoding="utf-8", newline="").readline()
            names = next(csv.reader([header]), [])
            dup = next((c for c in names if names.count(c) > 1), None)
            if dup is not None:
                raise DataError(path, "duplicate column name in the header", column=dup)
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:  # file line L is data row L - 1 (the header is line 1)
            raise DataError(path, f"the row has {m.group(3)} fields but the header has {m.group(1)}",
                            row=int(m.group(2)) - 1) from None
        raise DataError(path, f"cannot be read as {fmt}: {e}") from None
    except (pa.ArrowException, UnicodeDecodeError, OSError) as e:
        raise DataError(path, f"cannot be read as {fmt}: {e}") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "file is empty") from None
    if len(df) == 0:
        raise DataError(path, "has a header but no data rows")
    return df


def required_columns(columns: dict, levels: dict) -> list[str]:
    """Every column the analysis reads, in a stable order without repeats."""
    wanted = [columns["target"], columns.get("time"), columns.get("measurement_sd"), columns.get("price"),
              columns.get("promotion"), *columns.get("covariates", []), *(columns.get("series") or [])]
    for level in levels.values():
        wanted += [level["column"], *level.get("parents", []), *level.get("predictors", [])]
    return list(dict.fromkeys(c for c in wanted if c))


def check_columns(df: pd.DataFrame, path, wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in df.columns]
    if not missing:
        return
    have = list(df.columns)
    hint = ""
    if len(have) == 1 and any(sep in have[0] for sep in ";\t|"):
        hint = "; the header is one column: is the file delimited by something other than commas?"
    raise DataError(
        path, f"required column is missing (the file has {have}){hint}", column=missing[0]
    )


def _numeric(df: pd.DataFrame, path, column: str, *, positive: bool = False) -> np.ndarray:
    """The column as float64; the first blank, non-numeric, non-finite (or non-positive) value is an error."""
    raw = df[column]
    _typed(raw, path, column, "numbers")
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values)
    if positive:
        bad |= ~(values > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "must be a finite positive number" if positive else "must be a finite number"
        raise DataError(path, what, column=column, row=i + 1, value=python_value(raw.iloc[i]))
    return values


def _typed(raw: pd.Series, path, column: str, expected: str) -> None:
    """Typed (Parquet) columns: booleans and timestamps are refused where numbers or labels are expected."""
    kind = raw.dtype.kind
    if kind == "b" or (kind == "O" and len(raw) and all(isinstance(v, (bool, np.bool_)) for v in raw.iloc[:100])):
        raise DataError(path, f"has type boolean; expected {expected}", column=column, row=1,
                        value=python_value(raw.iloc[0]))
    if kind in "mM":
        raise DataError(path, f"has type {raw.dtype}; expected {expected}", column=column, row=1,
                        value=str(raw.iloc[0]))


def _target(df: pd.DataFrame, path, column: str, family: families.Family) -> np.ndarray:
    """The target: finite numbers in the family's support (a count a non-negative integer: ``12`` and
    ``12.0`` are fine, ``2.5`` is not; gamma and lognormal: above 0; hurdle_gamma: at least 0)."""
    values = _numeric(df, path, column)
    bad = family.invalid(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = ("a count must be a non-negative integer" if family.support == "count"
                   else f"must be {family.requirement} for the family '{family.name}'")
        raise DataError(path, problem, column=column, row=i + 1, value=python_value(df[column].iloc[i]))
    return values


_FLAGS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


def _blank(raw: pd.Series) -> np.ndarray:
    """Cells that say "no value": null, NaN, empty text or the text ``nan``."""
    text = raw.astype(str).str.strip().str.lower()
    return (raw.isna() | text.isin(["", "nan"])).to_numpy()


def _finite_or_blank(df: pd.DataFrame, path, column: str, what: str) -> np.ndarray:
    """The column as floats, NaN where blank; text that is not a number and infinite values are refused
    with file, column, row and value (``what``: the message)."""
    raw = df[column]
    _typed(raw, path, column, "numbers")
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    bad = (np.isnan(values) & ~_blank(raw)) | np.isinf(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, what, column=column, row=i + 1, value=python_value(raw.iloc[i]))
    return values


def read_price(df: pd.DataFrame, path, column: str) -> np.ndarray:
    """A price; NaN where it is missing: blank, NaN, 0 or negative (filled later, see :func:`fill_missing`).

    Text that is not a number and infinite values cannot be a price and are refused.
    """
    values = _finite_or_blank(df, path, column, "a price must be a finite number (blank, NaN, 0 and negative "
                              "prices are treated as missing)")
    values[~(values > 0)] = np.nan
    return values


def read_discount(df: pd.DataFrame, path, column: str) -> np.ndarray:
    """A discount depth in percent of the regular price, as the share depth / 100; NaN where it is missing
    (blank, NaN, or above 100 %: a price below zero). A negative depth and text are refused."""
    raw = df[column]
    values = _finite_or_blank(df, path, column, "a discount depth must be a finite number in percent of the "
                              "regular price (blank, NaN and depths above 100 are treated as missing)")
    negative = values < 0
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise DataError(path, "a discount depth cannot be negative (percent of the regular price taken off: 15 is "
                        "15 % off; a negative one is a markup)", column=column, row=i + 1,
                        value=python_value(raw.iloc[i]))
    values[values > 100] = np.nan
    return values / 100


def read_promotion(df: pd.DataFrame, path, column: str) -> np.ndarray:
    """A promotion flag: 0/1, true/false, yes/no, or a share of promoted units in [0, 1]."""
    raw = df[column]
    text = raw.astype(str).str.strip().str.lower()
    values = text.map(_FLAGS).astype("float64")
    values = values.fillna(pd.to_numeric(raw, errors="coerce")).to_numpy(dtype="float64", na_value=np.nan)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, "a promotion must be 0/1, true/false, yes/no or a share in [0, 1]", column=column,
                        row=i + 1, value=python_value(raw.iloc[i]))
    return values


def _groups(df: pd.DataFrame, path, column: str) -> pd.Series:
    values = df[column]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(path, "group label is missing", column=column, row=i + 1, value=python_value(values.iloc[i]))
    if values.dtype.kind == "f" and (values % 1 == 0).all():  # Parquet floats 1.0, 2.0 name groups "1", "2"
        values = values.astype("int64")
    return values.astype(str).str.strip()


def _check_nesting(df: pd.DataFrame, path, child: str, parent: str) -> None:
    """Every group of ``child`` sits in exactly one group of ``parent``."""
    pairs = df[[child, parent]].drop_duplicates()
    counts = pairs.groupby(child, sort=False)[parent].nunique()
    if (counts > 1).any():
        name = counts.index[counts.to_numpy() > 1][0]
        rows = df.index[df[child] == name]
        parents = df.loc[rows, parent]
        first = parents.iloc[0]
        j = rows[int(np.flatnonzero((parents != first).to_numpy())[0])]
        raise DataError(
            path,
            f"group '{name}' of column '{child}' is in more than one '{parent}' "
            f"('{first}' at row {rows[0] + 1}, '{df.at[j, parent]}' at row {j + 1})",
            column=parent, row=int(j) + 1, value=str(df.at[j, parent]),
        )


def _check_constant(df: pd.DataFrame, path, group: str, column: str) -> None:
    """A group-level predictor takes one value per group."""
    counts = df.groupby(group, sort=False)[column].nunique()
    if (counts > 1).any():
        name = counts.index[counts.to_numpy() > 1][0]
        rows = df.index[df[group] == name]
        vals = df.loc[rows, column]
        j = rows[int(np.flatnonzero((vals != vals.iloc[0]).to_numpy())[0])]
        raise DataError(
            path,
            f"group-level predictor must be constant within each '{group}', but group '{name}' has "
            f"{python_value(vals.iloc[0])!r} at row {rows[0] + 1} and {python_value(vals.loc[j])!r} at row {j + 1}",
            column=column, row=int(j) + 1, value=python_value(vals.loc[j]),
        )


def read_time(df: pd.DataFrame, path, column: str) -> pd.Series:
    raw = df[column]
    if raw.dtype.kind == "M":  # a typed date column (Parquet)
        bad = raw.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(path, "date is missing", column=column, row=i + 1)
        return raw.dt.tz_localize(None).astype("datetime64[ns]") if raw.dt.tz is not None else raw.astype(
            "datetime64[ns]")
    _typed(raw, path, column, "dates or integer periods")
    as_int = pd.to_numeric(raw, errors="coerce")
    if as_int.notna().all() and (as_int % 1 == 0).all():
        big = (as_int.abs() > 2**53).to_numpy()
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise DataError(path, "an integer period must be below 2**53", column=column, row=i + 1,
                            value=python_value(raw.iloc[i]))
        return as_int.astype("int64")
    parsed = pd.to_datetime(raw, errors="coerce", format=None)
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        first = int(np.flatnonzero(~bad.to_numpy())[0]) if (~bad).any() else None
        if first is not None and not pd.isna(pd.to_datetime(raw.iloc[i], errors="coerce", format="mixed")):
            seen = python_value(raw.iloc[first])
            raise DataError(path, f"date written in another format than row {first + 1}'s {seen!r}; "
                            f"mixed date formats are ambiguous: write every date as YYYY-MM-DD",
                            column=column, row=i + 1, value=python_value(raw.iloc[i]))
        raise DataError(path, "not a date or an integer period", column=column, row=i + 1,
                        value=python_value(raw.iloc[i]))
    return parsed.astype("datetime64[ns]")


def time_grid(values: pd.Series, path, column: str) -> tuple[np.ndarray, dict]:
    """The period index of each time value and the grid it lies on.

    Integer periods: step = the greatest common divisor of the gaps. Dates: step = the most common gap
    between consecutive distinct dates, and every date must lie on ``first + k * step``; dates that are all
    on the same day of the month (or all month ends) form a monthly grid. Anything else is an error naming
    the first date off the grid.
    """
    distinct = np.sort(values.unique())
    if values.dtype.kind == "i":
        step = int(np.gcd.reduce(np.diff(distinct))) if distinct.size > 1 else 1
        step = step or 1
        return ((values.to_numpy() - distinct[0]) // step).astype("int64"), {
            "kind": "integer", "origin": int(distinct[0]), "step": step}
    dates = pd.DatetimeIndex(distinct)
    origin = dates[0]
    if dates.size > 1:
        gaps = np.diff(dates.asi8)
        step = int(pd.Series(gaps).mode().iloc[0])
        if np.all((dates.asi8 - origin.value) % step == 0):
            days = step / 86_400e9
            start = origin.strftime("%Y-%m-%d" if origin == origin.normalize() else "%Y-%m-%d %H:%M:%S")
            grid = {"kind": "days", "origin": start, "step": days if days % 1 else int(days)}
            index = (values.to_numpy().astype("datetime64[ns]").astype("int64") - origin.value) // step
            return index.astype("int64"), grid
        same_day = np.unique(dates.day).size == 1 and dates.day[0] <= 28
        if same_day or bool(np.all(dates.is_month_end)):
            v = pd.DatetimeIndex(values)
            months = np.asarray((v.year - origin.year) * 12 + (v.month - origin.month), dtype="int64")
            step = int(np.gcd.reduce(np.unique(months))) or 1  # 3 for quarterly dates
            return months // step, {"kind": "months", "origin": origin.strftime("%Y-%m-%d"), "step": step,
                                     "month_end": not same_day}
        off = dates[(dates.asi8 - origin.value) % step != 0][0]
        i = int(np.flatnonzero((values == off).to_numpy())[0])
        every = f"{step // 86_400_000_000_000} days" if step % 86_400_000_000_000 == 0 else str(pd.Timedelta(step))
        raise DataError(path, f"date is not on the grid of the other dates (every {every} from {origin.date()})",
                        column=column, row=i + 1, value=str(off.date()))
    return np.zeros(len(values), dtype="int64"), {"kind": "days", "origin": origin.strftime("%Y-%m-%d"), "step": 1}


def period_times(grid: dict, periods) -> list:
    """The time of each period index on ``grid`` (the inverse of :func:`time_grid`): Timestamps for dates,
    integers for integer periods."""
    periods = np.asarray(periods, dtype="int64")
    if grid["kind"] == "integer":
        return [grid["origin"] + grid["step"] * int(p) for p in periods]
    origin = pd.Timestamp(grid["origin"])
    if grid["kind"] == "months":
        dates = [origin + pd.DateOffset(months=grid["step"] * int(p)) for p in periods]
        if grid.get("month_end"):
            dates = [d + pd.offsets.MonthEnd(0) for d in dates]
        return dates
    return [origin + pd.Timedelta(days=grid["step"] * int(p)) for p in periods]


def periods_on_grid(times: pd.Series, grid: dict, path, column: str) -> np.ndarray:
    """The period index of each time value on the data's ``grid`` (see :func:`time_grid`) of a file the user
    gives beside the data (a forecast plan, events); a value off the grid is an error naming that file, column,
    row and value."""
    if grid["kind"] == "integer":
        if times.dtype.kind != "i":
            raise DataError(path, "the data's periods are integers; write the plan's periods as integers too",
                            column=column, row=1, value=python_value(times.iloc[0]))
        offset = times.to_numpy() - grid["origin"]
        index, off = offset // grid["step"], offset % grid["step"] != 0
    else:
        if times.dtype.kind != "M":
            raise DataError(path, "the data's time column holds dates; write the plan's as dates (YYYY-MM-DD)",
                            column=column, row=1, value=python_value(times.iloc[0]))
        origin = pd.Timestamp(grid["origin"])
        t = pd.DatetimeIndex(times)
        if grid["kind"] == "months":
            months = np.asarray((t.year - origin.year) * 12 + (t.month - origin.month), dtype="int64")
            index, off = months // grid["step"], months % grid["step"] != 0
            on_day = (t.is_month_end if grid.get("month_end") else t.day == origin.day)
            off = off | ~np.asarray(on_day)
        else:
            step = int(round(grid["step"] * 86_400e9))
            ns = t.asi8 - origin.value
            index, off = ns // step, ns % step != 0
    if np.any(off):
        i = int(np.flatnonzero(off)[0])
        raise DataError(path, "not on the data's time grid", column=column, row=i + 1, value=str(times.iloc[i]))
    return np.asarray(index, dtype="int64")


def period_labels(grid: dict, periods) -> list[str]:
    """The time values of period indices on ``grid``: ``YYYY-MM-DD`` for dates, the integer for periods."""
    if grid["kind"] == "integer":
        return [str(t) for t in period_times(grid, periods)]
    return [d.strftime("%Y-%m-%d") for d in period_times(grid, periods)]


def date_format(grid: dict | None, times=None) -> str:
    """How dates print at the data's frequency: ``2013-01`` on a monthly (or quarterly) grid, ``2013-01-07``
    on a grid of whole days, with the time of day on a finer grid (or, without a grid, where one has it)."""
    if grid is not None:
        if grid["kind"] == "months":
            return "%Y-%m"
        return "%Y-%m-%d %H:%M" if grid["kind"] == "days" and grid["step"] % 1 else "%Y-%m-%d"
    if times is not None:
        t = pd.DatetimeIndex(times)
        if (t != t.normalize()).any():
            return "%Y-%m-%d %H:%M"
    return "%Y-%m-%d"


def time_text(value, grid: dict | None = None, fmt: str | None = None) -> str:
    """One time value as text: a date at the data's frequency (:func:`date_format`), or the integer period."""
    if isinstance(value, (pd.Timestamp, np.datetime64, dt.datetime)):
        return pd.Timestamp(value).strftime(fmt or date_format(grid, [value]))
    return str(python_value(value))


def display_labels(grid: dict, periods) -> list[str]:
    """Period indices as the report and the forecasts print them: dates at the data's frequency."""
    fmt = date_format(grid)
    return [time_text(t, grid, fmt) for t in period_times(grid, periods)]


def _check_duplicates(df: pd.DataFrame, path, key: list[str], grid: dict | None = None) -> None:
    """One row per key (time and the levels' unit columns): a repeated key is an error naming it."""
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return
    rows = np.flatnonzero(dup.to_numpy())
    first = df.iloc[rows[0]]
    same = rows[(df.iloc[rows][key] == first[key]).all(axis=1).to_numpy()]
    name = ", ".join(f"{c}={time_text(first[c], grid)}" for c in key)
    raise DataError(path, f"duplicate key ({name}): rows {same[0] + 1} and {same[1] + 1} are the same "
                    f"{'/'.join(key)}", column=key[0], row=int(same[1]) + 1, value=time_text(first[key[0]], grid))


def validate_table(df: pd.DataFrame, path, columns: dict, levels: dict, family: str = "normal") -> pd.DataFrame:
    """Run every ingest check and return the typed table of the columns the analysis uses.

    Log-link families with a time column: the rows outside each series' window are dropped (:func:`series_window`).
    Then missing prices and discount depths are filled (:func:`fill_missing`). What was dropped and filled is
    counted in ``attrs["repairs"]`` (for summary.json).
    """
    df = df.reset_index(drop=True)
    wanted = required_columns(columns, levels)
    check_columns(df, path, wanted)
    out = pd.DataFrame({ROW: np.arange(1, len(df) + 1, dtype="int64")})
    group_cols = list(dict.fromkeys([*(c for lv in levels.values() for c in [lv["column"], *lv.get("parents", [])]),
                                     *(columns.get("series") or [])]))
    for c in group_cols:
        out[c] = _groups(df, path, c)
    fam = families.get(family)
    timed = fam.log_link  # the log-link models index periods on a regular grid and sum rows per period
    out[columns["target"]] = _target(df, path, columns["target"], fam)
    if columns.get("price"):
        out[columns["price"]] = read_price(df, path, columns["price"])
    percent = columns.get("promotion_scale", "share") == "percent"
    if columns.get("promotion"):
        out[columns["promotion"]] = (read_discount if percent else read_promotion)(df, path, columns["promotion"])
    for c in columns.get("covariates", []):
        out[c] = _numeric(df, path, c)
    for lv in levels.values():
        for c in lv.get("predictors", []):
            if c not in out:
                out[c] = _numeric(df, path, c)
    if columns.get("measurement_sd"):
        out[columns["measurement_sd"]] = _numeric(df, path, columns["measurement_sd"], positive=True)
    if columns.get("time"):
        out[columns["time"]] = read_time(df, path, columns["time"])
        if timed:  # the log-link models index periods on a regular grid; the others only keep the time
            out[PERIOD], out.attrs["time_grid"] = time_grid(out[columns["time"]], path, columns["time"])
    for lv in levels.values():
        chain = [lv["column"], *lv.get("parents", [])]
        for child, parent in zip(chain, chain[1:]):
            _check_nesting(out, path, child, parent)
        for c in lv.get("predictors", []):
            _check_constant(out, path, lv["column"], c)
    key = series_columns(columns, levels)
    keep = np.ones(len(out), dtype=bool)
    repairs = {}
    if timed and columns.get("time"):
        grid = out.attrs["time_grid"]
        _check_duplicates(out, path, [columns["time"], *key], grid)
        start, end = columns.get("series_start", "first_sale"), columns.get("series_end", "data")
        keep, repairs["series_window"] = series_window(out, columns["target"], key, start, end, grid)
        if not keep.any():
            raise DataError(path, f"no series has a sale (the target is 0 in every row), so none starts "
                            f"('columns.series_start: {start}'); set it to 'data' to fit all-zero data",
                            column=columns["target"])
    sold = out[columns["target"]].to_numpy() > 0
    if columns.get("price"):
        repairs["price"] = _missing_counts(df[columns["price"]], out[columns["price"]], sold, keep, out[ROW])
    if columns.get("promotion") and percent:
        repairs["promotion"] = {"scale": "percent", **_missing_counts(df[columns["promotion"]],
                                                                      out[columns["promotion"]], sold, keep, out[ROW],
                                                                      depth=True)}
    attrs = out.attrs
    out = out.loc[keep].reset_index(drop=True)
    out.attrs = attrs
    order = PERIOD if PERIOD in out else ROW
    for role in ("price", "promotion"):
        c = columns.get(role)
        if c and out[c].isna().any():
            out[c] = fill_missing(out, path, c, key, order, role="price" if role == "price" else "discount depth")
    out.attrs["repairs"] = repairs
    return out


def _missing_counts(raw: pd.Series, values: pd.Series, sold: np.ndarray, keep: np.ndarray, rows: pd.Series,
                    depth: bool = False) -> dict:
    """What :func:`fill_missing` will repair in one column: the missing values, by cause, with and without sales,
    filled (in kept rows) or dropped with their rows."""
    missing = values.isna().to_numpy()
    number = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    causes = {"blank": np.isnan(number)}
    if depth:
        causes["above_100"] = number > 100
    else:
        causes |= {"zero": number == 0, "negative": number < 0}
    with_sales = missing & sold
    out = {"column": raw.name, "missing": int(missing.sum()), **{k: int(v.sum()) for k, v in causes.items()},
           "with_sales": int(with_sales.sum()), "without_sales": int((missing & ~sold).sum()),
           "filled": int((missing & keep).sum()), "dropped": int((missing & ~keep).sum()),
           "first_row_with_sales": int(rows.to_numpy()[with_sales][0]) if with_sales.any() else None}
    if depth:
        out["max_depth"] = float(np.nanmax(number)) if np.isfinite(number).any() else None
    return out


def series_window(df: pd.DataFrame, target: str, key: list[str], start: str = "first_sale", end: str = "data",
                  grid: dict | None = None, top: int = 5) -> tuple[np.ndarray, dict]:
    """Which rows lie inside their series' window, and what was dropped (log-link families with a time column).

    A series (one combination of the ``key`` columns) starts at its first period (``start: data``) or at its
    first sale, a period with target > 0 (``first_sale``: the zero periods before it are not demand, the product
    was not listed yet); it ends at its last period (``end: data``) or at its last sale (``last_sale``: the zero
    periods after it are taken as a delisting). A series that never sold has no window under either rule.
    """
    period = df[PERIOD].to_numpy()
    sold = df[target].to_numpy() > 0
    groups = [df[c] for c in key] if key else [np.zeros(len(df), dtype="int64")]
    first = pd.Series(np.where(sold, period, np.iinfo("int64").max), index=df.index).groupby(groups).transform(
        "min").to_numpy()
    last = pd.Series(np.where(sold, period, -1), index=df.index).groupby(groups).transform("max").to_numpy()
    trimming = start == "first_sale" or end == "last_sale"
    never = (last < 0) & trimming
    lead = (period < first) & ~never & (start == "first_sale")
    trail = (period > last) & ~never & (end == "last_sale")
    keep = ~(lead | trail | never)
    per = pd.DataFrame({"lead": lead, "trail": trail, "never": never, "first": first}, index=df.index)
    counts = per.groupby(groups, sort=True).agg(lead=("lead", "sum"), trail=("trail", "sum"), never=("never", "sum"),
                                                first=("first", "first"))
    latest = counts.loc[counts["lead"] > 0].sort_values("lead", ascending=False, kind="stable").head(top)

    def name(k):
        return ", ".join(f"{c}={v}" for c, v in zip(key, k if isinstance(k, tuple) else (k,)))

    def when(p):
        return time_text(period_times(grid, [p])[0], grid) if grid else str(int(p))

    info = {"start": start, "end": end, "series": int(len(counts)),
            "leading_zero_periods": int(lead.sum()), "series_starting_late": int((counts["lead"] > 0).sum()),
            "trailing_zero_periods": int(trail.sum()), "series_ending_early": int((counts["trail"] > 0).sum()),
            "never_sold_series": int((counts["never"] > 0).sum()), "never_sold_periods": int(never.sum()),
            "rows_dropped": int((~keep).sum()),
            "latest_starts": [{"series": name(k), "first_sale": when(r["first"]), "dropped": int(r["lead"])}
                              for k, r in latest.iterrows()],
            "never_sold": [name(k) for k in counts.index[(counts["never"] > 0).to_numpy()][:top]]}
    return keep, info


def fill_missing(df: pd.DataFrame, path, column: str, key: list[str], order: str, role: str = "price") -> pd.Series:
    """Each missing (NaN) value of ``column`` filled with its series' nearest usable value along ``order`` (the
    period; the earlier one on a tie). A series without any usable value is an error naming its first row."""
    frame = df[[*key, order, column, ROW]].sort_values([*key, order], kind="stable")
    groups = [frame[c] for c in key] or [np.zeros(len(frame))]
    at = frame[order].where(frame[column].notna()).astype("float64")
    before = frame[column].groupby(groups).ffill()
    after = frame[column].groupby(groups).bfill()
    t_before = at.groupby(groups).ffill()
    t_after = at.groupby(groups).bfill()
    use_after = before.isna() | (after.notna() & ((t_after - frame[order]) < (frame[order] - t_before)))
    filled = before.where(~use_after, after)
    if filled.isna().any():
        i = filled.index[filled.isna().to_numpy()][0]
        series = ", ".join(f"{c}={df.at[i, c]}" for c in key)
        raise DataError(path, f"no row of its series ({series}) has a usable {role} to fill this missing one from",
                        column=column, row=int(df.at[i, ROW]))
    return filled.reindex(df.index)


def series_columns(columns: dict, levels: dict) -> list[str]:
    """The columns that, with time, identify a row: ``columns.series``, or else each level's unit column."""
    return list(columns.get("series") or dict.fromkeys(lv["column"] for lv in levels.values()))


def arrow_schema(df: pd.DataFrame, columns: dict, levels: dict) -> pa.Schema:
    """The explicit schema of the validated table."""
    group_cols = {c for lv in levels.values() for c in [lv["column"], *lv.get("parents", [])]}
    group_cols |= set(columns.get("series") or [])
    fields = []
    for c in df.columns:
        if c in (ROW, PERIOD):
            t = pa.int64()
        elif c in group_cols:
            t = pa.string()
        elif c == columns.get("time"):
            t = pa.int64() if df[c].dtype.kind == "i" else pa.timestamp("ns")
        else:
            t = pa.float64()
        fields.append(pa.field(c, t, nullable=False))
    meta = {b"hbm.target": columns["target"].encode()}
    if "time_grid" in df.attrs:
        meta[b"hbm.time_grid"] = json.dumps(df.attrs["time_grid"]).encode()
    return pa.schema(fields, metadata=meta)


def summarize(df: pd.DataFrame, path, columns: dict, levels: dict, count: bool = False,
              rows_read: int | None = None) -> dict:
    y = df[columns["target"]].to_numpy()
    q = np.quantile(y, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    summary = {
        "source": str(path),
        "source_sha256": sha256_file(path),
        "rows_read": int(len(df) if rows_read is None else rows_read),
        "rows": int(len(df)),
        "target": {
            "column": columns["target"],
            "mean": float(y.mean()),
            "sd": float(y.std(ddof=1)) if len(y) > 1 else 0.0,
            **{k: float(v) for k, v in zip(["min", "q05", "q25", "median", "q75", "q95", "max"], q)},
        },
        "levels": {},
        "warnings": [],
    }
    for name, lv in levels.items():
        sizes = df.groupby(lv["column"], sort=False).size()
        summary["levels"][name] = {
            "column": lv["column"],
            "groups": int(sizes.size),
            "group_size": {"min": int(sizes.min()), "median": float(sizes.median()), "max": int(sizes.max())},
            "parents": {p: int(df[p].nunique()) for p in lv.get("parents", [])},
        }
        singles = sizes.index[sizes.to_numpy() == 1].tolist()
        if singles:
            summary["warnings"].append(
                f"level '{name}': {len(singles)} group(s) with a single observation "
                f"(e.g. {singles[:3]}); their own spread cannot be estimated"
            )
        if count:
            totals = df.groupby(lv["column"], sort=True)[columns["target"]].sum()
            zero = totals.index[totals.to_numpy() == 0].tolist()
            if zero:
                summary["warnings"].append(
                    f"level '{name}': {len(zero)} unit(s) sold nothing in any period (e.g. {zero[:3]}); their "
                    f"intercepts rest on the prior and the pooling, and forecasts for them stay near zero"
                )
    repairs = df.attrs.get("repairs", {})
    summary.update(repairs)
    summary["warnings"] += _repair_warnings(repairs)
    if columns.get("time"):
        t = df[columns["time"]]
        grid = df.attrs.get("time_grid")
        fmt = date_format(grid, t) if t.dtype.kind == "M" else None
        window = repairs.get("series_window", {})
        summary["time"] = {"column": columns["time"], "first": time_text(t.min(), grid, fmt),
                           "last": time_text(t.max(), grid, fmt),
                           "periods": int(df[PERIOD].max()) + 1 if PERIOD in df else int(t.nunique()),
                           "grid": grid,
                           "gaps": gaps(df, series_columns(columns, levels), window.get("start", "data"),
                                        window.get("end", "data")) if PERIOD in df else None}
        if summary["time"]["gaps"] and summary["time"]["gaps"]["series_with_gaps"]:
            g = summary["time"]["gaps"]
            summary["warnings"].append(f"{g['series_with_gaps']} of {g['series']} series miss {g['missing_periods']} "
                                       f"period(s) in all (e.g. {g['largest'][0]['series']})")
    return summary


def _repair_warnings(repairs: dict) -> list[str]:
    """The repairs that change what a model sees where it sold: filled prices and discount depths, dropped series."""
    out = []
    for key, what in (("price", "price (blank, NaN, 0 or negative)"),
                      ("promotion", "discount depth (blank, NaN or above 100 %)")):
        r = repairs.get(key)
        if r and r["with_sales"]:
            out.append(f"column '{r['column']}': {r['with_sales']} row(s) with sales had no usable {what}, e.g. row "
                       f"{r['first_row_with_sales']}; each was filled from its series' nearest usable value")
    s = repairs.get("series_window")
    if s and s["never_sold_series"]:
        out.append(f"{s['never_sold_series']} series sold nothing in any period and were dropped "
                   f"(e.g. {s['never_sold'][0]}); set 'columns.series_start: data' to keep them")
    return out


def gaps(df: pd.DataFrame, key: list[str], start: str = "data", end: str = "data", top: int = 5) -> dict:
    """Missing periods per series (one series per combination of the ``key`` columns) within its window: the
    whole grid, or from its first row (``start: first_sale``) and to its last row (``end: last_sale``)."""
    periods = int(df[PERIOD].max()) + 1
    g = df.groupby(key, sort=True)[PERIOD]
    seen = g.nunique()
    lo = g.min() if start == "first_sale" else 0
    hi = g.max() if end == "last_sale" else periods - 1
    missing = (hi - lo + 1) - seen
    largest = missing[missing > 0].sort_values(ascending=False, kind="stable").head(top)
    return {
        "series": int(seen.size), "periods": periods, "series_with_gaps": int((missing > 0).sum()),
        "missing_periods": int(missing.sum()),
        "largest": [{"series": ", ".join(f"{c}={v}" for c, v in zip(key, k if isinstance(k, tuple) else (k,))),
                     "missing": int(m)} for k, m in largest.items()],
    }


def ingest(raw_path, observations_path, summary_path, columns: dict, levels: dict, fmt: str = "auto",
           family: str = "normal") -> dict:
    """Read, check and write the validated table and its summary. Returns the summary."""
    df = read_raw(raw_path, fmt)
    table = validate_table(df, raw_path, columns, levels, family)
    summary = summarize(table, raw_path, columns, levels, count=families.get(family).log_link, rows_read=len(df))
    table.attrs.pop("repairs", None)  # in summary.json, not in the table's metadata
    for w in summary["warnings"]:
        log.warning(w)
    schema = arrow_schema(table, columns, levels)
    with atomic_path(observations_path) as tmp:
        pq.write_table(pa.Table.from_pandas(table, schema=schema, preserve_index=False), tmp)
    write_json(summary, summary_path)
    log.info("%s: %d rows checked; wrote %s", raw_path, len(table), observations_path)
    return summary


def read_observations(path) -> pd.DataFrame:
    """A validated table (observations or a level's table), with its time grid in ``attrs`` if it has one."""
    table = pq.read_table(path)
    df = table.to_pandas()
    meta = table.schema.metadata or {}
    if b"hbm.time_grid" in meta:
        df.attrs["time_grid"] = json.loads(meta[b"hbm.time_grid"])
    return df


def python_value(v):
    """A NumPy scalar as the Python value (for messages and JSON); anything else unchanged."""
    return v.item() if hasattr(v, "item") else v
