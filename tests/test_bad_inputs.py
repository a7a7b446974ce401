"""The bad-input suite: each malformed data file or config, run through Snakemake, must stop with its exact
message (file, key or column, row or value), a non-zero exit, and no output of the failed step.

Data cases run as one Snakemake invocation with ``--keep-going`` (one analysis per case, each only up to its
validated table); each case's ingest job must fail on its own with its own message. Config cases stop
Snakemake while it reads the workflow, so each is its own invocation. Marked slow (about a minute).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import pytest
import yaml

from conftest import snakemake

pytestmark = pytest.mark.slow

NORMAL = {"columns": {"target": "y"}, "levels": {"group": {"column": "group"}}}
COUNT = {"columns": {"target": "units", "time": "week"}, "levels": {"store": {"column": "store"}},
         "model": {"family": "negative_binomial"}}


@dataclass
class Case:
    id: str
    data: str | bytes | None  # None: no data file at all
    message: str  # the exact message after "data/<id>.<ext>"
    base: dict = field(default_factory=lambda: NORMAL)
    config: dict = field(default_factory=dict)  # merged into the analysis config
    ext: str = "csv"


def parquet(**columns) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def _parquet_cases():
    import datetime as dt

    return [
        Case("parquet_bool_target", parquet(group=["a", "b"], y=[True, False]),
             ", column 'y', row 1: has type boolean; expected numbers (value True)", ext="parquet"),
        Case("parquet_date_target", parquet(group=["a", "b"], y=[dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)]),
             ", column 'y', row 1: has type datetime64[", ext="parquet"),
        Case("parquet_text_target", parquet(group=["a", "b"], y=["1.5", "abc"]),
             ", column 'y', row 2: must be a finite number (value 'abc')", ext="parquet"),
        Case("parquet_corrupt", b"group,y\na,1\n", ": cannot be read as parquet: ", ext="parquet"),
    ]


DATA_CASES = [
    Case("empty", "", ": file is empty"),
    Case("header_only", "group,y\n", ": has a header but no data rows"),
    Case("semicolons", "group;y\na;1\n",
         ", column 'y': required column is missing (the file has ['group;y']); the header is one column: is the "
         "file delimited by something other than commas?"),
    Case("tabs", "group\ty\na\t1\n", ", column 'y': required column is missing (the file has ['group\\ty'])"),
    Case("missing_target", "group,x\na,1\n", ", column 'y': required column is missing (the file has ['group', 'x'])"),
    Case("missing_group", "grp,y\na,1\n", ", column 'group': required column is missing (the file has ['grp', 'y'])"),
    Case("missing_time", "store,units\ns1,1\n", ", column 'week': required column is missing", base=COUNT),
    Case("missing_covariate", "group,y\na,1\n", ", column 'x': required column is missing",
         config={"columns": {"target": "y", "covariates": ["x"]}}),
    Case("missing_parent", "group,y\na,1\n", ", column 'district': required column is missing",
         config={"levels": {"group": {"column": "group", "parents": ["district"]}}}),
    Case("duplicate_header", "group,y,y\na,1,2\n", ", column 'y': duplicate column name in the header"),
    Case("extra_field", "group,y\na,1\nb,2,3\nc,4\n", ", row 2: the row has 3 fields but the header has 2"),
    Case("text_target", "group,y\na,1.5\nb,oops\n", ", column 'y', row 2: must be a finite number (value 'oops')"),
    Case("nan_target", "group,y\na,1.5\nb,nan\n", ", column 'y', row 2: must be a finite number (value 'nan')"),
    Case("blank_target", "group,y\na,1.5\nb,\n", ", column 'y', row 2: must be a finite number (value '')"),
    Case("inf_target", "group,y\na,1.5\nb,-inf\n", ", column 'y', row 2: must be a finite number (value '-inf')"),
    Case("blank_group", "group,y\na,1\n ,2\n", ", column 'group', row 2: group label is missing (value '')"),
    Case("negative_count", "week,store,units\n1,s1,3\n2,s1,-1\n",
         ", column 'units', row 2: a count must be a non-negative integer (value '-1')", base=COUNT),
    Case("fractional_count", "week,store,units\n1,s1,3\n2,s1,2.5\n",
         ", column 'units', row 2: a count must be a non-negative integer (value '2.5')", base=COUNT,
         config={"model": {"family": "poisson"}}),
    Case("text_count", "week,store,units\n1,s1,3\n2,s1,many\n",
         ", column 'units', row 2: must be a finite number (value 'many')", base=COUNT),
    Case("duplicate_key", "week,store,units\n1,s1,3\n2,s1,4\n2,s1,5\n",
         ", column 'week', row 3: duplicate key (week=2, store=s1): rows 2 and 3 are the same week/store (value '2')",
         base=COUNT),
    Case("child_in_two_parents", "group,district,y\na,north,1\nb,north,2\na,south,3\n",
         ", column 'district', row 3: group 'a' of column 'group' is in more than one 'district' "
         "('north' at row 1, 'south' at row 3) (value 'south')",
         config={"levels": {"group": {"column": "group", "parents": ["district"]}}}),
    Case("unparseable_date", "week,store,units\n2024-01-01,s1,1\nsoon,s1,2\n",
         ", column 'week', row 2: not a date or an integer period (value 'soon')", base=COUNT),
    Case("mixed_date_formats", "week,store,units\n2024-01-01,s1,1\n01/08/2024,s1,2\n2024-01-15,s1,3\n",
         ", column 'week', row 2: date written in another format than row 1's '2024-01-01'; mixed date formats "
         "are ambiguous: write every date as YYYY-MM-DD (value '01/08/2024')", base=COUNT),
    Case("off_grid_date", "week,store,units\n2024-01-01,s1,1\n2024-01-08,s1,2\n2024-01-15,s1,3\n2024-01-19,s1,3\n",
         ", column 'week', row 4: date is not on the grid of the other dates (every 7 days from 2024-01-01) "
         "(value '2024-01-19')", base=COUNT),
    Case("huge_period", "week,store,units\n1,s1,1\n1e30,s1,2\n",
         ", column 'week', row 2: an integer period must be below 2**53 (value '1e30')", base=COUNT),
    Case("text_price", "week,store,units,price\n1,s1,1,2.5\n2,s1,2,cheap\n",
         ", column 'price', row 2: a price must be a finite number (blank, NaN, 0 and negative prices are treated "
         "as missing) (value 'cheap')", base=COUNT,
         config={"columns": {"target": "units", "time": "week", "price": "price"}}),
    Case("series_without_price", "week,store,units,price\n1,s1,1,2.5\n1,s2,0,0\n2,s1,2,2.5\n2,s2,3,-1\n",
         ", column 'price', row 4: no row of its series (store=s2) has a usable price to fill this missing one from",
         base=COUNT, config={"columns": {"target": "units", "time": "week", "price": "price"}}),
    Case("negative_discount", "week,store,units,disc\n1,s1,1,0\n2,s1,2,-5\n",
         ", column 'disc', row 2: a discount depth cannot be negative (percent of the regular price taken off: 15 "
         "is 15 % off; a negative one is a markup) (value '-5')", base=COUNT,
         config={"columns": {"target": "units", "time": "week", "promotion": "disc", "promotion_scale": "percent"}}),
    Case("text_discount", "week,store,units,disc\n1,s1,1,0\n2,s1,2,ten\n",
         ", column 'disc', row 2: a discount depth must be a finite number in percent of the regular price (blank, "
         "NaN and depths above 100 are treated as missing) (value 'ten')", base=COUNT,
         config={"columns": {"target": "units", "time": "week", "promotion": "disc", "promotion_scale": "percent"}}),
    Case("no_sale_at_all", "week,store,units\n1,s1,0\n2,s1,0\n1,s2,0\n",
         ", column 'units': no series has a sale (the target is 0 in every row), so none starts "
         "('columns.series_start: first_sale'); set it to 'data' to fit all-zero data", base=COUNT),
    Case("bad_promotion", "week,store,units,promo\n1,s1,1,0\n2,s1,2,2\n",
         ", column 'promo', row 2: a promotion must be 0/1, true/false, yes/no or a share in [0, 1] (value '2')",
         base=COUNT, config={"columns": {"target": "units", "time": "week", "promotion": "promo"}}),
    Case("zero_measurement_sd", "group,y,se\na,1,0.5\nb,2,0\n",
         ", column 'se', row 2: must be a finite positive number (value '0')",
         config={"columns": {"target": "y", "measurement_sd": "se"}, "model": {"noise": "known"}}),
    Case("predictor_not_constant", "group,y,u\na,1,0.5\na,2,0.7\n",
         ", column 'u', row 2: group-level predictor must be constant within each 'group', but group 'a' has "
         "0.5 at row 1 and 0.7 at row 2 (value 0.7)",
         config={"levels": {"group": {"column": "group", "predictors": ["u"]}}}),
]


def analysis_config(case: Case) -> dict:
    cfg = {"name": f"bad_{case.id}", "data": {"path": f"data/{case.id}.{case.ext}"}, **yaml.safe_load(
        yaml.safe_dump(case.base))}
    for key, value in case.config.items():
        cfg[key] = {**cfg.get(key, {}), **value} if key == "model" else value
    return cfg


def write_workdir(wd, cases: list[Case]) -> list[str]:
    (wd / "data").mkdir(exist_ok=True)
    (wd / "config" / "analyses").mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        if case.data is not None:
            target = wd / "data" / f"{case.id}.{case.ext}"
            (target.write_bytes if isinstance(case.data, bytes) else target.write_text)(case.data)
        path = f"config/analyses/{case.id}.yaml"
        (wd / path).write_text(yaml.safe_dump(analysis_config(case), sort_keys=False))
        paths.append(path)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({"analyses": paths}))
    return paths


def failed_jobs(stderr: str) -> set[str]:
    """The analyses whose ingest job Snakemake reports as failed."""
    return set(re.findall(r"Error in rule ingest:\n(?:    .*\n)*?    output: results/([^/\s]+)/data/", stderr))


@pytest.fixture(scope="module")
def data_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("bad_data")
    cases = DATA_CASES + _parquet_cases()
    write_workdir(wd, cases)
    targets = [f"results/bad_{c.id}/data/observations.parquet" for c in cases]
    proc = snakemake(wd, "--keep-going", *targets, check=False)
    return wd, proc, cases


def test_the_suite_has_at_least_thirty_cases():
    assert len(DATA_CASES) + len(_parquet_cases()) + len(CONFIG_CASES) >= 30


@pytest.mark.parametrize("case", DATA_CASES + _parquet_cases(), ids=lambda c: c.id)
def test_bad_data_stops_its_ingest_job_with_the_exact_message(data_run, case):
    wd, proc, _ = data_run
    assert proc.returncode != 0
    name = f"bad_{case.id}"
    assert name in failed_jobs(proc.stderr), f"{name}'s ingest job did not fail"
    expected = f"data/{case.id}.{case.ext}{case.message}"
    log = (wd / "results" / name / "logs" / "ingest.log").read_text()
    assert expected in log and expected in proc.stderr
    assert "Traceback" not in log
    outputs = wd / "results" / name / "data"
    assert not outputs.exists() or not any(outputs.iterdir())


def test_missing_data_file_stops_before_any_job(tmp_path):
    case = Case("absent", None, "")
    write_workdir(tmp_path, [case])
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert "Missing input files for rule ingest" in proc.stderr and "data/absent.csv" in proc.stderr
    assert not (tmp_path / "results").exists()


# "Billion laughs": each line refers ten times to the line before; 12 lines expand to 10**12 strings.
BOMB = "name: bomb\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 12))


def config_case(id, message, change=None, text=None):
    return pytest.param(change, text, message, id=id)


def _set(path, value):
    def change(cfg):
        node = cfg
        *parents, last = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    return change


CONFIG_CASES = [
    config_case("unknown_family", "key 'model.family': 'weibull' is not one of ['normal', 'studentt', 'lognormal', "
                "'gamma', 'poisson', 'negative_binomial', 'hurdle_negative_binomial', 'hurdle_gamma']",
                _set("model.family", "weibull")),
    config_case("unknown_sampler", "key 'inference.sampler': 'stan' is not one of ['nutpie', 'pymc', 'numpyro']",
                _set("inference.sampler", "stan")),
    config_case("draws_too_few", "key 'inference.draws': 5 is less than the minimum of 10", _set("inference.draws", 5)),
    config_case("draws_too_many", "key 'inference.draws': 2000000 is greater than the maximum of 1000000",
                _set("inference.draws", 2_000_000)),
    config_case("chains_zero", "key 'inference.chains': 0 is less than the minimum of 1", _set("inference.chains", 0)),
    config_case("tune_negative", "key 'inference.tune': -1 is less than the minimum of 10",
                _set("inference.tune", -1)),
    config_case("reversed_range", "key 'checks.plausible_range': low must be below high, got [5, 1]",
                _set("checks.plausible_range", [5, 1])),
    config_case("name_leaves_results", "key 'name': '../x' does not match", _set("name", "../x")),
    config_case("name_absolute", "key 'name': '/tmp/x' does not match", _set("name", "/tmp/x")),
    config_case("reserved_level_name", "key 'levels.obs_id': 'obs_id' is a name hbm's models use for a dimension or "
                "variable; rename the level", _set("levels", {"obs_id": {"column": "group"}})),
    config_case("python_tag", "not valid YAML: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object/apply:os.system'",
                text="name: evil\nx: !!python/object/apply:os.system ['touch pwned']\n"),
    config_case("alias_bomb", "not valid YAML: more than 100 aliases (a YAML alias bomb?)", text=BOMB),
    config_case("not_a_mapping", "expected a mapping of keys to values at the top level, got list", text="- a\n- b\n"),
]


@pytest.mark.parametrize("change, text, message", CONFIG_CASES)
def test_bad_config_stops_before_any_job_with_the_exact_message(tmp_path, change, text, message):
    case = Case("cfg", "group,y\na,1\nb,2\n", "")
    (path,) = write_workdir(tmp_path, [case])
    if text is not None:
        (tmp_path / path).write_text(text)
    else:
        cfg = yaml.safe_load((tmp_path / path).read_text())
        change(cfg)
        (tmp_path / path).write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert f"{path}: " in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "pwned").exists()


def test_a_group_with_one_observation_and_an_all_zero_series_are_warnings_not_errors(tmp_path):
    import json

    single = Case("single", "group,y\na,1\na,2\nb,3\n", "")
    data = "week,store,units,price\n1,s1,0,0\n2,s1,0,2.5\n1,s2,3,0\n2,s2,4,2.5\n"
    count = {**COUNT, "columns": {"target": "units", "time": "week", "price": "price"}}
    dropped = Case("zeros", data, "", base=count)  # series_start: first_sale (the default)
    kept = Case("zeros_kept", data, "", base=count,
                config={"columns": {**count["columns"], "series_start": "data"}})
    write_workdir(tmp_path, [single, dropped, kept])
    snakemake(tmp_path, *(f"results/bad_{c}/data/summary.json" for c in ("single", "zeros", "zeros_kept")))
    one = json.loads((tmp_path / "results/bad_single/data/summary.json").read_text())["warnings"]
    assert one == ["level 'group': 1 group(s) with a single observation (e.g. ['b']); their own spread cannot be "
                   "estimated"]
    price = ("column 'price': 1 row(s) with sales had no usable price (blank, NaN, 0 or negative), e.g. row 3; each "
             "was filled from its series' nearest usable value")
    zero = json.loads((tmp_path / "results/bad_zeros/data/summary.json").read_text())
    assert zero["warnings"] == [price, "1 series sold nothing in any period and were dropped (e.g. store=s1); set "
                                       "'columns.series_start: data' to keep them"]
    assert (zero["rows"], zero["series_window"]["never_sold_periods"], zero["price"]["dropped"]) == (2, 2, 1)
    kept = json.loads((tmp_path / "results/bad_zeros_kept/data/summary.json").read_text())["warnings"]
    assert kept == ["level 'store': 1 unit(s) sold nothing in any period (e.g. ['s1']); their intercepts rest on "
                    "the prior and the pooling, and forecasts for them stay near zero", price]
