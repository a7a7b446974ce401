import numpy as np
import pandas as pd
import pytest

from hbm import simulate
from hbm.aggregate import HOLDOUT, ROWS, aggregate, fit_rows, level_table
from hbm.config import level_spec, validate_analysis
from hbm.errors import HbmError
from hbm.ingest import PERIOD, ingest, read_observations

from conftest import load_config


@pytest.fixture(scope="module")
def retail(tmp_path_factory):
    """A small simulated retail instance, ingested, with its analysis config."""
    tmp = tmp_path_factory.mktemp("retail")
    df, _ = simulate.retail({**simulate.RETAIL_TRUTH, "regions": 2, "stores": 3, "products": 6, "categories": 2,
                             "weeks": 30})
    raw = tmp / "sales.csv"
    df.to_csv(raw, index=False)
    cfg = load_config("retail_demand")
    cfg["data"]["path"] = str(raw)
    cfg = validate_analysis(cfg, "retail_demand.yaml")
    obs = tmp / "observations.parquet"
    ingest(raw, obs, tmp / "summary.json", cfg["columns"], cfg["levels"], family=cfg["model"]["family"])
    return df, cfg, obs, tmp


@pytest.mark.parametrize("level, column", [("product", "product"), ("store", "store"), ("region", "region")])
def test_sums_are_preserved_per_unit_and_period(retail, level, column):
    df, cfg, obs, _ = retail
    table = level_table(read_observations(obs), level_spec(cfg, level))
    expected = df.groupby([column, "week"])["units"].sum()
    got = table.set_index([column, "week"])["units"]
    got.index = got.index.set_levels(got.index.levels[1].strftime("%Y-%m-%d"), level=1)
    assert len(table) == df[column].nunique() * df["week"].nunique()
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index().astype("float64"), check_names=False)
    assert table["units"].sum() == df["units"].sum()
    assert table[ROWS].sum() == len(df)


def test_price_is_weighted_by_units_and_promotion_is_a_share(retail):
    df, cfg, obs, _ = retail
    table = level_table(read_observations(obs), level_spec(cfg, "store")).set_index(["store", PERIOD])
    week0 = df.loc[df["week"] == df["week"].min()]
    for store, rows in week0.groupby("store"):
        w = rows["units"].to_numpy()
        expected = (rows["price"] * w).sum() / w.sum() if w.sum() > 0 else rows["price"].mean()
        assert table.loc[(store, 0), "price"] == pytest.approx(expected)
        assert table.loc[(store, 0), "promo"] == pytest.approx(rows["promo"].mean())


def test_parents_follow_their_units(retail):
    df, cfg, obs, _ = retail
    table = level_table(read_observations(obs), level_spec(cfg, "product"))
    truth = df.drop_duplicates("product").set_index("product")["category"]
    assert (table["category"].to_numpy() == truth.reindex(table["product"]).to_numpy()).all()


def test_holdout_marks_the_last_periods(retail):
    _, cfg, obs, tmp = retail
    table = aggregate(obs, tmp / "levels" / "region.parquet", spec=level_spec(cfg, "region"), holdout=4)
    assert sorted(table.loc[table[HOLDOUT], PERIOD].unique()) == [26, 27, 28, 29]
    back = read_observations(tmp / "levels" / "region.parquet")
    assert back.attrs["time_grid"] == {"kind": "days", "origin": "2024-01-01", "step": 7}
    assert fit_rows(back)[PERIOD].max() == 25


def test_holdout_of_everything_is_an_error(retail):
    _, cfg, obs, tmp = retail
    with pytest.raises(HbmError, match=r"forecast.holdout.*leaves no data to fit.*30 periods"):
        aggregate(obs, tmp / "x" / "region.parquet", spec=level_spec(cfg, "region"), holdout=30)
    assert not (tmp / "x" / "region.parquet").exists()


def test_normal_family_keeps_every_row(tmp_path):
    raw = tmp_path / "g.csv"
    raw.write_text("group,y\na,1\na,2\nb,3\n")
    cfg = validate_analysis({"name": "g", "data": {"path": str(raw)}, "columns": {"target": "y"},
                             "levels": {"group": {"column": "group"}}}, "g.yaml")
    ingest(raw, tmp_path / "o.parquet", tmp_path / "s.json", cfg["columns"], cfg["levels"])
    table = level_table(read_observations(tmp_path / "o.parquet"), level_spec(cfg, "group"))
    assert table["y"].tolist() == [1.0, 2.0, 3.0] and HOLDOUT not in table
    assert np.array_equal(table["_row"], [1, 2, 3])


def test_a_level_with_a_single_group_stops_with_what_to_change(tmp_path):
    """One group cannot inform the sd between groups (measured: 15 divergences in 4000 draws); stop instead."""
    raw = tmp_path / "g.csv"
    raw.write_text("group,y\na,1\na,2\na,3\n")
    cfg = validate_analysis({"name": "g", "data": {"path": str(raw)}, "columns": {"target": "y"},
                             "levels": {"group": {"column": "group"}}}, "g.yaml")
    ingest(raw, tmp_path / "o.parquet", tmp_path / "s.json", cfg["columns"], cfg["levels"])
    with pytest.raises(HbmError, match=r"o.parquet, column 'group': level 'group' has a single group \('a'\); "
                                       r"partial pooling needs at least two groups .* Add data of more groups"):
        aggregate(tmp_path / "o.parquet", tmp_path / "levels" / "group.parquet", spec=level_spec(cfg, "group"))
    assert not (tmp_path / "levels").exists() or not any((tmp_path / "levels").iterdir())


def late_launch(tmp_path, **columns):
    """Monthly units of two skus at two agencies; a2 sells nothing before April (a launch, not zero demand)."""
    months = pd.date_range("2024-01-01", periods=8, freq="MS").strftime("%Y-%m-%d")
    rows = [{"month": m, "agency": a, "sku": k, "units": 0 if (a == "a2" and i < 3) else 10 * (k == "k1") + i + 1,
             "price": 0.0 if (a == "a2" and i < 3) else 2.0}
            for i, m in enumerate(months) for a in ("a1", "a2") for k in ("k1", "k2")]
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "sales.csv", index=False)
    cfg = validate_analysis({"name": "late", "data": {"path": str(tmp_path / "sales.csv")},
                             "columns": {"target": "units", "time": "month", "price": "price", **columns},
                             "levels": {"agency": {"column": "agency"}, "sku": {"column": "sku"}},
                             "model": {"family": "negative_binomial"}, "forecast": {"holdout": 2}}, "late.yaml")
    ingest(tmp_path / "sales.csv", tmp_path / "obs.parquet", tmp_path / "s.json", cfg["columns"], cfg["levels"],
           family="negative_binomial")
    tables = {lv: aggregate(tmp_path / "obs.parquet", tmp_path / "levels" / f"{lv}.parquet",
                            spec=level_spec(cfg, lv), holdout=2) for lv in ("agency", "sku")}
    return df, tables


def test_a_late_starting_series_enters_its_levels_at_its_first_sale_and_keeps_its_holdout(tmp_path):
    df, tables = late_launch(tmp_path)
    agency = tables["agency"]
    a2 = agency.loc[agency["agency"] == "a2"]
    assert a2[PERIOD].tolist() == [3, 4, 5, 6, 7]  # no zero months before its launch
    assert a2.loc[a2[HOLDOUT], PERIOD].tolist() == [6, 7]  # still held out and scored
    assert sorted(agency.loc[agency[HOLDOUT], PERIOD].unique()) == [6, 7]
    sku = tables["sku"].set_index(["sku", PERIOD])
    assert sku.loc[("k1", 0), ROWS] == 1 and sku.loc[("k1", 3), ROWS] == 2  # a2's rows count from April
    for t in tables.values():  # the dropped rows were zeros: every total is kept
        assert t["units"].sum() == df["units"].sum()
        assert (t["price"] == 2.0).all()


def test_series_start_data_keeps_the_zeros_before_a_launch(tmp_path):
    df, tables = late_launch(tmp_path, series_start="data")
    a2 = tables["agency"].loc[tables["agency"]["agency"] == "a2"]
    assert a2[PERIOD].tolist() == list(range(8)) and a2["units"].iloc[:3].tolist() == [0, 0, 0]
    assert (a2["price"] == 2.0).all()  # its zero prices (no sales) filled from April's


def test_mix_of_prices_and_promotions_within_a_summed_unit_period(tmp_path):
    """Chain-wide prices: nothing to warn about; store-varying prices and promotions (project issue 21): the
    product level's elasticity describes a mix, measured as the sd of log price within a product-week."""
    from hbm.aggregate import aggregate, mix
    from hbm.posterior_check import table_mix

    small = {**simulate.RETAIL_TRUTH, "regions": 2, "stores": 4, "products": 5, "categories": 2, "weeks": 30}
    found = {}
    for by_store in (False, True):
        df, _ = simulate.retail({**small, "by_store": by_store})
        df[PERIOD] = df["week"].rank(method="dense").astype(int) - 1
        keys = [df["product"], df[PERIOD]]
        found[by_store] = mix(df, keys, {"price": "price", "promotion": "promo"})
        log_sd = np.log(df["price"]).groupby(keys).std(ddof=0)
        assert found[by_store]["price"]["log_price_sd_median"] == pytest.approx(float(log_sd.median()))
    assert not found[False]["material"] and found[False]["price"]["log_price_sd_median"] == 0
    assert found[False]["promotion"]["share_varying"] == 0
    assert found[True]["material"] and found[True]["price"]["log_price_sd_median"] > 0.02
    assert found[True]["promotion"]["share_varying"] > 0.3
    # written with the level's table and read back by the posterior check (for the report's warning)
    raw = tmp_path / "sales.csv"
    df.drop(columns=[PERIOD]).to_csv(raw, index=False)
    cfg = validate_analysis({**load_config("retail_demand"), "data": {"path": str(raw)}}, "r.yaml")
    ingest(raw, tmp_path / "obs.parquet", tmp_path / "s.json", cfg["columns"], cfg["levels"],
           family=cfg["model"]["family"])
    aggregate(tmp_path / "obs.parquet", tmp_path / "product.parquet", spec=level_spec(cfg, "product"))
    assert table_mix(tmp_path / "product.parquet")["material"] is True
