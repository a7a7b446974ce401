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
    raw, out, go = run(tmp_path, RETAIL, columns=RETAIL_COLUMNS, levels=RETAIL_LEVELS, family="negative_binomial")
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
    assert pq.read_table(out / "observations.parquet").column("units").to_pylist()[2] == 4.0


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
    assert "duplicate key (week=2024-01-08 00:00:00, product=p1, store=s1): rows 3 and 6" in msg
    assert msg.startswith("raw.csv, column 'week', row 6:")


@pytest.mark.parametrize("value", ["2", "-0.5", "maybe"])
def test_retail_promotion_flag(tmp_path, value):
    msg = retail_error(tmp_path, RETAIL.replace("2.5,1,5", f"2.5,{value},5"))
    assert msg == (f"raw.csv, column 'promo', row 5: a promotion must be 0/1, true/false, yes/no or a share in "
                   f"[0, 1] (value {value!r})")


def test_retail_price_must_be_positive(tmp_path):
    msg = retail_error(tmp_path, RETAIL.replace("1.0,1,0", "0,1,0"))
    assert msg == "raw.csv, column 'price', row 2: must be a finite positive number (value '0')"


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
    assert "duplicate key (week=2024-01-01 00:00:00, store=s1): rows 1 and 2" in msg
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
