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


def run(tmp_path, text, columns=COLUMNS, levels=LEVELS, name="raw.csv", binary=False):
    raw = tmp_path / name
    raw.write_bytes(text) if binary else raw.write_text(text)
    out = tmp_path / "results" / "data"
    return raw, out, lambda: ingest(raw, out / "observations.parquet", out / "summary.json", columns, levels)


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
