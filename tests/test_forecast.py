"""Forecast bookkeeping with known answers: future rows, holdout scores against the seasonal naive, coherence."""

import numpy as np
import pandas as pd
import pytest

from hbm.aggregate import HOLDOUT
from hbm.forecast import coherence, forecast, future_rows, holdout_scores, season_length
from hbm.ingest import PERIOD

from conftest import make_spec


def retail_spec(season=4.0):
    s = make_spec(level="store", column="store", target="units", parents=["region"])
    s["columns"].update(time="week", price="price", promotion="promo", series=None)
    s["model"].update(family="negative_binomial", trend=None, seasonality={"period": season, "order": 1})
    return s


def table(periods=12, holdout=4):
    """Two stores with a season of 4 periods: a periodic pattern plus a level per store."""
    pattern = np.array([10.0, 20, 30, 40])
    rows = []
    for store, level in (("s1", 0.0), ("s2", 100.0)):
        for t in range(periods):
            rows.append({"store": store, "region": "r1", PERIOD: t, "week": f"w{t}", "units": level + pattern[t % 4],
                         "price": 2.0, "promo": 0.0})
    df = pd.DataFrame(rows)
    df[HOLDOUT] = df[PERIOD] >= periods - holdout
    df.attrs["time_grid"] = {"kind": "integer", "origin": 0, "step": 1}
    return df


def frame_and_draws(df, spread=0.0):
    held = df.loc[df[HOLDOUT]].assign(kind="holdout").reset_index(drop=True)
    y = held["units"].to_numpy()
    draws = np.stack([y + spread * z for z in np.linspace(-1, 1, 201)])  # symmetric around the truth
    return held, draws


def test_season_length():
    assert season_length(retail_spec(52.18)) == 52
    s = retail_spec()
    s["model"]["seasonality"] = None
    assert season_length(s) == 1


def test_seasonal_naive_is_exact_on_a_periodic_series_and_the_model_is_scored():
    df = table()
    frame, draws = frame_and_draws(df, spread=2.0)
    h = holdout_scores(df, df.loc[~df[HOLDOUT]], frame, draws, retail_spec())
    assert h["periods"] == 4 and h["observations"] == 8 and h["season_length"] == 4
    assert h["seasonal_naive"]["mae"] == 0  # the pattern repeats exactly (MASE: scale 0, undefined)
    assert h["model"]["mae"] == pytest.approx(0, abs=1e-12)  # the median of symmetric draws is the truth
    # CRPS of a uniform predictive on [y - 2, y + 2] at its centre: E|X - y| - E|X - X'| / 2 = 1 - 2/3
    assert h["model"]["crps"] == pytest.approx(1 - 2 / 3, rel=0.02)
    assert h["model"]["coverage_90"] == 1.0
    assert h["crps_ratio"] is None  # the naive forecast is perfect: no ratio


def test_seasonal_naive_alignment_and_mase_on_a_shifted_holdout():
    df = table()
    df.loc[df[HOLDOUT], "units"] += 5.0  # the held-out periods are 5 higher than one season before
    frame, draws = frame_and_draws(df)
    h = holdout_scores(df, df.loc[~df[HOLDOUT]], frame, draws, retail_spec())
    assert h["seasonal_naive"]["mae"] == pytest.approx(5.0)
    # in-sample seasonal differences are all 0, so the MASE scale is 0 and MASE undefined (not 0 or inf)
    assert h["seasonal_naive"]["mase"] is None and h["model"]["mase"] is None
    assert h["model"]["crps"] == pytest.approx(0.0) and h["crps_ratio"] == pytest.approx(0.0)


def test_mase_uses_only_the_units_own_history():
    df = table(periods=40, holdout=4)
    late = (df["store"] == "s2") & (df[PERIOD] < 30)
    df = df.loc[~late].reset_index(drop=True)  # s2 opened at period 30: 6 fitted periods, shorter than 2 seasons
    rng = np.random.default_rng(0)
    df["units"] += rng.integers(0, 5, len(df))
    frame, draws = frame_and_draws(df)
    h = holdout_scores(df, df.loc[~df[HOLDOUT]], frame, draws, retail_spec())
    per_unit = {r["unit"]: r for r in h["per_unit"]}
    assert np.isfinite(per_unit["s2"]["mase_naive"])  # not NaN from padding before the store opened


def test_future_rows_use_the_recent_price_and_no_promotion():
    """After the data: each unit's geometric mean price over its last 3 fitted periods (a price that drifted
    is not forecast back to its old level), no promotion."""
    df = table(periods=8, holdout=0)
    df.loc[df["store"] == "s1", "price"] = [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0]
    rows = future_rows(df, df, retail_spec(), horizon=3)
    assert rows[PERIOD].tolist() == [8, 9, 10] * 2 and rows["week"].tolist() == ["8", "9", "10"] * 2
    assert rows.loc[rows["store"] == "s1", "price"].tolist() == pytest.approx([4.0] * 3)  # geometric mean of 2, 4, 8
    assert (rows["promo"] == 0).all() and (rows["region"] == "r1").all()
    assert future_rows(df, df, retail_spec(), horizon=0).empty


def test_coherence_of_hand_made_forecasts(tmp_path):
    store = pd.DataFrame({"unit": ["s1", "s2", "s3"] * 2, "region": ["r1", "r1", "r2"] * 2,
                          "period": ["p1"] * 3 + ["p2"] * 3, "kind": "future", "mean": [1.0, 2, 3, 4, 5, 6]})
    region = pd.DataFrame({"unit": ["r1", "r2"] * 2, "period": ["p1", "p1", "p2", "p2"], "kind": "future",
                           "mean": [3.0, 6.0, 9.0, 6.0]})
    store.to_parquet(tmp_path / "store.parquet")
    region.to_parquet(tmp_path / "region.parquet")
    specs = {"store": make_spec(level="store", column="store", parents=["region"]),
             "region": make_spec(level="region", column="region")}
    c = coherence({"store": tmp_path / "store.parquet", "region": tmp_path / "region.parquet"}, specs)
    assert c["reference"] == "region"
    assert c["total"] == [{"period": "p1", "kind": "future", "observed": None, "store": 6.0, "region": 9.0},
                          {"period": "p2", "kind": "future", "observed": None, "store": 15.0, "region": 15.0}]
    (pair,) = c["by_parent"]
    # r1: (1+2)/3 = 1 and (4+5)/9 = 1; r2: 3/6 = 0.5 and 6/6 = 1
    assert (pair["child"], pair["parent"], pair["pairs"]) == ("store", "region", 4)
    assert (pair["ratio_min"], pair["ratio_median"], pair["ratio_max"]) == (0.5, 1.0, 1.0)


def test_coherence_shows_the_observed_total_of_each_held_out_period(tmp_path):
    """The observed total is the reference level's sum of held-out observations; periods after the data have none."""
    kind = ["holdout"] * 4 + ["future"] * 2
    store = pd.DataFrame({"unit": ["s1", "s2"] * 3, "region": ["r1", "r1"] * 3, "period": ["2024-05"] * 2
                          + ["2024-06"] * 2 + ["2024-07"] * 2, "kind": kind,
                          "observed": [1.0, 2.0, 3.0, np.nan, np.nan, np.nan], "mean": [1.0, 1, 2, 2, 3, 3]})
    region = pd.DataFrame({"unit": ["r1"] * 3, "period": ["2024-05", "2024-06", "2024-07"], "kind": kind[::2],
                           "observed": [3.0, 3.0, np.nan], "mean": [2.5, 4.5, 5.0]})
    store.to_parquet(tmp_path / "store.parquet")
    region.to_parquet(tmp_path / "region.parquet")
    specs = {"store": make_spec(level="store", column="store", parents=["region"]),
             "region": make_spec(level="region", column="region")}
    c = coherence({"store": tmp_path / "store.parquet", "region": tmp_path / "region.parquet"}, specs)
    assert [(r["period"], r["kind"], r["observed"]) for r in c["total"]] == [
        ("2024-05", "holdout", 3.0), ("2024-06", "holdout", 3.0), ("2024-07", "future", None)]
    assert [r["store"] for r in c["total"]] == [2.0, 4.0, 6.0]


def test_a_series_that_starts_late_is_forecast_for_its_held_out_periods_with_dated_periods(tmp_path):
    """s3 sold nothing until July: its zeros before are dropped, yet it is forecast for the held-out months and
    after the data, and every period is labelled as a month (posterior: prior draws; no sampler is run)."""
    import json

    import pymc as pm
    import xarray as xr

    from hbm.aggregate import aggregate, fit_rows
    from hbm.config import level_spec, validate_analysis
    from hbm.ingest import ingest, read_observations
    from hbm.io import write_json, write_netcdf
    from hbm.models import build_model, level_data, resolve_priors

    months = pd.date_range("2024-01-01", periods=12, freq="MS").strftime("%Y-%m-%d")
    rows = [{"month": m, "store": s, "units": 0 if i < start else 5 + i % 3, "price": 0 if i < start else 2.0}
            for s, start in (("s1", 0), ("s2", 0), ("s3", 6)) for i, m in enumerate(months)]
    pd.DataFrame(rows).to_csv(tmp_path / "sales.csv", index=False)
    cfg = validate_analysis({"name": "late", "data": {"path": str(tmp_path / "sales.csv")},
                             "columns": {"target": "units", "time": "month", "price": "price"},
                             "levels": {"store": {"column": "store"}}, "model": {"family": "poisson"},
                             "forecast": {"holdout": 3, "horizon": 2}}, "late.yaml")
    summary = ingest(tmp_path / "sales.csv", tmp_path / "obs.parquet", tmp_path / "summary.json", cfg["columns"],
                     cfg["levels"], family="poisson")
    assert summary["series_window"]["leading_zero_periods"] == 6
    spec = level_spec(cfg, "store")
    aggregate(tmp_path / "obs.parquet", tmp_path / "store.parquet", spec=spec, holdout=3)
    train = level_data(fit_rows(read_observations(tmp_path / "store.parquet")), spec)
    prior = pm.sample_prior_predictive(draws=20, model=build_model(train, spec, resolve_priors(spec, train)),
                                       random_seed=1)
    write_netcdf(xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()}), tmp_path / "posterior.nc")
    write_json({"passed": True}, tmp_path / "diagnostics.json")
    forecast(tmp_path / "store.parquet", tmp_path / "posterior.nc", tmp_path / "diagnostics.json",
             tmp_path / "f.parquet", tmp_path / "f.json", tmp_path / "f.png", spec=spec, horizon=2, plot_units=3,
             on_failure="flag", seed=1)
    f = pd.read_parquet(tmp_path / "f.parquet")
    late = f.loc[f["unit"] == "s3"]
    assert late["period"].tolist() == ["2024-10", "2024-11", "2024-12", "2025-01", "2025-02"]
    assert late["kind"].tolist() == ["holdout"] * 3 + ["future"] * 2
    assert late["observed"].iloc[:3].tolist() == [5.0, 6.0, 7.0] and np.isfinite(late["mean"]).all()
    assert sorted(f["period"].unique()) == ["2024-10", "2024-11", "2024-12", "2025-01", "2025-02"]
    assert json.loads((tmp_path / "f.json").read_text())["units"] == 3
    assert (tmp_path / "f.png").stat().st_size > 0
