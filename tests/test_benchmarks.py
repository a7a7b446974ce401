"""The benchmarks' own pieces (never their timings): the M5 reshaping and the hand-written baselines."""

import numpy as np
import pandas as pd

from benchmarks import baselines
from benchmarks.m5 import COVARIATES, prepare


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
