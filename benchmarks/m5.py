"""M5 at real scale: reshape the wide M5 test file into hbm's long format (the benchmark's preparation step).

``../shared/data/m5/sales_test_evaluation.csv`` holds daily unit sales of 30,490 item x store series over
the 28 days d_1942..d_1969 (columns item_id, dept_id, cat_id, store_id, state_id, d_1942..d_1969). The
long file has one row per series and day (853,720 rows) with the calendar's covariates:

- ``snap``: 1 on the days the store's state allows SNAP purchases (snap_CA, snap_TX or snap_WI);
- ``event``: 1 on a day with a named event (Memorial Day, NBA finals start and end, Ramadan starts,
  Father's day in this window);
- ``dow_tue`` .. ``dow_sun``: day-of-week indicators (Monday is the baseline), whose slopes are the
  day-of-week seasonality shared by every unit of a level.

The data stay outside the repository (competition terms): the long file is written under ``results/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

M5_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "m5"
DAYS = ["tue", "wed", "thu", "fri", "sat", "sun"]
COVARIATES = ["snap", "event", *[f"dow_{d}" for d in DAYS]]


def prepare(out_path, m5_dir=M5_DIR, every_item: int = 1, first_item: int = 0) -> dict:
    """Write the long table to ``out_path`` (Parquet, atomically); return its row and series counts. With
    ``every_item`` k > 1 only every k-th item (in the order of their ids, from the ``first_item``-th, 0-based)
    in all its stores: a sample whose items, departments, stores and states are all real sums of several series
    (``benchmarks/m5_accuracy.yaml``; ``first_item`` 15 gives a second sample with none of its items)."""
    import pandas as pd

    from hbm.io import atomic_path

    m5_dir = Path(m5_dir)
    wide = pd.read_csv(m5_dir / "sales_test_evaluation.csv")
    if every_item > 1:
        items = np.sort(wide["item_id"].unique())[first_item::every_item]
        wide = wide[wide["item_id"].isin(items)].reset_index(drop=True)
    cal = pd.read_csv(m5_dir / "calendar.csv")
    ids = ["item_id", "dept_id", "cat_id", "store_id", "state_id"]
    days = [c for c in wide.columns if c.startswith("d_")]
    long = wide.melt(id_vars=ids, value_vars=days, var_name="d", value_name="units")
    cal = cal[cal["d"].isin(days)].set_index("d")
    long["date"] = pd.to_datetime(cal.loc[long["d"], "date"].to_numpy())
    snap = cal[["snap_CA", "snap_TX", "snap_WI"]].rename(columns=lambda c: c[5:])
    long["snap"] = snap.to_numpy()[cal.index.get_indexer(long["d"]), snap.columns.get_indexer(long["state_id"])]
    long["event"] = cal.loc[long["d"], "event_name_1"].notna().to_numpy().astype("int8")
    weekday = long["date"].dt.day_of_week.to_numpy()  # Monday 0
    for i, d in enumerate(DAYS, start=1):
        long[f"dow_{d}"] = (weekday == i).astype("int8")
    long = long.drop(columns="d").sort_values(["store_id", "item_id", "date"], kind="stable")
    long["units"] = long["units"].astype("int64")
    with atomic_path(out_path) as tmp:
        long.reset_index(drop=True).to_parquet(tmp, index=False)
    return {"rows": int(len(long)), "series": int(len(wide)), "days": len(days),
            "zeros": float(np.mean(long["units"].to_numpy() == 0)), "units": int(long["units"].sum())}


if __name__ == "__main__":
    import sys

    # python -m benchmarks.m5 [out.parquet [every_item [first_item]]]
    print(prepare(sys.argv[1] if len(sys.argv) > 1 else "results/benchmarks/m5/sales.parquet",
                  every_item=int(sys.argv[2]) if len(sys.argv) > 2 else 1,
                  first_item=int(sys.argv[3]) if len(sys.argv) > 3 else 0))
