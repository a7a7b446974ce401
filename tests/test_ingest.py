import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hbm.errors import DataError
from hbm.ingest import ingest

COLUMNS = {"target": "y", "time": None, "covariates": [], "measurement_sd": None}
LEVELS = {"school": {"column": "school", "parents": ["district"], "predictors": []}}
GOOD = "school,district,y\na,d1,1.5\na,d1,2.5\nb,d1,3\nc,d2,4\n"


def run(tmp_path, text, columns=COLUMNS, levels=LEVELS, name="raw.csv", binary=False, family="normal"):
    raw = tmp_path / name
    raw.write_bytes(text) if binary else raw.write_text(text)
    out = tmp_path / "results" / "data"
    return raw, out, lambda: ingest(raw, out / "observations.parquet", out / "summary.json", columns, levels,
                                    family=family)


def error(tmp_path, text, **kw) -> str:
    raw, out, go = run(tmp_path, text, **kw)
    with pytest.raises(DataError) as e:
        go()
    assert not out.exists() or not any(out.iterdir()), "a failed ingest must not leave output"
    return str(e.value).replace(f"{tmp_path}/", "")  # messages name the file as given


def test_valid_file_is_typed_and_summarised(tmp_path):
    raw, out, go = run(tmp_path, GOOD)
    summary = go()
    table = pq.read_table(out / "observations.parquet")
    assert str(table.schema.field("y").type) == "double"
    assert str(table.schema.field("school").type) == "string"
    assert table.column("y").to_pylist() == [1.5, 2.5, 3.0, 4.0]
    assert summary["rows"] == 4
    assert summary["levels"]["school"]["groups"] == 3
    assert summary["levels"]["school"]["parents"] == {"district": 2}
    assert summary["target"]["mean"] == pytest.approx(2.75)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert any("single observation" in w for w in summary["warnings"])  # b and c have one row


def test_parquet_input(tmp_path):
    df = pd.DataFrame({"school": ["a", "a", "b"], "district": ["d", "d", "d"], "y": [1.0, 2.0, 3.0]})
    raw = tmp_path / "raw.parquet"
    df.to_parquet(raw)
    out = tmp_path / "o"
    ingest(raw, out / "obs.parquet", out / "s.json", COLUMNS, LEVELS)
    assert pq.read_table(out / "obs.parquet").num_rows == 3


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found"):
        ingest(tmp_path / "nope.csv", tmp_path / "o.parquet", tmp_path / "s.json", COLUMNS, LEVELS)


def test_empty_file(tmp_path):
    assert error(tmp_path, "").endswith("raw.csv: file is empty")


def test_header_only(tmp_path):
    assert error(tmp_path, "school,district,y\n").endswith("has a header but no data rows")


def test_missing_column_lists_the_columns(tmp_path):
    msg = error(tmp_path, "school,district,score\na,d,1\n")
    assert "raw.csv, column 'y': required column is missing" in msg
    assert "'score'" in msg


def test_wrong_delimiter_gets_a_hint(tmp_path):
    msg = error(tmp_path, "school;district;y\na;d;1\n")
    assert "column 'y'" in msg and "delimited by something other than commas" in msg


@pytest.mark.parametrize("value", ["abc", "NaN", "inf", "-inf", ""])
def test_target_must_be_finite_number(tmp_path, value):
    msg = error(tmp_path, f"school,district,y\na,d,1\nb,d,{value}\n")
    assert f"raw.csv, column 'y', row 2: must be a finite number (value {value!r})" == msg


def test_missing_group_label(tmp_path):
    msg = error(tmp_path, "school,district,y\na,d,1\n,d,2\n")
    assert msg == "raw.csv, column 'school', row 2: group label is missing (value '')"


def test_child_in_two_parents(tmp_path):
    msg = error(tmp_path, "school,district,y\na,d1,1\nb,d1,2\na,d2,3\n")
    assert "column 'district', row 3" in msg
    assert "group 'a' of column 'school' is in more than one 'district' ('d1' at row 1, 'd2' at row 3)" in msg


def test_measurement_sd_must_be_positive(tmp_path):
    cols = {**COLUMNS, "measurement_sd": "s"}
    msg = error(tmp_path, "school,district,y,s\na,d,1,1\nb,d,2,0\n", columns=cols)
    assert msg == "raw.csv, column 's', row 2: must be a finite positive number (value '0')"


def test_group_predictor_must_be_constant_within_group(tmp_path):
    levels = {"school": {"column": "school", "parents": [], "predictors": ["u"]}}
    msg = error(tmp_path, "school,district,y,u\na,d,1,0.5\na,d,2,0.7\n", levels=levels)
    assert "column 'u', row 2" in msg and "group 'a' has 0.5 at row 1 and 0.7 at row 2" in msg


def test_covariate_must_be_numeric(tmp_path):
    cols = {**COLUMNS, "covariates": ["x"]}
    msg = error(tmp_path, "school,district,y,x\na,d,1,1\nb,d,2,high\n", columns=cols)
    assert msg == "raw.csv, column 'x', row 2: must be a finite number (value 'high')"


def test_unparseable_time(tmp_path):
    cols = {**COLUMNS, "time": "week"}
    msg = error(tmp_path, "school,district,y,week\na,d,1,2024-01-01\nb,d,2,someday\n", columns=cols)
    assert msg == "raw.csv, column 'week', row 2: not a date or an integer period (value 'someday')"


def test_integer_and_date_times_are_kept(tmp_path):
    cols = {**COLUMNS, "time": "week"}
    raw, out, go = run(tmp_path, "school,district,y,week\na,d,1,2024-01-01\nb,d,2,2024-01-08\n", columns=cols)
    summary = go()
    t = pq.read_table(out / "observations.parquet")
    assert str(t.schema.field("week").type).startswith("timestamp")
    assert summary["time"]["periods"] == 2


def test_not_utf8(tmp_path):
    msg = error(tmp_path, b"school,district,y\n\xff\xfe,d,1\n", binary=True)
    assert "raw.csv: cannot be read as csv" in msg


def test_existing_outputs_are_not_touched_by_a_failed_ingest(tmp_path):
    raw, out, go = run(tmp_path, GOOD)
    go()
    before = (out / "observations.parquet").read_bytes()
    raw.write_text("school,district,y\na,d1,x\n")
    with pytest.raises(DataError):
        go()
    assert (out / "observations.parquet").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["observations.parquet", "summary.json"]
    assert np.isfinite(pd.read_parquet(out / "observations.parquet")["y"]).all()


def test_trailing_delimiter_does_not_shift_columns(tmp_path):
    raw, out, go = run(tmp_path, "school,district,y\na,d,1,\nb,d,2,\n")
    go()
    t = pd.read_parquet(out / "observations.parquet")
    assert t["school"].tolist() == ["a", "b"] and t["y"].tolist() == [1.0, 2.0]


def test_duplicate_header(tmp_path):
    msg = error(tmp_path, "school,district,y,y\na,d,1,2\n")
    assert msg == "raw.csv, column 'y': duplicate column name in the header"


# Retail (count family, long format: one row per week, store and product)
RETAIL_COLUMNS = {"target": "units", "time": "week", "covariates": [], "measurement_sd": None, "price": "price",
                  "promotion": "promo"}
RETAIL_LEVELS = {"product": {"column": "product", "parents": ["category"], "predictors": []},
                 "store": {"column": "store", "parents": ["region"], "predictors": []}}
RETAIL = ("week,region,store,category,product,price,promo,units\n"
          "2024-01-01,r1,s1,c1,p1,2.5,0,3\n"
          "2024-01-01,r1,s1,c1,p2,1.0,1,0\n"
          "2024-01-08,r1,s1,c1,p1,2.5,0,4\n"
          "2024-01-08,r1,s1,c1,p2,1.0,0,2\n"
          "2024-01-22,r1,s1,c1,p1,2.5,1,5\n")


def retail_error(tmp_path, text) -> str:
    return error(tmp_path, text, columns=RETAIL_COLUMNS, levels=RETAIL_LEVELS, family="negative_binomial")


def test_retail_table_gets_periods_and_gaps(tmp_path):
    columns = {**RETAIL_COLUMNS, "series_start": "data"}  # p2's zero in the first week is kept as demand
    raw, out, go = run(tmp_path, RETAIL, columns=columns, levels=RETAIL_LEVELS, family="negative_binomial")
    summary = go()
    table = pq.read_table(out / "observations.parquet").to_pandas()
    assert table["_period"].tolist() == [0, 0, 1, 1, 3]  # 2024-01-15 is missing from the weekly grid
    assert summary["time"]["grid"] == {"kind": "days", "origin": "2024-01-01", "step": 7}
    gaps = summary["time"]["gaps"]
    assert (gaps["series"], gaps["periods"], gaps["series_with_gaps"], gaps["missing_periods"]) == (2, 4, 2, 3)
    assert gaps["largest"][0] == {"series": "product=p2, store=s1", "missing": 2}
    assert any("miss 3 period(s)" in w for w in summary["warnings"])


def test_retail_product_in_two_categories(tmp_path):
    msg = retail_error(tmp_path, RETAIL.replace("c1,p2,1.0,0,2", "c2,p2,1.0,0,2"))
    assert "column 'category', row 4" in msg and "group 'p2' of column 'product' is in more than one 'category'" in msg


def test_retail_store_in_two_regions(tmp_path):
    msg = retail_error(tmp_path, RETAIL.replace("2024-01-22,r1", "2024-01-22,r2"))
    assert "column 'region', row 5" in msg and "group 's1' of column 'store' is in more than one 'region'" in msg


@pytest.mark.parametrize("value", ["-1", "2.5", "many", ""])
def test_retail_counts_are_non_negative_integers(tmp_path, value):
    msg = retail_error(tmp_path, RETAIL.replace("0,4\n", f"0,{value}\n"))
    want = "must be a finite number" if value in ("many", "") else "a count must be a non-negative integer"
    assert msg == f"raw.csv, column 'units', row 3: {want} (value {value!r})"


def test_retail_integer_valued_floats_are_counts(tmp_path):
    raw, out, go = run(tmp_path, RETAIL.replace("0,4\n", "0,4.0\n"), columns=RETAIL_COLUMNS, levels=RETAIL_LEVELS,
                       family="negative_binomial")
    go()
    table = pq.read_table(out / "observations.parquet").to_pandas()
    assert table.loc[table["_row"] == 3, "units"].tolist() == [4.0]


def test_retail_unparseable_date(tmp_path):
    msg = retail_error(tmp_path, RETAIL.replace("2024-01-22", "2024-13-22"))
    assert msg == "raw.csv, column 'week', row 5: not a date or an integer period (value '2024-13-22')"


def test_retail_date_off_the_weekly_grid(tmp_path):
    more = "".join(f"2024-{m:02d}-{d:02d},r1,s1,c1,p2,1.0,0,1\n" for m, d in [(2, 5), (2, 12), (2, 19), (2, 26)])
    msg = retail_error(tmp_path, RETAIL + more + "2024-01-24,r1,s1,c1,p2,1.0,0,1\n")
    assert msg.startswith("raw.csv, column 'week', row 10: date is not on the grid of the other dates (every 7 days "
                          "from 2024-01-01)")
    assert "(value '2024-01-24')" in msg


def test_retail_duplicate_key(tmp_path):
    msg = retail_error(tmp_path, RETAIL + "2024-01-08,r1,s1,c1,p1,2.5,0,9\n")
    assert "duplicate key (week=2024-01-08, product=p1, store=s1): rows 3 and 6" in msg  # a date, not a timestamp
    assert msg.startswith("raw.csv, column 'week', row 6:") and msg.endswith("(value '2024-01-08')")


@pytest.mark.parametrize("value", ["2", "-0.5", "maybe"])
def test_retail_promotion_flag(tmp_path, value):
    msg = retail_error(tmp_path, RETAIL.replace("2.5,1,5", f"2.5,{value},5"))
    assert msg == (f"raw.csv, column 'promo', row 5: a promotion must be 0/1, true/false, yes/no or a share in "
                   f"[0, 1] (value {value!r})")


@pytest.mark.parametrize("value", ["abc", "inf"])
def test_retail_price_that_is_not_a_number_is_refused(tmp_path, value):
    msg = retail_error(tmp_path, RETAIL.replace("1.0,0,2", f"{value},0,2"))
    assert msg == (f"raw.csv, column 'price', row 4: a price must be a finite number (blank, NaN, 0 and negative "
                   f"prices are treated as missing) (value {value!r})")


def test_monthly_and_integer_grids(tmp_path):
    from hbm.ingest import period_labels, time_grid

    months = pd.Series(pd.to_datetime(["2024-01-31", "2024-02-29", "2024-04-30"]))
    idx, grid = time_grid(months, "f.csv", "month")
    assert idx.tolist() == [0, 1, 3] and grid["kind"] == "months" and grid["month_end"]
    assert period_labels(grid, [4]) == ["2024-05-31"]
    idx, grid = time_grid(pd.Series([2000, 2010, 2005, 2020]), "f.csv", "year")
    assert idx.tolist() == [0, 2, 1, 4] and grid == {"kind": "integer", "origin": 2000, "step": 5}
    assert period_labels(grid, [5]) == ["2025"]


def test_rows_finer_than_the_levels_need_columns_series(tmp_path):
    """A store-only analysis of store x product rows: the key must name the product too."""
    levels = {"store": RETAIL_LEVELS["store"]}
    msg = error(tmp_path, RETAIL, columns=RETAIL_COLUMNS, levels=levels, family="negative_binomial")
    assert "duplicate key (week=2024-01-01, store=s1): rows 1 and 2" in msg
    raw, out, go = run(tmp_path, RETAIL, columns={**RETAIL_COLUMNS, "series": ["store", "product"]}, levels=levels,
                       family="negative_binomial")
    assert go()["time"]["gaps"]["series"] == 2


def test_normal_family_keeps_irregular_dates(tmp_path):
    cols = {**COLUMNS, "time": "t"}
    text = "school,district,y,t\na,d,1,2024-01-01\na,d,2,2024-01-08\nb,d,3,2024-01-10\nb,d,4,2024-02-01\n"
    raw, out, go = run(tmp_path, text, columns=cols)
    summary = go()
    assert summary["time"]["periods"] == 4 and summary["time"]["grid"] is None
    assert "_period" not in pq.read_table(out / "observations.parquet").column_names


def test_quarterly_dates_form_a_three_month_grid():
    from hbm.ingest import period_labels, time_grid

    quarters = pd.Series(pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2025-01-01"]))
    idx, grid = time_grid(quarters, "f.csv", "quarter")
    assert idx.tolist() == [0, 1, 2, 4] and grid["step"] == 3
    assert period_labels(grid, [3, 5]) == ["2024-10-01", "2025-04-01"]


def test_parquet_keeps_typed_dates_and_names_float_groups_as_integers(tmp_path):
    """A Parquet date column stays a date (not nanoseconds as integer periods); groups 1.0, 2.0 are "1", "2"."""
    df = pd.DataFrame({"week": pd.date_range("2024-01-01", periods=4, freq="7D").repeat(2),
                       "store": [1.0, 2.0] * 4, "units": [1, 2, 3, 4, 5, 6, 7, 8]})
    raw = tmp_path / "raw.parquet"
    df.to_parquet(raw)
    out = tmp_path / "o"
    columns = {**COLUMNS, "target": "units", "time": "week"}
    levels = {"store": {"column": "store", "parents": [], "predictors": []}}
    summary = ingest(raw, out / "obs.parquet", out / "s.json", columns, levels, family="poisson")
    table = pq.read_table(out / "obs.parquet").to_pandas()
    assert summary["time"]["grid"]["kind"] == "days" and summary["time"]["grid"]["step"] == 7
    assert summary["time"]["periods"] == 4 and sorted(table["store"].unique()) == ["1", "2"]
    assert str(table["week"].iloc[0]) == "2024-01-01 00:00:00"


# Real sales tables (issue 20): unusable prices, zeros before a launch or after a delisting, discount depths
MONTHLY_COLUMNS = {"target": "units", "time": "month", "covariates": [], "measurement_sd": None, "series": None,
                   "price": "price", "promotion": "disc", "promotion_scale": "percent"}
MONTHLY_LEVELS = {"sku": {"column": "sku", "parents": [], "predictors": []},
                  "agency": {"column": "agency", "parents": [], "predictors": []}}
MONTHS = [f"2024-{m:02d}-01" for m in range(1, 7)]


def monthly_csv(series: dict) -> str:
    """``series``: (sku, agency) -> list of (units, price, discount) per month, None for no row."""
    lines = ["month,agency,sku,units,price,disc"]
    for (sku, agency), values in series.items():
        lines += [f"{m},{agency},{sku},{u},{p},{d}" for m, v in zip(MONTHS, values) if v is not None
                  for u, p, d in [v]]
    return "\n".join(lines) + "\n"


def monthly_series():
    return {
        ("k1", "a1"): [(5, 2.0, 0), (6, 2.0, 0), (7, 2.0, 10), (8, 2.0, 0), (9, 2.0, 0), (10, 2.0, 0)],
        ("k1", "a2"): [(0, 0, 0), (0, 0, 0), (0, 0, 0), (4, 2.5, 20), (5, 2.5, 250), (6, 2.5, 0)],  # launch in April
        ("k2", "a1"): [(3, 3.0, 0), (3, 0, 0), (4, "", 0), (4, 4.0, 0), (0, -1, 0), (5, 4.5, 0)],
        ("k2", "a2"): [(0, 1.0, 0)] * 6,  # never sold
    }


def monthly_run(tmp_path, series=None, **columns):
    return run(tmp_path, monthly_csv(series or monthly_series()), columns={**MONTHLY_COLUMNS, **columns},
               levels=MONTHLY_LEVELS, family="negative_binomial")


def rows_of(table, sku, agency):
    return table.loc[(table["sku"] == sku) & (table["agency"] == agency)].sort_values("_period")


def test_launch_zeros_and_never_sold_series_are_dropped_and_counted(tmp_path):
    raw, out, go = monthly_run(tmp_path)
    summary = go()
    table = pd.read_parquet(out / "observations.parquet")
    assert rows_of(table, "k1", "a2")["_period"].tolist() == [3, 4, 5]  # from its first sale in April
    assert rows_of(table, "k2", "a2").empty and len(table) == 24 - 3 - 6
    assert summary["rows_read"] == 24 and summary["rows"] == 15
    assert summary["series_window"] == {
        "start": "first_sale", "end": "data", "series": 4, "leading_zero_periods": 3, "series_starting_late": 1,
        "trailing_zero_periods": 0, "series_ending_early": 0, "never_sold_series": 1, "never_sold_periods": 6,
        "rows_dropped": 9, "latest_starts": [{"series": "sku=k1, agency=a2", "first_sale": "2024-04", "dropped": 3}],
        "never_sold": ["sku=k2, agency=a2"]}
    assert "1 series sold nothing in any period and were dropped (e.g. sku=k2, agency=a2); set " \
           "'columns.series_start: data' to keep them" in summary["warnings"]
    assert summary["time"]["gaps"]["missing_periods"] == 0  # the months before a launch are not gaps


def test_series_start_data_keeps_the_zeros_as_demand_and_counts_absent_rows_as_gaps(tmp_path):
    series = monthly_series()
    series[("k1", "a2")][:3] = [None] * 3  # a long-format table without the rows before the launch
    raw, out, go = monthly_run(tmp_path, series, series_start="data")
    summary = go()
    assert summary["rows"] == summary["rows_read"] == 21 and summary["series_window"]["rows_dropped"] == 0
    assert summary["time"]["gaps"]["missing_periods"] == 3
    raw, out, go = monthly_run(tmp_path, series)  # first_sale: they are not gaps either
    assert go()["time"]["gaps"]["missing_periods"] == 0


def test_series_end_last_sale_drops_the_zeros_after_a_delisting(tmp_path):
    series = monthly_series()
    series[("k1", "a1")][4:] = [(0, 2.0, 0), (0, 0, 0)]  # delisted after April
    raw, out, go = monthly_run(tmp_path, series)
    assert go()["series_window"]["trailing_zero_periods"] == 0  # by default the zeros stay (demand)
    raw, out, go = monthly_run(tmp_path, series, series_end="last_sale")
    summary = go()
    table = pd.read_parquet(out / "observations.parquet")
    assert rows_of(table, "k1", "a1")["_period"].tolist() == [0, 1, 2, 3]
    # k2/a1's zero in May is inside its window (it sold again in June): kept
    assert rows_of(table, "k2", "a1")["units"].tolist() == [3, 3, 4, 4, 0, 5]
    w = summary["series_window"]
    assert (w["trailing_zero_periods"], w["series_ending_early"], w["leading_zero_periods"]) == (2, 1, 3)


def test_unusable_prices_are_filled_from_the_series_nearest_price_and_counted(tmp_path):
    raw, out, go = monthly_run(tmp_path)
    summary = go()
    table = pd.read_parquet(out / "observations.parquet")
    # k2/a1: Feb (0, with sales) takes Jan's 3.0 (1 month away, April 2); Mar (blank) April's 4.0;
    # May (-1, no sales) is 1 month from April's 4.0 and June's 4.5: the earlier wins
    assert rows_of(table, "k2", "a1")["price"].tolist() == [3.0, 3.0, 4.0, 4.0, 4.0, 4.5]
    assert (table["price"] > 0).all()
    assert summary["price"] == {"column": "price", "missing": 6, "blank": 1, "zero": 4, "negative": 1,
                                "with_sales": 2, "without_sales": 4, "filled": 3, "dropped": 3,
                                "first_row_with_sales": 14}
    assert ("column 'price': 2 row(s) with sales had no usable price (blank, NaN, 0 or negative), e.g. row 14; each "
            "was filled from its series' nearest usable value") in summary["warnings"]


def test_zero_price_without_sales_is_not_a_warning(tmp_path):
    series = monthly_series()
    series[("k2", "a1")] = [(3, 3.0, 0)] * 4 + [(0, 0, 0), (5, 4.5, 0)]
    raw, out, go = monthly_run(tmp_path, series)
    summary = go()
    assert (summary["price"]["missing"], summary["price"]["with_sales"], summary["price"]["filled"]) == (4, 0, 1)
    assert not any("column 'price'" in w for w in summary["warnings"])


def test_a_series_without_any_usable_price_is_refused_naming_its_first_missing_row(tmp_path):
    series = monthly_series()
    series[("k1", "a2")] = [(0, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (1, 0, 0), (1, "", 0)]
    raw, out, go = monthly_run(tmp_path, series)
    with pytest.raises(DataError) as e:
        go()
    assert str(e.value).replace(f"{tmp_path}/", "") == (
        "raw.csv, column 'price', row 8: no row of its series (sku=k1, agency=a2) has a usable price to fill this "
        "missing one from")
    assert not out.exists()


def test_discount_depth_in_percent_becomes_a_share(tmp_path):
    raw, out, go = monthly_run(tmp_path)
    summary = go()
    table = pd.read_parquet(out / "observations.parquet")
    assert rows_of(table, "k1", "a1")["disc"].tolist() == [0, 0, 0.1, 0, 0, 0]
    # 250 % (a price below zero) is missing: filled with the nearest usable depth, April's 20 % (earlier on a tie)
    assert rows_of(table, "k1", "a2")["disc"].tolist() == [0.2, 0.2, 0.0]
    assert summary["promotion"] == {"scale": "percent", "column": "disc", "missing": 1, "blank": 0, "above_100": 1,
                                    "with_sales": 1, "without_sales": 0, "filled": 1, "dropped": 0,
                                    "first_row_with_sales": 11, "max_depth": 250.0}


def test_a_share_promotion_still_refuses_a_percentage(tmp_path):
    raw, out, go = monthly_run(tmp_path, promotion_scale="share")
    with pytest.raises(DataError, match=r"raw.csv, column 'disc', row 3: a promotion must be 0/1, true/false, yes/no "
                                        r"or a share in \[0, 1\] \(value '10'\)"):
        go()


@pytest.mark.parametrize("value, message", [
    ("-5", "a discount depth cannot be negative (percent of the regular price taken off: 15 is 15 % off; a negative "
           "one is a markup) (value '-5')"),
    ("ten", "a discount depth must be a finite number in percent of the regular price (blank, NaN and depths above "
            "100 are treated as missing) (value 'ten')")])
def test_a_negative_or_non_numeric_discount_depth_is_refused(tmp_path, value, message):
    series = monthly_series()
    series[("k2", "a1")][3] = (4, 4.0, value)
    raw, out, go = monthly_run(tmp_path, series)
    with pytest.raises(DataError) as e:
        go()
    assert str(e.value).replace(f"{tmp_path}/", "") == f"raw.csv, column 'disc', row 16: {message}"
    assert not out.exists()


def test_all_zero_data_has_no_series_to_start(tmp_path):
    series = {k: [(0, 1.0, 0)] * 6 for k in monthly_series()}
    raw, out, go = monthly_run(tmp_path, series)
    with pytest.raises(DataError, match=r"raw.csv, column 'units': no series has a sale .*set it to 'data'"):
        go()
    raw, out, go = monthly_run(tmp_path, series, series_start="data")
    assert go()["rows"] == 24


@pytest.mark.parametrize("dates, first, last, labels", [
    (["2013-01-01", "2013-02-01", "2013-03-01"], "2013-01", "2013-03", ["2013-01", "2013-04"]),  # monthly
    (["2013-01-31", "2013-02-28", "2013-03-31"], "2013-01", "2013-03", ["2013-01", "2013-04"]),  # month ends
    (["2013-01-07", "2013-01-14", "2013-01-21"], "2013-01-07", "2013-01-21", ["2013-01-07", "2013-01-28"]),  # weekly
    (["2013-01-07", "2013-01-08", "2013-01-09"], "2013-01-07", "2013-01-09", ["2013-01-07", "2013-01-10"]),  # daily
    (["2013-01-07 00:00", "2013-01-07 06:00", "2013-01-07 12:00"], "2013-01-07 00:00", "2013-01-07 12:00",
     ["2013-01-07 00:00", "2013-01-07 18:00"]),  # every 6 hours
    (["2013-01-07 06:00", "2013-01-07 12:00", "2013-01-07 18:00"], "2013-01-07 06:00", "2013-01-07 18:00",
     ["2013-01-07 06:00", "2013-01-08 00:00"]),  # a grid that starts at 06:00 keeps its time of day
    (["2001", "2002", "2003"], "2001", "2003", ["2001", "2004"]),  # integer periods
])
def test_dates_print_at_the_datas_frequency(tmp_path, dates, first, last, labels):
    from hbm.ingest import display_labels

    text = "t,store,units\n" + "".join(f"{d},s{i},{k + 1}\n" for k, d in enumerate(dates) for i in (1, 2))
    columns = {**COLUMNS, "target": "units", "time": "t"}
    levels = {"store": {"column": "store", "parents": [], "predictors": []}}
    raw, out, go = run(tmp_path, text, columns=columns, levels=levels, family="poisson")
    summary = go()
    assert (summary["time"]["first"], summary["time"]["last"]) == (first, last)
    assert display_labels(summary["time"]["grid"], [0, 3]) == labels


def test_irregular_dates_of_the_normal_family_print_as_dates(tmp_path):
    cols = {**COLUMNS, "time": "t"}
    raw, out, go = run(tmp_path, "school,district,y,t\na,d,1,2024-01-01\nb,d,3,2024-01-10\n", columns=cols)
    assert (go()["time"]["first"], go()["time"]["last"]) == ("2024-01-01", "2024-01-10")
