"""The forecasting libraries hbm is measured against (project issue 18), run in their own environment.

statsforecast needs pandas < 3 and hbm pins pandas 3, so they cannot share one: `make bench-env` builds
`.venv-bench` from benchmarks/competitors/requirements.lock, and benchmarks/bench.py's `accuracy` case runs
this script there. It never runs in `make run` or `make test`.

    .venv-bench/bin/python benchmarks/competitors/forecast.py IN_DIR OUT_DIR

IN_DIR holds what bench.py wrote from one hbm analysis:
- ``train.parquet``: ``unique_id`` ("<level>/<unit>"), ``ds`` (the period index, an integer), ``y``: every series
  of every level over the training periods only (the held-out periods are not in it);
- ``S.parquet``: the summing matrix, one row per ``unique_id``, one column per bottom series (0/1);
- ``settings.json``: ``h`` (periods to forecast), ``season_length``, ``tags`` ({level: [unique_id, ...]}),
  ``bottom`` (the bottom level's name).

OUT_DIR gets ``forecasts.parquet`` (unique_id, ds, model, mean, q05, q25, median, q75, q95) and
``meta.json`` (versions, seconds per model). Quantiles come from each model's 50 % and 90 % prediction
intervals; a model's point forecast (its mean) stands in for the median, as statsforecast gives no median.
Negative values are clipped at 0 (sales are not negative).
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

LEVELS = [50, 90]
QUANTILE_COLUMNS = {"q05": "lo-90", "q25": "lo-50", "q75": "hi-50", "q95": "hi-90"}


def long_form(fc: pd.DataFrame, model: str) -> pd.DataFrame:
    """One model's columns of a statsforecast/hierarchicalforecast frame as rows of quantiles."""
    out = pd.DataFrame({"unique_id": fc["unique_id"].to_numpy(), "ds": fc["ds"].to_numpy(), "model": model,
                        "mean": fc[model].to_numpy(dtype=float)})
    out["median"] = out["mean"]
    for q, suffix in QUANTILE_COLUMNS.items():
        out[q] = fc[f"{model}-{suffix}"].to_numpy(dtype=float)
    cols = ["mean", "q05", "q25", "median", "q75", "q95"]
    out[cols] = np.clip(out[cols].to_numpy(), 0.0, None)
    # a quantile set must be ordered; reconciliation by normality keeps it, a clip at 0 may tie it
    ordered = ["q05", "q25", "median", "q75", "q95"]
    out[ordered] = np.sort(out[ordered].to_numpy(), axis=1)
    return out


def main(in_dir: str, out_dir: str) -> int:
    import hierarchicalforecast
    import statsforecast
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import BottomUp, MinTrace
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    src, dst = Path(in_dir), Path(out_dir)
    dst.mkdir(parents=True, exist_ok=True)
    settings = json.loads((src / "settings.json").read_text())
    train = pd.read_parquet(src / "train.parquet")
    S = pd.read_parquet(src / "S.parquet")
    h, m = int(settings["h"]), int(settings["season_length"])
    tags = {k: np.asarray(v) for k, v in settings["tags"].items()}

    # Naive (the last value) forecasts any series, however short: it is each model's fallback where the model
    # fails on a series (statsforecast's fallback_model) or cannot forecast it (SeasonalNaive on a series
    # shorter than a season gives NaN); meta.json counts the cells each model took from it
    frames, seconds, filled = [], {}, {}
    models = {"Naive": Naive(), "SeasonalNaive": SeasonalNaive(season_length=m), "AutoETS": AutoETS(season_length=m),
              "AutoARIMA": AutoARIMA(season_length=m), "AutoTheta": AutoTheta(season_length=m)}
    base = naive = None
    for name, model in models.items():
        t0 = time.perf_counter()
        sf = StatsForecast(models=[model], freq=1, n_jobs=1, fallback_model=Naive())
        fc = sf.forecast(df=train, h=h, level=LEVELS, fitted=(name == "AutoETS"))
        seconds[name] = time.perf_counter() - t0
        print(f"  {name}: {len(train['unique_id'].unique())} series in {seconds[name]:.1f} s", flush=True)
        cols = [name] + [f"{name}-{s}" for s in QUANTILE_COLUMNS.values()]
        if naive is not None:
            missing = fc[cols].isna().any(axis=1).to_numpy()
            filled[name] = int(missing.sum())
            fc.loc[missing, cols] = naive.loc[missing, [c.replace(name, "Naive", 1) for c in cols]].to_numpy()
        else:
            naive = fc.copy()
        frames.append(long_form(fc, name))
        if name == "AutoETS":
            base, fitted = fc, sf.forecast_fitted_values()

    # reconciliations of the AutoETS base forecasts (their in-sample fit gives MinTrace its covariance)
    t0 = time.perf_counter()
    hrec = HierarchicalReconciliation(reconcilers=[BottomUp(), MinTrace(method="mint_shrink")])
    keep = ["unique_id", "ds", "AutoETS"] + [f"AutoETS-{s}" for s in QUANTILE_COLUMNS.values()]
    rec = hrec.reconcile(Y_hat_df=base[keep], Y_df=fitted[["unique_id", "ds", "y", "AutoETS"]], S_df=S, tags=tags,
                         level=LEVELS, intervals_method="normality")
    seconds["reconciliation"] = time.perf_counter() - t0
    for col in rec.columns:
        if col.startswith("AutoETS/") and "-lo-" not in col and "-hi-" not in col:
            method = "MinTrace (mint_shrink)" if "MinTrace" in col else col.split("/", 1)[1]
            frames.append(long_form(rec, col).assign(model=f"AutoETS + {method}"))
    print(f"  BottomUp and MinTrace (mint_shrink) of AutoETS in {seconds['reconciliation']:.1f} s", flush=True)

    pd.concat(frames, ignore_index=True).to_parquet(dst / "forecasts.parquet", index=False)
    (dst / "meta.json").write_text(json.dumps({
        "versions": {"statsforecast": statsforecast.__version__,
                     "hierarchicalforecast": hierarchicalforecast.__version__,
                     "pandas": pd.__version__, "numpy": np.__version__},
        "seconds": seconds, "h": h, "season_length": m, "cells_from_naive": filled}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
