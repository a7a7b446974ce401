"""The benchmarks' own pieces (never their timings): the M5 reshaping and the hand-written baselines."""

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks import baselines
from benchmarks.m5 import COVARIATES, prepare
from conftest import ROOT


def _tiny_m5(tmp_path):
    """Two items in two stores of two states over three days, in M5's wide layout."""
    wide = pd.DataFrame({
        "item_id": ["FOODS_1_001", "FOODS_1_001", "HOBBIES_1_001", "HOBBIES_1_001"],
        "dept_id": ["FOODS_1", "FOODS_1", "HOBBIES_1", "HOBBIES_1"],
        "cat_id": ["FOODS", "FOODS", "HOBBIES", "HOBBIES"],
        "store_id": ["CA_1", "TX_1", "CA_1", "TX_1"],
        "state_id": ["CA", "TX", "CA", "TX"],
        "d_1": [0, 1, 2, 3], "d_2": [4, 5, 6, 7], "d_3": [8, 9, 10, 11],
    })
    cal = pd.DataFrame({
        "date": ["2016-05-30", "2016-05-31", "2016-06-01"], "d": ["d_1", "d_2", "d_3"],
        "event_name_1": ["MemorialDay", None, None],
        "snap_CA": [0, 0, 1], "snap_TX": [0, 1, 1], "snap_WI": [1, 1, 1],
    })
    wide.to_csv(tmp_path / "sales_test_evaluation.csv", index=False)
    cal.to_csv(tmp_path / "calendar.csv", index=False)
    return wide


def test_m5_long_format_has_one_row_per_series_and_day_with_the_states_snap(tmp_path):
    _tiny_m5(tmp_path)
    info = prepare(tmp_path / "out" / "sales.parquet", m5_dir=tmp_path)
    long = pd.read_parquet(tmp_path / "out" / "sales.parquet")
    assert info == {"rows": 12, "series": 4, "days": 3, "zeros": 1 / 12, "units": 66}
    assert len(long) == 12 and set(COVARIATES) <= set(long.columns)
    row = long.set_index(["item_id", "store_id", "date"])
    assert row.loc[("HOBBIES_1_001", "TX_1", pd.Timestamp("2016-05-31")), "units"] == 7
    # SNAP is the store's state's: TX has it on 05-31, CA does not
    assert row.loc[("FOODS_1_001", "TX_1", pd.Timestamp("2016-05-31")), "snap"] == 1
    assert row.loc[("FOODS_1_001", "CA_1", pd.Timestamp("2016-05-31")), "snap"] == 0
    assert row.xs(pd.Timestamp("2016-05-30"), level="date")["event"].eq(1).all()
    assert row.xs(pd.Timestamp("2016-06-01"), level="date")["event"].eq(0).all()
    # 2016-05-30 is a Monday (the baseline), 05-31 a Tuesday, 06-01 a Wednesday
    days = row.xs("CA_1", level="store_id").xs("FOODS_1_001", level="item_id")
    assert days[["dow_tue", "dow_wed"]].to_numpy().tolist() == [[0, 0], [1, 0], [0, 1]]


def test_grouped_baseline_has_the_same_parameters_as_ours(tmp_path):
    from hbm.models import LevelData, Layer, build_model

    data = LevelData(level="group", target="y", y=np.array([1.0, 2.0, 3.0, 4.0]), group_idx=np.array([0, 0, 1, 1]),
                     layers=[Layer("group", ["a", "b"])], X=np.zeros((4, 0)), covariates=[], Z=np.zeros((2, 0)),
                     predictors=[], coords={"group": ["a", "b"], "obs_id": np.arange(4)})
    spec = {"level": "group", "columns": {"target": "y", "covariates": []},
            "hierarchy": {"column": "group", "parents": [], "predictors": []},
            "model": {"family": "normal", "noise": "group", "parametrization": "centered", "priors": {
                "mu": {"dist": "normal", "mu": 0, "sigma": 10}, "tau": {"dist": "halfnormal", "sigma": 10},
                "sigma": {"dist": "halfnormal", "sigma": 10}}}}
    base = baselines.grouped(data, {}, spec)
    ours = build_model(data, spec)
    assert {v.name for v in base.free_RVs} == {v.name for v in ours.free_RVs} == {"mu", "tau", "theta", "sigma"}
    # and the same log density at the same point (grouped.yaml's priors: the foundation issue's)
    point = {"mu": 1.0, "tau_log__": 0.3, "theta": np.array([1.5, 3.5]), "sigma_log__": np.array([0.1, -0.2])}
    assert np.isclose(base.compile_logp()(point), ours.compile_logp()(point))


def test_retail_baseline_names_every_parameter_the_benchmark_compares(tmp_path):
    """ESS and R-hat are taken over hyperparameters + group effects: the baseline must have each of them."""
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest
    from hbm.models import build_model, group_parameters, hyperparameters, load_level, resolve_priors

    from conftest import ROOT

    analysis = load_analysis(ROOT / "config/analyses/retail_demand.yaml")
    spec = level_spec(analysis, "product")
    ingest(ROOT / analysis["data"]["path"], tmp_path / "obs.parquet", tmp_path / "summary.json",
           analysis["columns"], analysis["levels"], fmt="auto", family=analysis["model"]["family"])
    aggregate(tmp_path / "obs.parquet", tmp_path / "product.parquet", spec=spec, holdout=8)
    data = load_level(tmp_path / "product.parquet", spec)
    priors = resolve_priors(spec, data)
    base, ours = baselines.retail_product(data, priors, spec), build_model(data, spec, priors)
    compared = hyperparameters(spec) + group_parameters(spec)
    assert set(compared) <= set(base.named_vars) and set(compared) <= set(ours.named_vars)
    for name in compared:
        assert base[name].type.ndim == ours[name].type.ndim, name
    assert base["y"].owner.op.__class__.__name__ == ours["y"].owner.op.__class__.__name__  # same likelihood


# --------------------------------------------------------------------------------------------------------
# the accuracy league table (benchmarks/accuracy.py): scoring and the competitors' inputs, on a tiny analysis


def test_crps_from_quantiles_of_a_point_forecast_is_the_absolute_error():
    from benchmarks.accuracy import QUANTILES, crps_from_quantiles

    levels = np.array(list(QUANTILES.values()))
    y = np.array([3.0, 10.0, 7.0])
    q = np.repeat(np.array([[7.0]]), 3, axis=0) * np.ones((3, levels.size))
    # a point mass at 7: the CRPS is |y - 7|, and the symmetric levels' pinball mean gives exactly that
    assert np.allclose(crps_from_quantiles(y, q, levels), [4.0, 3.0, 0.0])
    # a wider set of quantiles around the truth scores better than a point forecast that misses by 3
    wide = np.array([[5.0, 8.0, 10.0, 12.0, 15.0]])
    assert crps_from_quantiles(np.array([10.0]), wide, levels)[0] < 3.0


def _tiny_analysis(tmp_path):
    """Two products x two stores over 6 periods, the last 2 held out; hbm's bottom forecasts (perfect on the
    bottom series, summed to product and total) and a per-level fit of product that is 10 % too high."""
    import itertools

    rows = []
    for (p, s), t in itertools.product(itertools.product(["p1", "p2"], ["s1", "s2"]), range(6)):
        rows.append({"product": p, "store": s, "units": float(1 + t + 2 * (p == "p2") + (s == "s2")), "_period": t})
    obs = pd.DataFrame(rows)
    res = tmp_path / "res"
    (res / "data").mkdir(parents=True)
    (res / "bottom").mkdir()
    (res / "forecasts").mkdir()
    obs.to_parquet(res / "data" / "observations.parquet")
    hold = obs[obs["_period"] >= 4]
    fc = []
    for level, keys in (("series", ["product", "store"]), ("product", ["product"]), ("total", [])):
        g = hold.groupby(keys + ["_period"], as_index=False)["units"].sum() if keys else \
            hold.groupby("_period", as_index=False)["units"].sum()
        unit = g[keys].astype(str).agg(" | ".join, axis=1) if keys else "total"
        fc.append(pd.DataFrame({"level": level, "unit": unit, "_period": g["_period"], "kind": "holdout",
                                "observed": g["units"], "mean": g["units"], "q05": g["units"], "q25": g["units"],
                                "median": g["units"], "q75": g["units"], "q95": g["units"]}))
    pd.concat(fc).to_parquet(res / "bottom" / "forecasts.parquet")
    prod = fc[1]
    pd.DataFrame({"unit": prod["unit"], "_period": prod["_period"], "kind": "holdout", "observed": prod["observed"],
                  **{c: 1.1 * prod["mean"] for c in ("mean", "q05", "q25", "median", "q75", "q95")}}) \
        .to_parquet(res / "forecasts" / "product.parquet")
    cfg = {"bottom": {"series": ["product", "store"]}, "columns": {"target": "units"},
           "model": {"seasonality": {"period": 2}}}
    return res, cfg


def test_accuracy_inputs_hold_every_level_over_the_training_periods_and_a_summing_matrix(tmp_path):
    from benchmarks.accuracy import prepare

    res, cfg = _tiny_analysis(tmp_path)
    prep = prepare(res, cfg, tmp_path / "in")
    train = pd.read_parquet(tmp_path / "in" / "train.parquet")
    assert train["ds"].max() == 3 and prep["h"] == 2 and prep["season_length"] == 2
    assert train["unique_id"].nunique() == 4 + 2 + 1
    total = train[train["unique_id"] == "total/total"].sort_values("ds")["y"].to_numpy()
    assert np.allclose(total, [4 * (1 + t) + 4 + 2 for t in range(4)])  # sum of the 4 series
    S = pd.read_parquet(tmp_path / "in" / "S.parquet").set_index("unique_id")
    assert S.index[0] == "total/total" and np.allclose(S.to_numpy()[-4:], np.eye(4))  # bottom last, identity
    assert S.loc["total/total"].sum() == 4 and S.loc["product/p1"].to_dict() == {
        "series/p1 | s1": 1.0, "series/p1 | s2": 1.0, "series/p2 | s1": 0.0, "series/p2 | s2": 0.0}


def test_accuracy_scores_a_perfect_coherent_forecast_zero_and_the_biased_one_by_its_bias(tmp_path):
    from benchmarks.accuracy import HBM_BOTTOM, HBM_LEVEL, hbm_forecasts, prepare, score

    res, cfg = _tiny_analysis(tmp_path)
    prep = prepare(res, cfg, tmp_path / "in")
    table = score(hbm_forecasts(res), prep).set_index(["level", "model"])
    perfect = table.xs(HBM_BOTTOM, level="model")
    assert set(perfect.index) == {"series", "product", "total"}
    assert np.allclose(perfect[["crps", "mae", "mase"]].to_numpy(), 0.0)
    assert np.allclose(perfect[["coverage_50", "coverage_90"]].to_numpy(), 1.0)
    assert np.allclose(perfect.loc[["product", "total"], "coherence_gap"], 0.0)  # summed draw by draw
    biased = table.loc[("product", HBM_LEVEL)]
    held = pd.read_parquet(res / "forecasts" / "product.parquet")["observed"]
    assert biased["mae"] == pytest.approx(0.1 * held.mean())  # 10 % too high everywhere
    assert biased["coverage_90"] == 0.0 and biased["series"] == 2


def test_accuracy_scores_every_model_of_a_level_on_the_same_cells(tmp_path):
    from benchmarks.accuracy import HBM_BOTTOM, HBM_LEVEL, hbm_forecasts, prepare, score

    res, cfg = _tiny_analysis(tmp_path)
    level_fit = pd.read_parquet(res / "forecasts" / "product.parquet")
    level_fit.iloc[1:].to_parquet(res / "forecasts" / "product.parquet")  # the per-level fit misses one cell
    table = score(hbm_forecasts(res), prepare(res, cfg, tmp_path / "in")).set_index(["level", "model"])
    assert table.loc[("product", HBM_LEVEL), "cells"] == table.loc[("product", HBM_BOTTOM), "cells"] == 3
    assert table.loc[("series", HBM_BOTTOM), "cells"] == 8  # other levels keep all their cells


def test_m5_weighted_score_weights_each_unit_by_the_dollar_sales_of_its_series(tmp_path):
    from benchmarks.accuracy import HBM_BOTTOM, HBM_LEVEL, hbm_forecasts, m5_weights, prepare, score

    res, cfg = _tiny_analysis(tmp_path)
    prep = prepare(res, cfg, tmp_path / "in")
    # M5's layout: Level12 holds each item x store series' dollar sales; other levels are ignored
    pd.DataFrame({"Level_id": ["Level1", "Level12", "Level12", "Level12", "Level12"],
                  "Agg_Level_1": ["Total", "p1", "p1", "p2", "p2"], "Agg_Level_2": ["X", "s1", "s2", "s1", "s2"],
                  "Dollar_Sales": [99.0, 3.0, 1.0, 0.0, 0.0], "weight": [1.0, 0.1, 0.1, 0.1, 0.1]}) \
        .to_csv(tmp_path / "weights_evaluation.csv", index=False)
    weights = m5_weights(prep, m5_dir=tmp_path)
    assert weights == {"series/p1 | s1": 3.0, "series/p1 | s2": 1.0, "series/p2 | s1": 0.0, "series/p2 | s2": 0.0}
    table = score(hbm_forecasts(res), prep, weights).set_index(["level", "model"])
    assert np.allclose(table.xs(HBM_BOTTOM, level="model")["wscrps"], 0.0)  # perfect everywhere
    # the per-level fit is 10 % too high; p2 has no dollar sales, so the product level's score is p1's alone:
    # its mean CRPS (the error of a point forecast) over its mean absolute one-step change in training
    held = pd.read_parquet(res / "forecasts" / "product.parquet")
    p1 = held[held["unit"] == "p1"]["observed"].to_numpy()
    train = pd.read_parquet(tmp_path / "in" / "train.parquet")
    y = train[train["unique_id"] == "product/p1"].sort_values("ds")["y"].to_numpy()
    assert table.loc[("product", HBM_LEVEL), "wscrps"] == pytest.approx(np.mean(0.1 * p1) / np.mean(np.abs(np.diff(y))))
    # a series that the weights file lacks is an error that names it
    pd.DataFrame({"Level_id": ["Level12"], "Agg_Level_1": ["p1"], "Agg_Level_2": ["s1"], "Dollar_Sales": [1.0],
                  "weight": [1.0]}).to_csv(tmp_path / "weights_evaluation.csv", index=False)
    with pytest.raises(RuntimeError, match="no Level12 row for 3 series"):
        m5_weights(prep, m5_dir=tmp_path)


def test_m5_sample_of_every_kth_item_keeps_each_item_in_all_its_stores(tmp_path):
    _tiny_m5(tmp_path)
    info = prepare(tmp_path / "out" / "sales.parquet", m5_dir=tmp_path, every_item=2)
    long = pd.read_parquet(tmp_path / "out" / "sales.parquet")
    assert info["series"] == 2 and info["rows"] == 6
    assert set(long["item_id"]) == {"FOODS_1_001"} and set(long["store_id"]) == {"CA_1", "TX_1"}
    # the check sample (first_item): the items in between, none of the first sample's
    info = prepare(tmp_path / "out" / "check.parquet", m5_dir=tmp_path, every_item=2, first_item=1)
    long = pd.read_parquet(tmp_path / "out" / "check.parquet")
    assert info["series"] == 2 and set(long["item_id"]) == {"HOBBIES_1_001"}


def test_m5_check_config_is_the_m5_config_on_the_other_items(tmp_path, monkeypatch):
    """benchmarks/accuracy.py's untuned check: the m5 analysis, renamed, on the items between m5's, written
    as a config that hbm loads; written again only when it changes (Snakemake would rerun on a new mtime)."""
    import yaml

    from benchmarks import accuracy
    from hbm.config import load_analysis

    monkeypatch.setattr(accuracy, "WORK", tmp_path)
    base_path, base = accuracy.analysis_config("m5")
    path, cfg = accuracy.analysis_config("m5_check")
    assert base_path == "benchmarks/m5_accuracy.yaml" and path == str(tmp_path / "m5_check" / "config.yaml")
    assert cfg["name"] == "m5_accuracy_check" and cfg["data"]["path"].endswith("_from15.parquet")
    assert {k: v for k, v in cfg.items() if k not in ("name", "data", "description")} == \
        {k: v for k, v in base.items() if k not in ("name", "data", "description")}
    assert yaml.safe_load(open(path)) == cfg
    mtime = (tmp_path / "m5_check" / "config.yaml").stat().st_mtime_ns
    accuracy.analysis_config("m5_check")
    assert (tmp_path / "m5_check" / "config.yaml").stat().st_mtime_ns == mtime
    assert load_analysis(path)["name"] == "m5_accuracy_check"


def test_gradient_benchmark_design_and_its_arithmetic_limit_kernel(tmp_path):
    """benchmarks/gradient.py: M5's long table as the bottom model's design (every row, item and store units),
    and the fused kernel's value and gradient against the direct formula and finite differences."""
    from benchmarks.gradient import limit_kernel, m5_design

    _tiny_m5(tmp_path)
    prepare(tmp_path / "sales.parquet", m5_dir=tmp_path)
    data, _ = m5_design(tmp_path / "sales.parquet")
    assert data.y.size == 12 and len(data.series) == 4
    assert data.effects["weekly"].x.shape == (12, 6) and data.effects["weekly"].hierarchies == ["store"]
    item, store = data.unit_of["item"][data.series_idx], data.unit_of["store"][data.series_idx]
    F = np.ascontiguousarray(data.effects["weekly"].x)
    rng = np.random.default_rng(1)
    a_item, a_store, b = rng.normal(size=2), rng.normal(size=2), rng.normal(0, 0.3, size=(2, 6))
    y = data.y.astype("float64")
    kernel = limit_kernel()

    def value(ai, as_, bb, grads=None):
        grads = grads or (np.empty(2), np.empty(2), np.empty((2, 6)))
        return kernel(y, item.astype("int64"), store.astype("int64"), F, ai, as_, bb, 2.0, *grads), grads

    total, (g_item, g_store, g_b) = value(a_item, a_store, b)
    eta = a_item[item] + a_store[store] + (F * b[store]).sum(axis=1)
    assert np.isclose(total, np.sum(y * eta - (2.0 + y) * np.log(2.0 + np.exp(eta))), rtol=1e-12)
    h = 1e-6
    for k in range(2):
        e = np.eye(2)[k] * h
        assert np.isclose(g_item[k], (value(a_item + e, a_store, b)[0] - value(a_item - e, a_store, b)[0]) / (2 * h),
                          rtol=1e-6)
        assert np.isclose(g_store[k], (value(a_item, a_store + e, b)[0] - value(a_item, a_store - e, b)[0]) / (2 * h),
                          rtol=1e-6)
    e = np.zeros_like(b)
    e[1, 3] = h
    assert np.isclose(g_b[1, 3], (value(a_item, a_store, b + e)[0] - value(a_item, a_store, b - e)[0]) / (2 * h), rtol=1e-6)


def test_seeds_case_targets_every_fit_and_reads_escalated_diagnostics(tmp_path):
    """benchmarks/seeds.py: one diagnostics.json per level and per bottom model of each bundled analysis; an
    escalated fit reads as passing after 2 attempts with its first attempt's divergences; one that did not
    run is listed as such, and the summary counts it against the total."""
    import yaml

    from benchmarks import seeds

    names = {p.stem for p in seeds.bundled()}
    assert {"grouped", "retail_demand", "radon", "eight_schools"} <= names
    retail = yaml.safe_load((ROOT / "config/analyses/retail_demand.yaml").read_text())
    targets = seeds.fit_targets(retail, tmp_path)
    assert set(targets) == {*retail["levels"], "bottom"}
    assert targets["bottom"] == tmp_path / "retail_demand" / "bottom" / "diagnostics.json"
    assert targets["store"] == tmp_path / "retail_demand" / "fits" / "store" / "diagnostics.json"

    escalated = {"passed": True, "seconds": 12.0,
                 "attempts": [{"passed": False, "failures": ["divergent transitions 7 > 0"]}, {"passed": True}],
                 "checks": [{"name": "divergences", "label": "divergent transitions", "value": 0, "passed": True},
                            {"name": "r_hat", "label": "max R-hat", "value": 1.004, "passed": True},
                            {"name": "ess_bulk", "label": "min bulk ESS", "value": 812.0, "passed": True}]}
    r = seeds.row("retail_demand", "store", 3, escalated)
    assert (r["passed"], r["first_passed"], r["attempts"], r["divergences_first"], r["divergences"]) == (
        True, False, 2, 7, 0)
    table = seeds.lines({"seeds": [3], "rows": [r, seeds.row("radon", "county", 3, None)], "workflow_s": {3: 60.0}})
    assert "| retail_demand | store | 3 | yes | 2 | 7 -> 0 | 1.004 | 812 | 12 | - |" in table
    assert "| radon | county | 3 | did not run | | | | | | |" in table
    assert any("1 of 2 after escalation, 0 at the first attempt" in line for line in table)


def test_the_largest_rhat_of_many_well_mixed_parameters_exceeds_the_threshold_by_chance():
    """benchmarks.rhat_max: 200 independent parameters whose chains mix perfectly (iid draws), 2 chains of
    100: the largest R-hat exceeds 1.01; one parameter with 4 chains of 4,000 does not."""
    from benchmarks.rhat_max import table

    many = table(200, [2], [100], rho=0.0, repetitions=1)[0]
    one = table(1, [4], [4000], rho=0.0, repetitions=3)[0]
    assert many["share_above"] == 1.0 and many["median_largest_rhat"] > 1.015
    assert 150 < many["median_ess"] < 250  # iid: about chains x draws
    assert one["share_above"] == 0.0 and one["median_ess"] > 10000


def test_samplers_benchmark_takes_every_kth_series_and_tabulates_each_way_against_the_default(tmp_path):
    """benchmarks/samplers.py: the subset is every k-th series of the sorted long table (all its days), and the
    table gives each way's ESS/s as a ratio to hbm's default, its failures, and a way that crashed as failed."""
    from benchmarks import samplers
    from benchmarks.gradient import m5_design

    _tiny_m5(tmp_path)
    prepare(tmp_path / "sales.parquet", m5_dir=tmp_path)
    whole, _ = m5_design(tmp_path / "sales.parquet")
    data, _ = m5_design(tmp_path / "sales.parquet", every=2)
    assert len(whole.series) == 4 and data.y.size == 6
    pairs = pd.read_parquet(tmp_path / "sales.parquet")[["item_id", "store_id"]].drop_duplicates()
    assert sorted(data.series) == sorted(f"{i} | {s}" for i, s in pairs.iloc[::2].itertuples(index=False))
    run = {"rows": 28476, "series": 1017, "target_accept": 0.99, "chains": 2, "tune": 1000, "draws": 1000,
           "wall_s": 100.0, "sampling_s": 80.0, "gradients_per_draw": 63.0, "min_bulk_ess": 100.0,
           "min_tail_ess": 150.0, "max_rhat": 1.016, "divergences": 0, "passed": False,
           "failures": ["max R-hat 1.016 (a) > 1.01"], "ess_per_s": 1.0, "max_rss_mb": 900.0}
    runs = {"nutpie": run, "numpyro": {**run, "ess_per_s": 0.5, "passed": True, "failures": []},
            "nutpie_jax": {"who": "nutpie_jax", "error": "Traceback\nRuntimeError: no jax\n"},
            "pymc_defaults": {k: v for k, v in run.items() if k != "max_rss_mb"}}
    lines = samplers.lines({"every": 30, "seed": 11, "runs": runs})
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and "---" not in line}
    assert "1,017 series, 28,476 rows" in lines[0]
    assert "| **1.00** |" in rows[samplers.LABELS["nutpie"]] and "failed: max R-hat 1.016 (a) > 1.01" in rows[samplers.LABELS["nutpie"]]
    assert "| passed | 0.50 | **0.50** | 900 |" in rows[samplers.LABELS["numpyro"]]
    assert "failed: RuntimeError: no jax" in rows[samplers.LABELS["nutpie_jax"]]
    assert rows[samplers.LABELS["pymc_defaults"]].endswith("| 1.00 | **1.00** | not recorded |")  # no peak measured
    assert len(rows) == 1 + 4  # the header and every way, none lost
    header = next(line for line in lines if line.startswith("| way"))
    assert all(r.count("|") == header.count("|") for r in rows.values())


def test_samplers_benchmark_gives_medians_over_seeds_and_the_ratio_of_medians():
    """The ways run at further seeds: ESS/s per seed, the median, the ratio of medians to the default's, and how
    many runs passed; a crashed run counts as failed and is left out of the median."""
    from benchmarks import samplers

    def run(ess, passed=False, attempts=1):
        return {"ess_per_s": ess, "passed": passed, "attempts": attempts}

    m = {"every": 30, "seed": 11,
         "runs": {"nutpie": run(1.0), "numpyro": run(3.0), "hbm_ladder": run(2.0, True, 2), "nutpie_jax": run(9.0)},
         "repeats": {"12": {"nutpie": run(2.0, True), "numpyro": {"error": "boom"}, "hbm_ladder": run(4.0, True, 2)},
                     "13": {"nutpie": run(4.0), "numpyro": run(2.0), "hbm_ladder": run(1.0, True, 3)}}}
    lines = samplers.repeat_lines(m)
    rows = {line.split(" | ")[0][2:]: line for line in lines if line.startswith("| ") and "---" not in line}
    assert "seeds 11, 12, 13" in lines[0]
    assert rows[samplers.LABELS["nutpie"]].endswith("| 1.00, 2.00, 4.00 | 2.00 | **1.00** | 1 of 3 |  |")
    assert rows[samplers.LABELS["numpyro"]].endswith("| 3.00, failed, 2.00 | 2.50 | **1.25** | 0 of 3 |  |")
    assert rows[samplers.LABELS["hbm_ladder"]].endswith("| 2.00, 4.00, 1.00 | 2.00 | **1.00** | 3 of 3 | 2, 2, 3 |")
    assert samplers.LABELS["nutpie_jax"] not in rows  # one seed only: in the main table alone
    assert samplers.repeat_lines({**m, "repeats": {}}) == []


def test_gpu_progress_reads_where_a_stopped_stage_got_to_from_numpyros_bar():
    from benchmarks.gpu import progress

    log = "built 30,490 series\n" + "".join(
        f"warmup:   1%|          | {n}/2000 [{t // 60:02d}:{t % 60:02d}<2:00:00,  4.00s/it]"
        for n, t in [(9, 23), (10, 27), (20, 107), (30, 187), (31, 191)])
    p = progress(log)
    # from the newest point at least 10 iterations back: (191 - 107) s / (31 - 20)
    assert p == {"phase": "warmup", "iterations": 31, "of": 2000, "elapsed_s": 191,
                 "s_per_iteration_last_10": pytest.approx(84 / 11)}
    assert progress("Traceback: no bar") is None


def test_gpu_section_shows_the_kept_runs_and_the_cpu_rows_of_the_same_model():
    from benchmarks.gpu import RECORD, lines

    rec = json.loads(RECORD.read_text())
    text = "\n".join(lines(rec))
    small = next(r for r in rec["runs"] if r["every"] == 30)
    ratio = small["ess_per_s"] / rec["cpu"]["numpyro"]["ess_per_s"]
    row = next(line for line in text.splitlines() if "| GPU, NumPyro | 2 x" in line)
    assert f"**{ratio:.2f}**" in row and f"| {small['min_bulk_ess']:.0f} |" in row
    assert "stopped after 330 s: warmup iteration 47 of 2,000" in text
    assert text.count("| CPU (2 cores)") == 2
