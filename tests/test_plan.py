"""The forecast plan (hbm/plan.py): planned prices and promotions for the horizon, checked like the data,
turned into each unit's price shift and promotion share, and applied to the future rows."""

import numpy as np
import pandas as pd
import pytest

from hbm import simulate
from hbm.errors import DataError
from hbm.forecast import future_assumption
from hbm.ingest import PERIOD, ingest, read_observations
from hbm.plan import apply, ingest_plan

COLUMNS = {"target": "units", "time": "week", "price": "price", "promotion": "promo", "covariates": [],
           "measurement_sd": None, "series_start": "data"}
LEVELS = {"product": {"column": "product", "parents": [], "predictors": []},
          "store": {"column": "store", "parents": [], "predictors": []}}
UNITS = {"product": ["product"], "store": ["store"], "_series": ["product", "store"]}
HOLDOUT = 2


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    wd = tmp_path_factory.mktemp("plan")
    df, _ = simulate.retail({**simulate.RETAIL_TRUTH, "regions": 1, "stores": 3, "products": 4, "categories": 1,
                             "weeks": 20})
    df.to_csv(wd / "sales.csv", index=False)
    ingest(wd / "sales.csv", wd / "observations.parquet", wd / "summary.json", COLUMNS, LEVELS, family="negative_binomial")
    return wd, df


def plan(wd, text, horizon=3):
    (wd / "plan.csv").write_text(text)
    out = wd / "out" / "plan.parquet"
    return ingest_plan(wd / "plan.csv", wd / "observations.parquet", out, columns=COLUMNS, units=UNITS,
                       horizon=horizon, holdout=HOLDOUT), out


def error(wd, text, **kw) -> str:
    out = wd / "out" / "plan.parquet"
    out.unlink(missing_ok=True)
    with pytest.raises(DataError) as e:
        plan(wd, text, **kw)
    assert not out.exists(), "a refused plan must not leave output"
    return str(e.value).replace(f"{wd}/", "")


def test_a_price_cut_of_one_series_shifts_each_level_by_its_sales_share(observations):
    wd, df = observations
    fitted = df.loc[df["week"] < sorted(df["week"].unique())[-HOLDOUT]]
    usual = np.exp(np.log(fitted.loc[(fitted["product"] == "prod_01") & (fitted["store"] == "store_02"), "price"]
                          .iloc[-3:]).mean())  # over the series' last 3 fitted weeks (hbm.plan.usual_price)
    shifts, out = plan(wd, f"week,product,store,price\n2024-05-20,prod_01,store_02,{usual / 2:.6f}\n")
    assert out.exists()
    got = shifts.set_index(["column", "unit"])
    assert (shifts[PERIOD] == 20).all()  # the week after the last of 20 weeks (period 19)
    np.testing.assert_allclose(got.loc[("_series", "prod_01 | store_02"), "log_price_shift"], np.log(0.5), atol=1e-5)
    sales = fitted.groupby(["product", "store"])["units"].sum()
    share_p = sales["prod_01", "store_02"] / sales["prod_01"].sum()
    share_s = sales["prod_01", "store_02"] / sales[:, "store_02"].sum()
    np.testing.assert_allclose(got.loc[("product", "prod_01"), "log_price_shift"], share_p * np.log(0.5), atol=1e-5)
    np.testing.assert_allclose(got.loc[("store", "store_02"), "log_price_shift"], share_s * np.log(0.5), atol=1e-5)
    assert set(got.index) == {("_series", "prod_01 | store_02"), ("product", "prod_01"), ("store", "store_02")}
    assert (shifts["promotion"] == 0).all()


def test_a_product_wide_promotion_is_the_promoted_share_of_each_level(observations):
    wd, _ = observations
    shifts, _ = plan(wd, "week,product,promo\n2024-05-27,prod_03,1\n")
    got = shifts.set_index(["column", "unit"])["promotion"]
    assert got[("product", "prod_03")] == 1.0
    assert all(got[("store", s)] == pytest.approx(0.25) for s in ("store_01", "store_02", "store_03"))  # 1 of 4 products
    assert all(got[("_series", f"prod_03 | {s}")] == 1.0 for s in ("store_01", "store_02", "store_03"))
    assert (shifts[PERIOD] == 21).all() and (shifts["log_price_shift"] == 0).all()


def test_a_blank_key_cell_stands_for_every_value_of_its_column(observations):
    wd, _ = observations
    shifts, _ = plan(wd, "week,product,store,promo\n2024-05-20,prod_02,,1\n2024-05-20,prod_04,store_01,1\n")
    got = shifts.set_index(["column", "unit"])["promotion"]
    assert got[("product", "prod_02")] == 1.0 and got[("product", "prod_04")] == pytest.approx(1 / 3)
    assert got[("store", "store_01")] == 0.5 and got[("store", "store_03")] == 0.25


def test_future_rows_take_the_plan_where_it_has_them(observations):
    wd, _ = observations
    shifts, _ = plan(wd, "week,product,promo,price\n2024-05-20,prod_01,1,\n")
    rows = pd.DataFrame({"product": ["prod_01", "prod_01", "prod_02"], PERIOD: [20, 21, 20],
                         "price": [2.0, 2.0, 3.0], "promo": [0.0, 0.0, 0.0]})
    out = apply(rows, shifts, "product", COLUMNS)
    assert out["promo"].tolist() == [1.0, 0.0, 0.0]
    assert out["price"].tolist() == [2.0, 2.0, 3.0]  # a blank price keeps the usual one
    assert apply(rows, None, "product", COLUMNS) is rows
    assert f"planned prices and promotions of {wd / 'plan.csv'} where" in future_assumption(shifts)
    assert "usual price" in future_assumption(None)


@pytest.mark.parametrize("text, message", [
    ("week,product,promo\n2024-05-13,prod_01,1\n",
     "plan.csv, column 'week', row 1: not a forecast period (the forecast covers 2024-05-20 to 2024-06-03) "
     "(value '2024-05-13')"),
    ("week,product,promo\n2024-05-20,prod_01,1\n2024-06-10,prod_01,1\n",
     "plan.csv, column 'week', row 2: not a forecast period (the forecast covers 2024-05-20 to 2024-06-03) "
     "(value '2024-06-10')"),
    ("week,product,promo\n2024-05-22,prod_01,1\n", "plan.csv, column 'week', row 1: not on the data's time grid"),
    ("week,product,promo\n2024-05-20,prod_01,1\n2024-05-20,prod_09,0\n",
     "plan.csv, column 'product', row 2: not a value of 'product' in the data (value 'prod_09')"),
    ("week,product,promo\n2024-05-20,prod_01,1\n2024-05-27,prod_01,0\n2024-05-20,prod_01,0\n",
     "plan.csv, row 3: plans the same series (product prod_01) and period as row 1 (value '2024-05-20')"),
    ("week,product,store,promo\n2024-05-20,prod_01,store_02,1\n2024-05-20,prod_01,,0\n",
     "plan.csv, row 2: plans the same series (product prod_01, store store_02) and period as row 1"),
    ("week,product,discount\n2024-05-20,prod_01,1\n", "plan.csv, column 'discount': unknown column"),
    ("week,product,store,promo\n2024-05-20,prod_01,store_01,1\n2024-05-20,prod_02,store_09,1\n",
     "plan.csv, column 'store', row 2: not a value of 'store' in the data (value 'store_09')"),
    ("week,promo\n2024-05-20,1\n", "plan.csv: no key column"),
    ("week,product,promo\n2024-05-20,prod_01,2\n",
     "plan.csv, column 'promo', row 1: a promotion must be 0/1, true/false, yes/no or a share in [0, 1] (value '2')"),
    ("week,product,price\n2024-05-20,prod_01,abc\n", "plan.csv, column 'price', row 1: a price must be a finite number"),
])
def test_bad_plans_name_file_column_and_row(observations, text, message):
    wd, _ = observations
    assert message in error(wd, text)


def test_the_weeks_of_the_fixture_are_what_the_messages_say(observations):
    _, df = observations
    assert sorted(df["week"].unique())[-1] == "2024-05-13"
    assert read_observations(observations[0] / "observations.parquet").attrs["time_grid"]["step"] == 7


def test_a_row_naming_no_series_of_the_data_is_refused(observations):
    from hbm.plan import read_plan

    wd, _ = observations
    obs = read_observations(wd / "observations.parquet")
    missing = obs.loc[~((obs["product"] == "prod_01") & (obs["store"] == "store_01"))]
    missing.attrs = obs.attrs
    (wd / "gap.csv").write_text("week,product,store,promo\n2024-05-20,prod_01,store_01,1\n")
    with pytest.raises(DataError, match=r"gap.csv, row 1: names no series of the data \(product prod_01, store store_01\)"):
        read_plan(wd / "gap.csv", missing, COLUMNS, ["product", "store"], horizon=3)
