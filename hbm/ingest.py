"""Stage 1: raw CSV/Parquet -> validated Parquet (explicit pyarrow schema) + summary.json.

Every check failure raises :class:`hbm.errors.DataError` naming the file, the column and the offending
row (1-based data row, header not counted) or value. Nothing is written unless every check passes.
"""

from __future__ import annotations

import csv
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

log = logging.getLogger(__name__)

ROW = "_row"  # the source row number (1-based) kept in the validated data, for messages downstream
PERIOD = "_period"  # the time column as an index on its grid (0 = first period), when there is one
COUNT_FAMILIES = ("negative_binomial", "poisson")


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


def _check_columns(df: pd.DataFrame, path, wanted: list[str]) -> None:
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
        raise DataError(path, what, column=column, row=i + 1, value=_py(raw.iloc[i]))
    return values


def _typed(raw: pd.Series, path, column: str, expected: str) -> None:
    """Typed (Parquet) columns: booleans and timestamps are refused where numbers or labels are expected."""
    kind = raw.dtype.kind
    if kind == "b" or (kind == "O" and len(raw) and all(isinstance(v, (bool, np.bool_)) for v in raw.iloc[:100])):
        raise DataError(path, f"has type boolean; expected {expected}", column=column, row=1, value=_py(raw.iloc[0]))
    if kind in "mM":
        raise DataError(path, f"has type {raw.dtype}; expected {expected}", column=column, row=1,
                        value=str(raw.iloc[0]))


def _counts(df: pd.DataFrame, path, column: str) -> np.ndarray:
    """A count target: every value a non-negative integer (``12`` and ``12.0`` are fine, ``2.5`` is not)."""
    values = _numeric(df, path, column)
    bad = (values < 0) | (values % 1 != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, "a count must be a non-negative integer", column=column, row=i + 1,
                        value=_py(df[column].iloc[i]))
    return values


_FLAGS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


def _promotion(df: pd.DataFrame, path, column: str) -> np.ndarray:
    """A promotion flag: 0/1, true/false, yes/no, or a share of promoted units in [0, 1]."""
    raw = df[column]
    text = raw.astype(str).str.strip().str.lower()
    values = text.map(_FLAGS).astype("float64")
    values = values.fillna(pd.to_numeric(raw, errors="coerce")).to_numpy(dtype="float64", na_value=np.nan)
    bad = ~((values >= 0) & (values <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(path, "a promotion must be 0/1, true/false, yes/no or a share in [0, 1]", column=column,
                        row=i + 1, value=_py(raw.iloc[i]))
    return values


def _groups(df: pd.DataFrame, path, column: str) -> pd.Series:
    values = df[column]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(path, "group label is missing", column=column, row=i + 1, value=_py(values.iloc[i]))
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
            f"{_py(vals.iloc[0])!r} at row {rows[0] + 1} and {_py(vals.loc[j])!r} at row {j + 1}",
            column=column, row=int(j) + 1, value=_py(vals.loc[j]),
        )


def _time(df: pd.DataFrame, path, column: str) -> pd.Series:
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
                            value=_py(raw.iloc[i]))
        return as_int.astype("int64")
    parsed = pd.to_datetime(raw, errors="coerce", format=None)
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        first = int(np.flatnonzero(~bad.to_numpy())[0]) if (~bad).any() else None
        if first is not None and not pd.isna(pd.to_datetime(raw.iloc[i], errors="coerce", format="mixed")):
            raise DataError(path, f"date written in another format than row {first + 1}'s {_py(raw.iloc[first])!r}; "
                            f"mixed date formats are ambiguous: write every date as YYYY-MM-DD",
                            column=column, row=i + 1, value=_py(raw.iloc[i]))
        raise DataError(path, "not a date or an integer period", column=column, row=i + 1, value=_py(raw.iloc[i]))
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
            grid = {"kind": "days", "origin": origin.strftime("%Y-%m-%d"), "step": days if days % 1 else int(days)}
            return ((values.to_numpy().astype("datetime64[ns]").astype("int64") - origin.value) // step).astype("int64"), grid
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


def period_labels(grid: dict, periods) -> list[str]:
    """The time labels of period indices on ``grid`` (the inverse of :func:`time_grid`)."""
    periods = np.asarray(periods, dtype="int64")
    if grid["kind"] == "integer":
        return [str(grid["origin"] + grid["step"] * int(p)) for p in periods]
    origin = pd.Timestamp(grid["origin"])
    if grid["kind"] == "months":
        dates = [origin + pd.DateOffset(months=grid["step"] * int(p)) for p in periods]
        if grid.get("month_end"):
            dates = [d + pd.offsets.MonthEnd(0) for d in dates]
        return [d.strftime("%Y-%m-%d") for d in dates]
    return [(origin + pd.Timedelta(days=grid["step"] * int(p))).strftime("%Y-%m-%d") for p in periods]


def _check_duplicates(df: pd.DataFrame, path, key: list[str]) -> None:
    """One row per key (time and the levels' unit columns): a repeated key is an error naming it."""
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return
    rows = np.flatnonzero(dup.to_numpy())
    first = df.iloc[rows[0]]
    same = rows[(df.iloc[rows][key] == first[key]).all(axis=1).to_numpy()]
    name = ", ".join(f"{c}={first[c]}" for c in key)
    raise DataError(path, f"duplicate key ({name}): rows {same[0] + 1} and {same[1] + 1} are the same "
                    f"{'/'.join(key)}", column=key[0], row=int(same[1]) + 1, value=str(first[key[0]]))


def validate_table(df: pd.DataFrame, path, columns: dict, levels: dict, family: str = "normal") -> pd.DataFrame:
    """Run every ingest check and return the typed table of the columns the analysis uses."""
    df = df.reset_index(drop=True)
    wanted = required_columns(columns, levels)
    _check_columns(df, path, wanted)
    out = pd.DataFrame({ROW: np.arange(1, len(df) + 1, dtype="int64")})
    group_cols = list(dict.fromkeys([*(c for lv in levels.values() for c in [lv["column"], *lv.get("parents", [])]),
                                     *(columns.get("series") or [])]))
    for c in group_cols:
        out[c] = _groups(df, path, c)
    count = family in COUNT_FAMILIES
    out[columns["target"]] = (_counts if count else _numeric)(df, path, columns["target"])
    if columns.get("price"):
        out[columns["price"]] = _numeric(df, path, columns["price"], positive=True)
    if columns.get("promotion"):
        out[columns["promotion"]] = _promotion(df, path, columns["promotion"])
    for c in columns.get("covariates", []):
        out[c] = _numeric(df, path, c)
    for lv in levels.values():
        for c in lv.get("predictors", []):
            if c not in out:
                out[c] = _numeric(df, path, c)
    if columns.get("measurement_sd"):
        out[columns["measurement_sd"]] = _numeric(df, path, columns["measurement_sd"], positive=True)
    if columns.get("time"):
        out[columns["time"]] = _time(df, path, columns["time"])
        if count:  # the count models index periods on a regular grid; the normal family only keeps the time
            out[PERIOD], out.attrs["time_grid"] = time_grid(out[columns["time"]], path, columns["time"])
    for lv in levels.values():
        chain = [lv["column"], *lv.get("parents", [])]
        for child, parent in zip(chain, chain[1:]):
            _check_nesting(out, path, child, parent)
        for c in lv.get("predictors", []):
            _check_constant(out, path, lv["column"], c)
    if count and columns.get("time"):
        _check_duplicates(out, path, [columns["time"], *series_columns(columns, levels)])
    return out


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


def summarize(df: pd.DataFrame, path, columns: dict, levels: dict, count: bool = False) -> dict:
    y = df[columns["target"]].to_numpy()
    q = np.quantile(y, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    summary = {
        "source": str(path),
        "source_sha256": sha256_file(path),
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
    if columns.get("time"):
        t = df[columns["time"]]
        summary["time"] = {"column": columns["time"], "first": str(t.min()), "last": str(t.max()),
                           "periods": int(df[PERIOD].max()) + 1 if PERIOD in df else int(t.nunique()),
                           "grid": df.attrs.get("time_grid"),
                           "gaps": gaps(df, series_columns(columns, levels)) if PERIOD in df else None}
        if summary["time"]["gaps"] and summary["time"]["gaps"]["series_with_gaps"]:
            g = summary["time"]["gaps"]
            summary["warnings"].append(f"{g['series_with_gaps']} of {g['series']} series miss {g['missing_periods']} "
                                       f"period(s) in all (e.g. {g['largest'][0]['series']})")
    return summary


def gaps(df: pd.DataFrame, key: list[str], top: int = 5) -> dict:
    """Missing periods per series (one series per combination of the ``key`` columns) over the whole grid."""
    periods = int(df[PERIOD].max()) + 1
    seen = df.groupby(key, sort=True)[PERIOD].nunique()
    missing = periods - seen
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
    summary = summarize(table, raw_path, columns, levels, count=family in COUNT_FAMILIES)
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


def _py(v):
    return v.item() if hasattr(v, "item") else v
