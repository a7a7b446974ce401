import json

import numpy as np
import pandas as pd
import pytest

from hbm import simulate

from conftest import ROOT


def test_bundled_files_are_reproduced_byte_for_byte(tmp_path):
    for name, (_, filename) in simulate.SIMULATORS.items():
        data, truth = simulate.write(name, tmp_path / name)
        assert data.read_bytes() == (ROOT / "data" / name / filename).read_bytes(), name
        assert truth.read_bytes() == (ROOT / "data" / name / "true_values.json").read_bytes(), name


def test_grouped_matches_its_description():
    df = pd.read_csv(ROOT / "data/grouped/grouped.csv")
    assert df.groupby("group").size().tolist() == [20, 40, 60]
    means = df.groupby("group")["y"].mean().to_numpy()
    assert np.all(np.abs(means - [3, 5, 7]) < 3 * np.array([1, 2, 3]) / np.sqrt([20, 40, 60]))


def test_schools_truth_is_consistent_with_data():
    truth = json.loads((ROOT / "data/schools/true_values.json").read_text())
    df = pd.read_csv(ROOT / "data/schools/scores.csv")
    sizes = df.groupby("school").size()
    assert sizes.tolist() == truth["students"]
    assert sizes.min() >= truth["students_min"] and sizes.max() <= truth["students_max"]
    means = df.groupby("school")["score"].mean().to_numpy()
    se = np.array(truth["school_sds"]) / np.sqrt(sizes.to_numpy())
    assert np.all(np.abs(means - truth["school_means"]) < 4 * se)


def _retail_product_weeks(df):
    """Units summed over stores per (product, week), as (P, W) arrays; price and promo are chain-wide."""
    pw = df.groupby(["product", "week"], sort=True).agg(units=("units", "sum"), price=("price", "first"),
                                                        promo=("promo", "first"))
    P, W = df["product"].nunique(), df["week"].nunique()
    return tuple(pw[c].to_numpy().reshape(P, W) for c in ("units", "price", "promo"))


def test_retail_bundled_file_has_documented_sizes_and_structure():
    df = pd.read_csv(ROOT / "data/retail_demand/sales.csv")
    truth = json.loads((ROOT / "data/retail_demand/true_values.json").read_text())
    assert list(df.columns) == ["week", "region", "store", "category", "product", "price", "promo", "units"]
    assert len(df) == 104 * 8 * 30 == 24_960
    assert (df["region"].nunique(), df["store"].nunique(), df["category"].nunique(), df["product"].nunique()) \
        == (3, 8, 3, 30)
    weeks = pd.to_datetime(df["week"].unique(), format="%Y-%m-%d")
    assert len(weeks) == 104 and weeks[0] == pd.Timestamp(truth["start"]) and (weeks.day_of_week == 0).all()
    assert (np.diff(weeks.values) == np.timedelta64(7, "D")).all()
    assert df.groupby("product")["category"].nunique().eq(1).all()
    assert df.groupby("store")["region"].nunique().eq(1).all()
    assert df.groupby("region")["store"].nunique().min() >= 2
    assert dict(zip(truth["product_names"], truth["product_category"])) \
        == df.drop_duplicates("product").set_index("product")["category"].to_dict()
    assert dict(zip(truth["store_names"], truth["store_region"])) \
        == df.drop_duplicates("store").set_index("store")["region"].to_dict()
    assert df.groupby(["week", "store", "product"]).size().eq(1).all()
    assert df.equals(df.sort_values(["week", "store", "product"], ignore_index=True))
    assert df["units"].dtype.kind == "i" and (df["units"] >= 0).all()
    assert set(df["promo"].unique()) <= {0, 1} and df["promo"].dtype.kind == "i"
    assert (df["price"] >= 0.01).all()
    # each store sets its own prices and promotions (by_store): they differ between stores in most product-weeks
    assert truth["by_store"] is True
    assert (df.groupby(["week", "product"])[["price", "promo"]].nunique() > 1).mean().min() > 0.3


def test_retail_data_agree_with_the_true_values():
    """The simulator's formulas, checked on its chain-wide variant (the bundled data differ only in drawing
    prices and promotions per store; the bottom model's recovery test fits that variant)."""
    df, truth = simulate.retail({**simulate.RETAIL_TRUTH, "by_store": False})
    units, price, promo = _retail_product_weeks(df)
    P, W = units.shape
    # 30 x 104 = 3,120 Bernoulli(0.12) product-weeks: sd of the share is 0.0058; allow 4 sd.
    assert abs(promo.mean() - truth["promo_prob"]) < 4 * np.sqrt(0.12 * 0.88 / promo.size)
    # Per product, least squares of log(units summed over stores + 0.5) on the generative model's product-level
    # terms: intercept, u_t, the yearly Fourier features, log(price / ref_price) and promo. Summing over stores keeps
    # the trend, price and promotion terms exact (they are shared by all stores); the +0.5 and the log of a
    # negative binomial sum (mean ~100 units, CV ~0.15) bias the coefficients by well under 0.02.
    t = np.arange(W)
    u = (t - (W - 1) / 2) / truth["period"]
    a = 2 * np.pi * t / truth["period"]
    F = np.column_stack([np.sin(a), np.cos(a), np.sin(2 * a), np.cos(2 * a)])
    coef = np.array([
        np.linalg.lstsq(np.column_stack([np.ones(W), u, F, np.log(price[p] / truth["ref_price"][p]), promo[p]]),
                        np.log(units[p] + 0.5), rcond=None)[0]
        for p in range(P)])
    # Slopes: per-product se ~0.05 against a spread of true trends of sd 0.16, so the correlation is ~0.95;
    # 0.8 fails if the trends were not the ones the data came from (then it would be ~0 +- 0.18).
    assert np.corrcoef(coef[:, 1], truth["trend"])[0, 1] > 0.8
    # Promotion: per-product se ~0.05, so the mean over 30 products has se ~0.01; allow 0.05.
    assert abs(coef[:, 7].mean() - truth["promo_lift"]) < 0.05
    # Elasticity: the price ratio moves rarely (sd 0.1, ~8 jumps per product), per-product se ~0.4, mean se ~0.07.
    assert abs(coef[:, 6].mean() - truth["elasticity"]) < 0.3
    # Season: stores share season_mu and differ by sd 0.08, so the summed series carries about season_mu.
    assert np.all(np.abs(coef[:, 2:6].mean(axis=0) - truth["season_mu"]) < 0.1)


def test_retail_small_instance_honours_overridden_sizes():
    truth = {**simulate.RETAIL_TRUTH, "regions": 2, "stores": 3, "products": 6, "categories": 2, "weeks": 78}
    df, values = simulate.retail(truth)
    assert len(df) == 78 * 3 * 6
    assert (df["region"].nunique(), df["store"].nunique(), df["category"].nunique(), df["product"].nunique(),
            df["week"].nunique()) == (2, 3, 2, 6, 78)
    assert values["store_region"] == ["region_1", "region_2", "region_1"]
    assert values["product_category"] == ["cat_1", "cat_2"] * 3
    assert np.array(values["season"]).shape == (3, 4) and len(values["trend"]) == 6 and len(values["ref_price"]) == 6
    assert json.loads(json.dumps(values)) == values  # JSON-ready
    assert simulate.RETAIL_TRUTH["stores"] == 8  # the default is not modified
    with pytest.raises(ValueError, match="regions <= stores"):
        simulate.retail({**simulate.RETAIL_TRUTH, "regions": 4, "stores": 3})


def test_retail_by_store_gives_each_store_its_own_prices_and_promotions():
    small = {**simulate.RETAIL_TRUTH, "regions": 2, "stores": 4, "products": 5, "categories": 2, "weeks": 40}
    chain, _ = simulate.retail({**small, "by_store": False})
    assert chain.groupby(["week", "product"])[["price", "promo"]].nunique().eq(1).all().all()
    df, values = simulate.retail({**small, "by_store": True})
    spread = df.groupby(["week", "product"])[["price", "promo"]].nunique()
    assert (spread["price"] > 1).mean() > 0.3 and (spread["promo"] > 1).mean() > 0.3
    assert values["by_store"] is True
    # each store's prices start at the product's reference price and move by its own jumps
    first = df.loc[df["week"] == df["week"].min()]
    assert (first["price"].to_numpy() == np.asarray(values["ref_price"])[first["product"].str[-2:].astype(int) - 1]).all()
