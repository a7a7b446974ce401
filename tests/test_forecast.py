"""Forecast bookkeeping with known answers: future rows, holdout scores against the seasonal naive, coherence."""

import numpy as np
import pandas as pd
import pytest

from hbm.aggregate import HOLDOUT
from hbm.forecast import coherence, future_rows, holdout_scores, season_length
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


def test_future_rows_use_usual_price_and_no_promotion():
    df = table(periods=8, holdout=0)
    df.loc[df["store"] == "s1", "price"] = np.tile([1.0, 4.0], 4)
    rows = future_rows(df, df, retail_spec(), horizon=3)
    assert rows[PERIOD].tolist() == [8, 9, 10] * 2 and rows["week"].tolist() == ["8", "9", "10"] * 2
    assert rows.loc[rows["store"] == "s1", "price"].tolist() == pytest.approx([2.0] * 3)  # geometric mean of 1, 4
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
    assert c["total"] == [{"period": "p1", "kind": "future", "store": 6.0, "region": 9.0},
                          {"period": "p2", "kind": "future", "store": 15.0, "region": 15.0}]
    (pair,) = c["by_parent"]
    # r1: (1+2)/3 = 1 and (4+5)/9 = 1; r2: 3/6 = 0.5 and 6/6 = 1
    assert (pair["child"], pair["parent"], pair["pairs"]) == ("store", "region", 4)
    assert (pair["ratio_min"], pair["ratio_median"], pair["ratio_max"]) == (0.5, 1.0, 1.0)
