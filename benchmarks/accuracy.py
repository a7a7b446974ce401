"""The accuracy league table (project issue 18): hbm's forecasts against the forecasting libraries on the same
series and held-out periods, at every level of every hierarchy.

    make bench CASES=accuracy                            # retail_demand, Stallion, M5 -> benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks.accuracy retail_demand  # one data set, table on the terminal

For each data set the workflow runs (or finds up to date) the analysis: its per-level fits and its bottom model
fitted on the training periods, forecasting the held-out ones (``forecast.holdout``). From the analysis'
validated observations this module writes every series of every level of the bottom model's hierarchies
(bottom series, each hierarchy's levels, total) over the training periods, and the summing matrix; the
competitors (benchmarks/competitors/forecast.py, in `.venv-bench`: statsforecast's SeasonalNaive, AutoETS,
AutoARIMA and AutoTheta fitted per series at every level, and hierarchicalforecast's BottomUp and MinTrace
(mint_shrink) reconciliations of the AutoETS forecasts) forecast the same held-out periods. Every model is
scored the same way on the same (series, period) cells:

- CRPS from the quantiles 5, 25, 50, 75 and 95 % (twice the mean pinball loss over the five levels: a
  coarse approximation of the CRPS, the same for every model; hbm's quantiles come from its posterior
  predictive draws, the libraries' from their 50 % and 90 % prediction intervals);
- MAE of the median; MASE: MAE over the in-sample MAE of the seasonal naive forecast on the training periods
  (per series, then averaged over the series of the level);
- coverage of the 50 % and 90 % intervals;
- the coherence gap: per level, the mean absolute difference between a model's point forecast of a unit and
  the sum of its bottom series' point forecasts, relative to the level's mean observed value (0 for a model
  that is coherent by construction: hbm's bottom model, BottomUp, MinTrace);
- for M5, the M5-weighted scaled CRPS (:func:`score`): each unit's CRPS over its naive in-sample change,
  weighted by its dollar sales (``weights_evaluation.csv``), as the competition weighted its levels.

M5 (``benchmarks/m5_accuracy.yaml``) is a sample: every 30th item in all 10 stores (1,020 of 30,490 series),
written from ``../shared/data/m5`` by :func:`benchmarks.m5.prepare` the first time; its last 7 of 28 days are
held out. ``m5_check`` is the same config on the items in between (every 30th from the 15th): the m5 config's
choices were made by their scores on the first sample's held-out days, so this sample is the untuned check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "results" / "benchmarks" / "accuracy"
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
QUANTILES = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}

# data set -> (analysis config, results folder given to the workflow): the bundled analysis where `make run`
# puts it (up to date after a `make run`: nothing is refitted), Stallion where the `stallion` case puts it, M5's
# sample of items where nothing else does
DATASETS = {
    "retail_demand": ("config/analyses/retail_demand.yaml", ROOT / "results"),
    "stallion": ("benchmarks/stallion.yaml", ROOT / "results" / "benchmarks" / "stallion" / "results"),
    "m5": ("benchmarks/m5_accuracy.yaml", ROOT / "results" / "benchmarks" / "m5_accuracy" / "results"),
    "m5_check": ("benchmarks/m5_accuracy.yaml", ROOT / "results" / "benchmarks" / "m5_accuracy" / "results"),
}
M5_EVERY_ITEM = 30  # benchmarks/m5_accuracy.yaml's sample: every 30th item, in all 10 stores
M5_CHECK_FIRST_ITEM = 15  # m5_check (see the module's docstring): every 30th item from the 15th
CHECK = {"m5_check": {"name": "m5_accuracy_check", "data": {
    "path": f"results/benchmarks/m5/sales_every{M5_EVERY_ITEM}items_from{M5_CHECK_FIRST_ITEM}.parquet"}}}


def _m5_sample(path: Path, first_item: int = 0) -> None:
    from benchmarks import m5

    m5.prepare(path, every_item=M5_EVERY_ITEM, first_item=first_item)


def analysis_config(name: str) -> tuple[str, dict]:
    """The analysis config of a data set (path relative to the checkout, content). A check data set's is its
    base config with another name and data file, written under results/benchmarks/accuracy/<name>/."""
    config = DATASETS[name][0]
    cfg = yaml.safe_load((ROOT / config).read_text())
    if name not in CHECK:
        return config, cfg
    cfg = {**cfg, **CHECK[name], "description": f"{cfg.get('description', '')} Untuned check: "
                                                f"{CHECK[name]['data']['path']}.".strip()}
    path = WORK / name / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# {config} with another name and data file (benchmarks/accuracy.py's CHECK)\n" + \
        yaml.safe_dump(cfg, sort_keys=False)
    if not path.exists() or path.read_text() != text:  # unchanged: Snakemake sees no new config
        path.write_text(text)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path), cfg


# what a data set needs beyond the others: its data written first where missing (the data file of its config),
# the weights of its bottom series for a weighted score (:func:`m5_weights`)
WRITE_DATA = {"m5": _m5_sample, "m5_check": lambda path: _m5_sample(path, first_item=M5_CHECK_FIRST_ITEM)}
HBM_BOTTOM, HBM_LEVEL = "hbm bottom model", "hbm per-level fit"


def crps_from_quantiles(y: np.ndarray, q: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Twice the mean pinball loss over the quantile levels, per row (y: n, q: n x k)."""
    diff = y[:, None] - q
    return 2 * np.mean(np.maximum(levels * diff, (levels - 1) * diff), axis=1)


def _unit_of(obs: pd.DataFrame, level: str, series: list[str]) -> pd.Series:
    if level == "series":
        unit = obs[series[0]].astype(str)
        for column in series[1:]:
            unit = unit + " | " + obs[column].astype(str)
        return unit
    if level == "total":
        return pd.Series("total", index=obs.index)
    return obs[level].astype(str)


def prepare(res: Path, cfg: dict, out: Path) -> dict:
    """train.parquet, S.parquet and settings.json for the competitors; returns what scoring needs."""
    obs = pd.read_parquet(res / "data" / "observations.parquet")
    bottom = pd.read_parquet(res / "bottom" / "forecasts.parquet")
    hold = bottom[bottom["kind"] == "holdout"]
    levels = list(dict.fromkeys(hold["level"]))
    series = list(cfg["bottom"]["series"])
    target = cfg["columns"]["target"]
    first_hold = int(hold["_period"].min())
    h = int(hold["_period"].nunique())
    rows = []
    for level in levels:
        unit = _unit_of(obs, level, series)
        rows.append(pd.DataFrame({"level": level, "unit": unit.to_numpy(), "_period": obs["_period"].to_numpy(),
                                  "y": obs[target].to_numpy(dtype=float)}))
    long = pd.concat(rows).groupby(["level", "unit", "_period"], as_index=False)["y"].sum()
    long["unique_id"] = long["level"] + "/" + long["unit"]
    # each series from its first row to the last training period, missing periods as zero sales
    train_rows = []
    for uid, g in long[long["_period"] < first_hold].groupby("unique_id", sort=False):
        grid = pd.RangeIndex(int(g["_period"].min()), first_hold)
        train_rows.append(pd.DataFrame({"unique_id": uid, "ds": np.asarray(grid),
                                        "y": g.set_index("_period")["y"].reindex(grid, fill_value=0.0).to_numpy()}))
    train = pd.concat(train_rows, ignore_index=True)
    truth = long[long["_period"] >= first_hold].rename(columns={"_period": "ds"})
    # the same held-out values as hbm's: a check that both sides score the same cells
    check = hold.assign(unique_id=hold["level"] + "/" + hold["unit"]).merge(truth, on=["unique_id"], how="left",
                                                                            suffixes=("", "_t"))
    check = check[check["_period"] == check["ds"]]
    if not np.allclose(check["observed"], check["y"]):
        raise RuntimeError("the held-out values built here differ from hbm's bottom model forecasts' 'observed'")
    bottom_ids = sorted(train.loc[train["unique_id"].str.startswith("series/"), "unique_id"].unique())
    # hierarchicalforecast wants the aggregates first and the bottom series last, in the columns' order
    upper = [lv for lv in levels if lv == "total"] + [lv for lv in levels if lv not in ("total", "series")]
    ids = [i for lv in upper for i in dict.fromkeys(train["unique_id"]) if i.startswith(lv + "/")] + bottom_ids
    unit_of_bottom = {}
    for level in levels:
        unit = _unit_of(obs, level, series)
        bid = "series/" + _unit_of(obs, "series", series)
        unit_of_bottom[level] = dict(zip(bid, level + "/" + unit))
    matrix = np.zeros((len(ids), len(bottom_ids)))
    row, col = {u: i for i, u in enumerate(ids)}, {b: j for j, b in enumerate(bottom_ids)}
    for mapping in unit_of_bottom.values():
        pairs = [(row[u], col[b]) for b, u in mapping.items() if u in row and b in col]
        matrix[tuple(np.array(pairs).T)] = 1.0
    S = pd.DataFrame(matrix, index=ids, columns=bottom_ids)
    season = cfg.get("model", {}).get("seasonality") or {}
    season_length = int(round(float(season.get("period", 1)))) if season else 1
    tags = {level: [i for i in ids if i.startswith(level + "/")] for level in levels}
    out.mkdir(parents=True, exist_ok=True)
    train.to_parquet(out / "train.parquet", index=False)
    S.reset_index(names="unique_id").to_parquet(out / "S.parquet", index=False)
    (out / "settings.json").write_text(json.dumps({"h": h, "season_length": season_length, "tags": tags,
                                                   "bottom": "series"}, indent=1))
    return {"train": train, "truth": truth, "levels": levels, "S": S, "season_length": season_length,
            "first_hold": first_hold, "h": h, "unit_of_bottom": unit_of_bottom}


def hbm_forecasts(res: Path) -> pd.DataFrame:
    """hbm's held-out forecasts, as rows (unique_id, ds, model, mean and quantiles)."""
    cols = ["mean", *QUANTILES]
    b = pd.read_parquet(res / "bottom" / "forecasts.parquet")
    b = b[b["kind"] == "holdout"]
    frames = [pd.DataFrame({"unique_id": b["level"] + "/" + b["unit"], "ds": b["_period"], "model": HBM_BOTTOM,
                            **{c: b[c].to_numpy(dtype=float) for c in cols}})]
    for f in sorted((res / "forecasts").glob("*.parquet")):
        d = pd.read_parquet(f)
        d = d[d["kind"] == "holdout"]
        frames.append(pd.DataFrame({"unique_id": f.stem + "/" + d["unit"].astype(str), "ds": d["_period"],
                                    "model": HBM_LEVEL, **{c: d[c].to_numpy(dtype=float) for c in cols}}))
    return pd.concat(frames, ignore_index=True)


def m5_weights(prep: dict, m5_dir=None) -> dict:
    """M5's weights of the bottom series that ``prep`` holds: each item x store series' dollar sales over the
    28 days before the test days (``weights_evaluation.csv``, Level12), the competition's basis for every level's
    weights (a unit's weight is the dollar sales of its series over those of its level: :func:`score`)."""
    from benchmarks.m5 import M5_DIR

    w = pd.read_csv(Path(m5_dir or M5_DIR) / "weights_evaluation.csv")
    w = w[w["Level_id"] == "Level12"]
    dollars = dict(zip("series/" + w["Agg_Level_1"] + " | " + w["Agg_Level_2"], w["Dollar_Sales"].astype(float)))
    bottom = list(prep["unit_of_bottom"]["series"])
    missing = [b for b in bottom if b not in dollars]
    if missing:
        raise RuntimeError(f"weights_evaluation.csv has no Level12 row for {len(missing)} series, e.g. {missing[0]}")
    return {b: dollars[b] for b in bottom}


def score(fc: pd.DataFrame, prep: dict, weights: dict | None = None) -> pd.DataFrame:
    """One row per (level, model): CRPS, MASE, MAE, 50 % / 90 % coverage, coherence gap, series scored.

    With ``weights`` (bottom series -> dollar sales, :func:`m5_weights`) also ``wscrps``, M5's way of weighting
    a probabilistic score (the uncertainty competition's WSPL, here with the 5 quantiles of the CRPS): per
    level, each unit's mean CRPS over its held-out periods divided by its in-sample mean absolute one-step
    change from its first sale on, weighted by the unit's share of the level's dollar sales."""
    m = prep["season_length"]
    train = prep["train"]
    # in-sample seasonal-naive MAE per series (lag m, or 1 when a series is shorter than two seasons)
    scale = {}
    for uid, g in train.groupby("unique_id", sort=False):
        y = g["y"].to_numpy()
        lag = m if y.size > m else 1
        scale[uid] = np.mean(np.abs(y[lag:] - y[:-lag])) if y.size > lag else np.nan
    d = fc.merge(prep["truth"][["unique_id", "ds", "y", "level"]], on=["unique_id", "ds"], how="inner")
    # identical cells for every model of a level: those that each model forecasts
    models_of = d.groupby("level")["model"].nunique()
    has = d.groupby(["level", "unique_id", "ds"])["model"].transform("nunique")
    d = d[has.to_numpy() == d["level"].map(models_of).to_numpy()]
    levels = np.array(list(QUANTILES.values()))
    d["crps"] = crps_from_quantiles(d["y"].to_numpy(), d[list(QUANTILES)].to_numpy(), levels)
    d["ae"] = np.abs(d["y"] - d["median"])
    d["in50"] = (d["q25"] <= d["y"]) & (d["y"] <= d["q75"])
    d["in90"] = (d["q05"] <= d["y"]) & (d["y"] <= d["q95"])
    per_series = d.groupby(["level", "model", "unique_id"], as_index=False)["ae"].mean()
    per_series["mase"] = per_series["ae"] / per_series["unique_id"].map(scale)
    per_series = per_series.replace([np.inf, -np.inf], np.nan)
    out = d.groupby(["level", "model"]).agg(crps=("crps", "mean"), mae=("ae", "mean"), coverage_50=("in50", "mean"),
                                            coverage_90=("in90", "mean"), series=("unique_id", "nunique"),
                                            cells=("y", "size"), observed_mean=("y", "mean")).reset_index()
    out = out.merge(per_series.groupby(["level", "model"])["mase"].mean().reset_index(), on=["level", "model"])
    if weights is not None:
        naive = {}  # M5's scale: the mean absolute one-step change over the training days from the first sale
        for uid, g in train.groupby("unique_id", sort=False):
            y = g["y"].to_numpy()
            y = y[np.argmax(y > 0):] if (y > 0).any() else y
            naive[uid] = np.mean(np.abs(np.diff(y))) if y.size > 1 else np.nan
        unit_w = {}
        for level, mapping in prep["unit_of_bottom"].items():
            for b, u in mapping.items():
                unit_w[u] = unit_w.get(u, 0.0) + weights.get(b, 0.0)
        per_unit = d.groupby(["level", "model", "unique_id"], as_index=False)["crps"].mean()
        per_unit["scaled"] = per_unit["crps"] / per_unit["unique_id"].map(naive)
        per_unit["w"] = per_unit["unique_id"].map(unit_w).fillna(0.0)
        per_unit = per_unit[np.isfinite(per_unit["scaled"])]
        wsc = per_unit.groupby(["level", "model"]).apply(
            lambda g: float(np.sum(g["w"] * g["scaled"]) / np.sum(g["w"])) if g["w"].sum() > 0 else np.nan,
            include_groups=False).rename("wscrps").reset_index()
        out = out.merge(wsc, on=["level", "model"], how="left")
    # coherence gap: a level's point forecast against the sum of the same model's bottom point forecasts
    gaps = []
    for model, g in d.groupby("model"):
        bottom = g[g["level"] == "series"].set_index(["unique_id", "ds"])["mean"]
        if bottom.empty:
            continue
        for level in prep["levels"]:
            if level == "series":
                continue
            mapping = prep["unit_of_bottom"][level]
            summed = bottom.reset_index().assign(unit=lambda x: x["unique_id"].map(mapping)) \
                .groupby(["unit", "ds"])["mean"].sum()
            own = g[g["level"] == level].set_index(["unique_id", "ds"])["mean"]
            if own.empty:
                continue
            joined = own.rename_axis(["unit", "ds"]).to_frame("own").join(summed.rename("summed"), how="inner")
            gaps.append({"level": level, "model": model,
                         "coherence_gap": float(np.mean(np.abs(joined["own"] - joined["summed"]))
                                                / max(g.loc[g["level"] == level, "y"].mean(), 1e-12))})
    gaps = pd.DataFrame(gaps, columns=["level", "model", "coherence_gap"])
    return out.merge(gaps, on=["level", "model"], how="left")


def run_dataset(name: str, cores: int = 2) -> dict:
    """Run (or find up to date) the analysis, run the competitors, score everything; returns the rows."""
    results = DATASETS[name][1]
    config, cfg = analysis_config(name)
    data = ROOT / cfg["data"]["path"]
    if name in WRITE_DATA and not data.exists():
        print(f"  accuracy: {name}: writing {data.relative_to(ROOT)} ...", flush=True)
        WRITE_DATA[name](data)
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", str(cores), "--keep-going",
                           "--config", f"analyses=[{config}]", f"results={results}"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "SLURM_CONF": "/dev/null"})
    workflow_s = time.perf_counter() - t0
    res = results / cfg["name"]
    if not (res / "bottom" / "forecasts.parquet").exists():
        raise RuntimeError(f"{name}: the workflow wrote no bottom forecasts:\n{proc.stderr[-3000:]}")
    fits = {}
    for fit, d in [("bottom", res / "bottom")] + [(lv, res / "fits" / lv) for lv in cfg.get("levels", {})]:
        if (d / "diagnostics.json").exists():
            diag = json.loads((d / "diagnostics.json").read_text())
            fits[fit] = {"passed": diag["passed"], "seconds": diag.get("seconds"), "attempts": len(diag["attempts"])}
    work = WORK / name / "competitors"
    prep = prepare(res, cfg, work / "in")
    if not BENCH_PYTHON.exists():
        raise RuntimeError(f"{BENCH_PYTHON} is missing: run `make bench-env` (statsforecast and hierarchicalforecast)")
    t0 = time.perf_counter()
    comp = subprocess.run([str(BENCH_PYTHON), str(ROOT / "benchmarks" / "competitors" / "forecast.py"),
                           str(work / "in"), str(work / "out")], capture_output=True, text=True)
    if comp.returncode:
        raise RuntimeError(f"{name}: the competitors failed:\n{comp.stderr[-3000:]}")
    print(comp.stdout, end="", flush=True)
    meta = json.loads((work / "out" / "meta.json").read_text())
    meta["wall_s"] = time.perf_counter() - t0
    fc = pd.concat([hbm_forecasts(res), pd.read_parquet(work / "out" / "forecasts.parquet")], ignore_index=True)
    table = score(fc, prep, WEIGHTS[name](prep) if name in WEIGHTS else None)
    return {"dataset": name, "config": config, "workflow_s": workflow_s, "finished": proc.returncode == 0,
            "fits": fits, "competitors": meta, "h": prep["h"], "first_holdout_period": prep["first_hold"],
            "season_length": prep["season_length"], "rows": table.to_dict(orient="records")}


WEIGHTS = {"m5": m5_weights, "m5_check": m5_weights}


def _num(x: float) -> str:
    """A score with one decimal, or three significant digits below 10 (M5's series sell a unit or two a day)."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def lines(found: dict) -> list[str]:
    """The RESULTS.md section."""
    import hbm

    out = ["## Accuracy league table: hbm against statsforecast and hierarchicalforecast (held-out periods; 2 cores)", "",
           "CRPS from the 5/25/50/75/95 % quantiles of every model (twice the mean pinball loss; the same for every "
           "model), MAE of the median, MASE against the in-sample seasonal naive, coverage of the 50 % and 90 % "
           "intervals, and the coherence gap (mean |level point forecast - sum of the model's bottom point "
           "forecasts| / mean observed; 0 = coherent). Best CRPS per level in bold. statsforecast models are "
           "fitted per series at every level; BottomUp and MinTrace reconcile AutoETS; negative quantiles "
           "clipped at 0.", ""]
    for name, r in found.get("datasets", {}).items():
        comp = r["competitors"]
        rows = pd.DataFrame(r["rows"])
        weighted = "wscrps" in rows.columns
        fits = ", ".join(f"{k} {v['seconds']:.0f} s ({'passed' if v['passed'] else 'FAILED'}, {v['attempts']} "
                         f"attempt{'s' if v['attempts'] > 1 else ''})" for k, v in r["fits"].items() if v.get("seconds"))
        out += [f"### {name} ({r['config']}; {r['h']} held-out periods from period {r['first_holdout_period']}; "
                f"season length {r['season_length']})", "",
                f"- hbm {hbm.__version__}: {fits}. statsforecast {comp['versions']['statsforecast']}, "
                f"hierarchicalforecast {comp['versions']['hierarchicalforecast']}: "
                + ", ".join(f"{k} {v:.0f} s" for k, v in comp["seconds"].items()) + " (all series of all levels).", "",
                "| level | model | series | CRPS | MASE | MAE | 50 % cov. | 90 % cov. | coherence gap |"
                + (" M5-weighted scaled CRPS |" if weighted else ""),
                "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if weighted else "")]
        order = [lv for lv in rows["level"].unique() if lv == "series"] + \
                [lv for lv in rows["level"].unique() if lv not in ("series", "total")] + \
                [lv for lv in rows["level"].unique() if lv == "total"]
        for level in order:
            g = rows[rows["level"] == level].sort_values("crps")
            best = g["crps"].min()
            for _, x in g.iterrows():
                crps = f"**{_num(x['crps'])}**" if x["crps"] == best else _num(x["crps"])
                gap = "" if pd.isna(x.get("coherence_gap")) else f"{x['coherence_gap']:.3f}"
                out.append(f"| {level} | {x['model']} | {x['series']} | {crps} | {x['mase']:.2f} | {_num(x['mae'])} | "
                           f"{x['coverage_50']:.2f} | {x['coverage_90']:.2f} | {gap} |"
                           + (f" {x['wscrps']:.3f} |" if weighted else ""))
        out.append("")
    return out


def accuracy_case(datasets=tuple(DATASETS)) -> dict:
    found = {}
    for name in datasets:
        print(f"  accuracy: {name} ...", flush=True)
        found[name] = run_dataset(name)
    return {"datasets": found}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("datasets", nargs="*", default=list(DATASETS), help=f"of {list(DATASETS)}")
    a = p.parse_args(argv)
    found = accuracy_case(a.datasets)
    WORK.mkdir(parents=True, exist_ok=True)
    for name, r in found["datasets"].items():  # the rows, for RESULTS.md or a later look
        (WORK / f"{name}.json").write_text(json.dumps(r, indent=1, default=float))
    print("\n".join(lines(found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
