"""Stage 1: raw CSV/Parquet -> validated Parquet (explicit pyarrow schema) + summary.json.

Every check failure raises :class:`hbm.errors.DataError` naming the file, the column and the offending
row (1-based data row, header not counted) or value. Nothing is written unless every check passes.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hbm.errors import DataError
from hbm.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

ROW = "row"  # the source row number (1-based) kept in the validated data, for messages downstream


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
    except (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise DataError(path, f"cannot be read as {fmt}: {e}") from None
    except pd.errors.EmptyDataError:
        raise DataError(path, "file is empty") from None
    if len(df) == 0:
        raise DataError(path, "has a header but no data rows")
    return df


def required_columns(columns: dict, levels: dict) -> list[str]:
    """Every column the analysis reads, in a stable order without repeats."""
    wanted = [columns["target"], columns.get("time"), columns.get("measurement_sd"), *columns.get("covariates", [])]
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
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values)
    if positive:
        bad |= ~(values > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "must be a finite positive number" if positive else "must be a finite number"
        raise DataError(path, what, column=column, row=i + 1, value=_py(raw.iloc[i]))
    return values


def _groups(df: pd.DataFrame, path, column: str) -> pd.Series:
    values = df[column]
    blank = values.isna() | (values.astype(str).str.strip() == "")
    if blank.any():
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataError(path, "group label is missing", column=column, row=i + 1, value=_py(values.iloc[i]))
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
    as_int = pd.to_numeric(raw, errors="coerce")
    if as_int.notna().all() and (as_int % 1 == 0).all():
        return as_int.astype("int64")
    parsed = pd.to_datetime(raw, errors="coerce", format=None)
    bad = parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, "not a date or an integer period", column=column, row=i + 1, value=_py(raw.iloc[i]))
    return parsed.astype("datetime64[ns]")


def validate_table(df: pd.DataFrame, path, columns: dict, levels: dict) -> pd.DataFrame:
    """Run every ingest check and return the typed table of the columns the analysis uses."""
    df = df.reset_index(drop=True)
    wanted = required_columns(columns, levels)
    _check_columns(df, path, wanted)
    out = pd.DataFrame({ROW: np.arange(1, len(df) + 1, dtype="int64")})
    group_cols = list(dict.fromkeys(c for lv in levels.values() for c in [lv["column"], *lv.get("parents", [])]))
    for c in group_cols:
        out[c] = _groups(df, path, c)
    out[columns["target"]] = _numeric(df, path, columns["target"])
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
    for lv in levels.values():
        chain = [lv["column"], *lv.get("parents", [])]
        for child, parent in zip(chain, chain[1:]):
            _check_nesting(out, path, child, parent)
        for c in lv.get("predictors", []):
            _check_constant(out, path, lv["column"], c)
    return out


def arrow_schema(df: pd.DataFrame, columns: dict, levels: dict) -> pa.Schema:
    """The explicit schema of the validated table."""
    group_cols = {c for lv in levels.values() for c in [lv["column"], *lv.get("parents", [])]}
    fields = []
    for c in df.columns:
        if c == ROW:
            t = pa.int64()
        elif c in group_cols:
            t = pa.string()
        elif c == columns.get("time"):
            t = pa.int64() if df[c].dtype.kind == "i" else pa.timestamp("ns")
        else:
            t = pa.float64()
        fields.append(pa.field(c, t, nullable=False))
    return pa.schema(fields, metadata={b"hbm.target": columns["target"].encode()})


def summarize(df: pd.DataFrame, path, columns: dict, levels: dict) -> dict:
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
    if columns.get("time"):
        t = df[columns["time"]]
        summary["time"] = {"column": columns["time"], "first": str(t.min()), "last": str(t.max()), "periods": int(t.nunique())}
    return summary


def ingest(raw_path, observations_path, summary_path, columns: dict, levels: dict, fmt: str = "auto") -> dict:
    """Read, check and write the validated table and its summary. Returns the summary."""
    df = read_raw(raw_path, fmt)
    table = validate_table(df, raw_path, columns, levels)
    summary = summarize(table, raw_path, columns, levels)
    for w in summary["warnings"]:
        log.warning(w)
    schema = arrow_schema(table, columns, levels)
    with atomic_path(observations_path) as tmp:
        pq.write_table(pa.Table.from_pandas(table, schema=schema, preserve_index=False), tmp)
    write_json(summary, summary_path)
    log.info("%s: %d rows checked; wrote %s", raw_path, len(table), observations_path)
    return summary


def read_observations(path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def _py(v):
    return v.item() if hasattr(v, "item") else v
