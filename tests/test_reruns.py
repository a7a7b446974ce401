"""Reruns follow the edit: on one tiny finished run of a 2-level count analysis, each kind of config edit
makes a dry run plan exactly the jobs that depend on what was edited (README, "Reruns"; slow)."""

import re

import pandas as pd
import pytest
import yaml

from hbm import simulate

from conftest import snakemake

pytestmark = pytest.mark.slow

CONFIG = "config/analyses/retail.yaml"
MODEL_JOBS = {"prior_check", "fit", "posterior_check", "forecast"}  # the per-level jobs after aggregate
REPORT = {"coherence", "report", "all"}  # what every per-level rerun ends in
BOTTOM = {"fit_bottom", "forecast_bottom"}
COMPARED = {"forecast_bottom"}  # compares its forecasts with the levels': reruns when a level's forecast does


def tiny_config() -> dict:
    """Two levels (store within region) of a negative binomial demand model with trend, season, price and
    promotion, forecast with a holdout. Each level has settings of its own, so an edit can miss the other."""
    return {
        "name": "retail",
        "data": {"path": "data/sales.csv"},
        "columns": {"target": "units", "time": "week", "price": "price", "promotion": "promo",
                    "series": ["store", "product"]},
        "levels": {
            "store": {"column": "store", "parents": ["region"], "parametrization": {"trend": "noncentered"}},
            "region": {"column": "region", "priors": {"trend_tau": {"dist": "halfnormal", "sigma": 0.1}},
                       "inference": {"draws": 100, "target_accept": 0.9}},
        },
        "model": {"family": "negative_binomial", "trend": {"per": 52.18}, "seasonality": {"period": 52.18, "order": 2}},
        # and a bottom model over store x product, whose forecasts are compared with the levels' fits
        "bottom": {"series": ["store", "product"], "hierarchies": {"store": ["store", "region"], "product": ["product"]},
                   "effects": {"intercept": ["store", "product"], "trend": "store"}},
        "forecast": {"horizon": 3, "holdout": 4, "plot_units": 2},
        # the pymc sampler compiles these models in about half nutpie's CPU time; what is tested is the DAG
        "inference": {"sampler": "pymc", "chains": 1, "draws": 100, "tune": 100, "max_attempts": 1, "seed": 3},
        "checks": {"prior_draws": 50, "on_failure": "flag", "pooling_comparison": False},
    }


def planned(proc) -> set[str]:
    """The jobs of a dry run, as "rule" or "rule[level]"."""
    text = proc.stdout + proc.stderr
    jobs = set()
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", text, re.M):
        level = re.search(r"^    wildcards: .*\blevel=(\w+)", m.group(2), re.M)
        jobs.add(f"{m.group(1)}[{level.group(1)}]" if level else m.group(1))
    return jobs


def per_level(*levels, jobs=MODEL_JOBS) -> set[str]:
    return {f"{job}[{level}]" for job in jobs for level in levels}


EVERY_JOB = {"ingest", *per_level("store", "region", jobs={"aggregate", *MODEL_JOBS}), *REPORT, *BOTTOM}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("reruns")
    df, _ = simulate.retail({**simulate.RETAIL_TRUTH, "regions": 2, "stores": 4, "products": 3, "categories": 1,
                             "weeks": 60})
    (wd / "data").mkdir()
    df.to_csv(wd / "data" / "sales.csv", index=False)
    # a forecast plan that the finished run does not use (the "a forecast plan" edit adds it)
    after = (pd.Timestamp(df["week"].max()) + pd.Timedelta(days=7)).strftime("%Y-%m-%d")
    (wd / "data" / "plan.csv").write_text(f"week,store,promo\n{after},store_01,1\n")
    # an events file that the finished run does not use (the "an events file" edit adds it)
    (wd / "data" / "events.csv").write_text(f"week,event\n{after},holiday\n")
    (wd / "config" / "analyses").mkdir(parents=True)
    (wd / CONFIG).write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({"analyses": [CONFIG]}))
    snakemake(wd)
    return wd


def dry_run_after(wd, edit, *args) -> set[str]:
    """The jobs a dry run plans after ``edit`` (a function changing the config dict in place); the config
    file is restored afterwards."""
    path = wd / CONFIG
    original = path.read_text()
    cfg = yaml.safe_load(original)
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        return planned(snakemake(wd, "-n", *args))
    finally:
        path.write_text(original)


def test_finished_run_has_nothing_to_do(finished_run):
    assert planned(snakemake(finished_run, "-n")) == set()


EDITS = {
    # a level's priors (or parametrization) reach that level's model jobs only: not ingest, not its table,
    # not the other level; the prior check is redone, the sampler settings leave it alone
    "a level's priors": (
        lambda c: c["levels"]["region"]["priors"]["trend_tau"].update(sigma=0.2),
        per_level("region") | REPORT | COMPARED,
    ),
    "a level's parametrization": (
        lambda c: c["levels"]["store"]["parametrization"].update(trend="centered"),
        per_level("store") | REPORT | COMPARED,
    ),
    "a level's sampler settings": (
        lambda c: c["levels"]["region"]["inference"].update(target_accept=0.95),
        per_level("region", jobs={"fit", "posterior_check", "forecast"}) | REPORT | COMPARED,
    ),
    # region keeps its own draws: only the store's fit chain reruns, and the bottom model's (it has none of its own)
    "the top-level draws": (
        lambda c: c["inference"].update(draws=120),
        per_level("store", jobs={"fit", "posterior_check", "forecast"}) | REPORT | BOTTOM,
    ),
    "the forecast horizon": (
        lambda c: c["forecast"].update(horizon=4),
        per_level("store", "region", jobs={"forecast"}) | REPORT | COMPARED,
    ),
    # planned prices and promotions reach the forecasts only: not a fit, not the prior checks
    "a forecast plan": (
        lambda c: c["forecast"].update(plan="data/plan.csv"),
        {"ingest_plan"} | per_level("store", "region", jobs={"forecast"}) | REPORT | COMPARED,
    ),
    "the bottom model's effects": (
        lambda c: c["bottom"]["effects"].update(trend="shared"),
        BOTTOM | {"report", "all"},
    ),
    # events reach the bottom model only (its fit and forecasts): not a level, not ingest
    "an events file": (
        lambda c: c["bottom"].update(events="data/events.csv"),
        BOTTOM | {"report", "all"},
    ),
    "the bottom model's sampler settings": (
        lambda c: c["bottom"].update(inference={"target_accept": 0.95}),
        BOTTOM | {"report", "all"},
    ),
    "a column role": (lambda c: c["columns"].update(promotion=None), EVERY_JOB),
    "the description": (lambda c: c.update(description="shown in the report only"), {"report", "all"}),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edit_reruns_exactly_the_jobs_that_depend_on_it(finished_run, edit):
    change, expected = EDITS[edit]
    assert dry_run_after(finished_run, change) == expected


def test_quick_mode_writes_elsewhere_with_fewer_draws_and_says_so(finished_run):
    """--config quick=true plans its own DAG under results/quick/ (every job, without the pooling comparison
    even where the config asks for it) whose fits have at most 300 draws, and leaves the full run's results
    complete. Only the two level fits are run: the rest of the quick DAG is the same rules as the full run's;
    that its report says "quick mode" is hbm.config.quick_analysis's description (tests/test_config.py),
    which every report shows (tests/test_report_safety.py)."""
    import arviz as az

    path = finished_run / CONFIG
    original = path.read_text()
    cfg = yaml.safe_load(original)
    cfg["inference"]["draws"] = cfg["levels"]["region"]["inference"]["draws"] = 1000
    cfg["checks"]["pooling_comparison"] = True
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    quick = finished_run / "results" / "quick" / "retail"
    try:
        assert planned(snakemake(finished_run, "-n", "--config", "quick=true")) == EVERY_JOB
        snakemake(finished_run, *(f"results/quick/retail/fits/{level}/posterior.nc" for level in ("store", "region")),
                  "--config", "quick=true")
    finally:
        path.write_text(original)
    for level in ("store", "region"):
        assert az.from_netcdf(quick / "fits" / level / "posterior.nc").posterior.sizes["draw"] == 300
    assert not (quick / "pooling").exists()
    assert sorted(p.name for p in (finished_run / "results").iterdir()) == ["quick", "retail"]
    assert planned(snakemake(finished_run, "-n")) == set()
