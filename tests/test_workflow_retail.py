"""The retail workflow (count family, three levels, holdout and forecasts) on a tiny simulated chain (slow)."""

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import yaml

from hbm import simulate

from conftest import load_config, snakemake

pytestmark = pytest.mark.slow

LEVELS = ("product", "store", "region")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def retail_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("retail")
    # each store its own prices and promotions (project issue 21): the summed levels' reports must say that
    # their elasticity and lift describe a mix
    df, truth = simulate.retail({**simulate.RETAIL_TRUTH, "regions": 2, "stores": 3, "products": 6,
                                 "categories": 2, "weeks": 60})
    (wd / "data").mkdir()
    df.to_csv(wd / "data" / "sales.csv", index=False)
    (wd / "data" / "true_values.json").write_text(json.dumps(truth, default=str))
    cfg = load_config("retail_demand")
    cfg["data"]["path"] = "data/sales.csv"
    cfg["recovery"]["truth"] = "data/true_values.json"  # the tiny chain's own truth: 6 product trends
    cfg["inference"].update(draws=200, tune=200, chains=2, max_attempts=1)
    for level in cfg["levels"].values():
        level.pop("inference", None)
    cfg["forecast"].update(horizon=3, holdout=4, plot_units=2, plan="data/plan.csv")
    # the forecast plan: prod_02 at half its usual price (over the fitted weeks) in every store and week of the
    # horizon, and prod_01 promoted in store_01 in the first future week
    fitted = df.loc[df["week"] < sorted(df["week"].unique())[-4]]
    half = np.exp(np.log(fitted.loc[fitted["product"] == "prod_02", "price"]).mean()) / 2
    (wd / "data" / "plan.csv").write_text("week,product,store,price,promo\n" + "".join(
        f"{w},prod_02,{s},{half:.4f},\n" for w in ("2025-02-24", "2025-03-03", "2025-03-10")
        for s in ("store_01", "store_02", "store_03")) + "2025-02-24,prod_01,store_01,,1\n")
    cfg["checks"].update(prior_draws=50, on_failure="flag")  # tiny settings may miss the ESS bar
    # an event of region_1 in a fitted week (bottom.events)
    week = pd.Timestamp(sorted(df["week"].unique())[20])
    (wd / "data" / "events.csv").write_text(f"week,event,region\n{week:%Y-%m-%d},sale_day,region_1\n")
    cfg["bottom"]["events"] = "data/events.csv"
    (wd / "config" / "analyses").mkdir(parents=True)
    (wd / "config" / "analyses" / "retail.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({"analyses": ["config/analyses/retail.yaml"]}))
    snakemake(wd)
    return wd, df


@pytest.mark.parametrize("level, units", [("product", 6), ("store", 3), ("region", 2)])
def test_forecasts_cover_every_unit_holdout_and_horizon(retail_run, level, units):
    wd, df = retail_run
    res = wd / "results" / "retail_demand"
    f = pd.read_parquet(res / "forecasts" / f"{level}.parquet")
    assert f["unit"].nunique() == units
    assert f.groupby("kind").size().to_dict() == {"holdout": units * 4, "future": units * 3}
    weeks = sorted(df["week"].unique())
    assert sorted(f.loc[f["kind"] == "holdout", "period"].unique()) == weeks[-4:]
    assert f.loc[f["kind"] == "future", "period"].min() == "2025-02-24"  # the week after the last (2025-02-17)
    assert (f["q05"] <= f["q25"]).all() and (f["q25"] <= f["median"]).all() and (f["median"] <= f["q75"]).all()
    assert (f["q75"] <= f["q95"]).all() and (f["q05"] >= 0).all()
    held = f.loc[f["kind"] == "holdout"]
    column = {"product": "product", "store": "store", "region": "region"}[level]
    actual = df.loc[df["week"].isin(weeks[-4:])].groupby([column, "week"])["units"].sum()
    got = held.set_index(["unit", "period"])["observed"]
    np.testing.assert_array_equal(got.sort_index().to_numpy(), actual.sort_index().to_numpy())
    assert f.loc[f["kind"] == "future", "observed"].isna().all()
    scores = json.loads((res / "forecasts" / f"{level}.json").read_text())
    h = scores["holdout"]
    assert h["periods"] == 4 and h["observations"] == units * 4 and h["season_length"] == 52
    assert h["model"]["crps"] > 0 and h["seasonal_naive"]["crps"] > 0
    assert 0 <= h["model"]["coverage_50"] <= h["model"]["coverage_90"] <= 1
    assert (res / "forecasts" / f"{level}.png").read_bytes()[:4] == b"\x89PNG"


def test_fits_skip_the_holdout(retail_run):
    import arviz as az

    wd, df = retail_run
    post = az.from_netcdf(wd / "results/retail_demand/fits/region/posterior.nc")
    assert post.observed_data.sizes["obs_id"] == 2 * (60 - 4)
    assert set(post.posterior["fourier"].values) == {"sin_1", "cos_1", "sin_2", "cos_2"}


def test_coherence_compares_level_totals(retail_run):
    wd, _ = retail_run
    res = wd / "results/retail_demand"
    c = json.loads((res / "checks/forecast_coherence.json").read_text())
    assert c["levels"] == list(LEVELS) and c["reference"] == "region" and len(c["total"]) == 7
    forecasts = {lv: pd.read_parquet(res / "forecasts" / f"{lv}.parquet") for lv in LEVELS}
    first = c["total"][0]
    for lv in LEVELS:
        assert first[lv] == pytest.approx(forecasts[lv].groupby("period")["mean"].sum().iloc[0])
    pair = next(p for p in c["by_parent"] if p["child"] == "store")
    assert pair["parent"] == "region" and pair["pairs"] == 2 * 7
    assert 0.5 < pair["ratio_median"] < 2  # separately fitted levels roughly agree


def test_report_shows_forecasts_holdout_table_and_coherence(retail_run):
    wd, _ = retail_run
    html = (wd / "results/retail_demand/report.html").read_text()
    page = _Images()
    page.feed(html)
    # per level: prior, rank, shrinkage, ppc, loo-pit, forecasts (the bundled config has no pooling
    # comparison: checks.pooling_comparison false); the parameter recovery plot; the bottom model's forecasts,
    # components and rank plots
    assert len(page.images) == 3 * 6 + 1 + 3
    recovery = json.loads((wd / "results/retail_demand/validation/recovery.json").read_text())
    # product level: 3 scalars and 6 trends (its elasticity and lift describe a mix); bottom model: 10 scalars,
    # 4 season means and 6 product trends
    assert recovery["parameters"] == 3 + 6 + 10 + 4 + 6 and "Parameter recovery" in html
    assert {r["parameter"] for r in recovery["levels"]["bottom"]} >= {"elasticity", "promotion", "alpha"}
    assert "<h3>Pooling comparison</h3>" not in html and not (wd / "results/retail_demand/pooling").exists()
    for text in ("Forecasts across levels", "CRPS naive", "Coherence", "store forecasts", "held-out periods"):
        assert text in html, text
    # product, store and region sum rows whose prices differ: each level's section says so, with the spread
    assert html.count('<span class="badge warn">a mix</span>') == 3 and "use the bottom model's" in html
    mix = json.loads((wd / "results/retail_demand/checks/product/posterior_predictive.json").read_text())["mix"]
    assert mix["material"] and mix["price"]["log_price_sd_median"] > 0.02


def test_bottom_model_forecasts_add_up_at_every_level(retail_run):
    """The bottom model (product x store) is fitted once; its forecasts of every series are summed draw by
    draw to product, category, store, region and total: the levels agree exactly, and each is scored on the
    holdout beside the per-level fit of the same column."""
    wd, df = retail_run
    res = wd / "results" / "retail_demand" / "bottom"
    diag = json.loads((res / "diagnostics.json").read_text())
    assert diag["series"] == 6 * 3 and diag["observations"] == 6 * 3 * (60 - 4)
    # every product in every store: no unit pooled around another hierarchy's (hbm.model.builder.nested_units)
    assert json.loads((res / "parametrization.json").read_text())["nested"] == {}
    f = pd.read_parquet(res / "forecasts.parquet")
    assert set(f["level"]) == {"series", "product", "category", "store", "region", "total"}
    units = f.groupby("level")["unit"].nunique().to_dict()
    assert units == {"series": 18, "product": 6, "category": 2, "store": 3, "region": 2, "total": 1}
    total = f.loc[f["level"] == "total"].set_index("_period")["mean"]
    for level in ("series", "product", "store", "region", "category"):
        summed = f.loc[f["level"] == level].groupby("_period")["mean"].sum()
        np.testing.assert_allclose(summed.to_numpy(), total.loc[summed.index].to_numpy(), rtol=1e-9)
    held = f.loc[(f["level"] == "total") & (f["kind"] == "holdout")]
    weeks = sorted(df["week"].unique())
    observed = df.loc[df["week"].isin(weeks[-4:])].groupby("week")["units"].sum().to_numpy()
    np.testing.assert_allclose(held.sort_values("_period")["observed"].to_numpy(), observed)
    scores = json.loads((res / "forecasts.json").read_text())
    for level in ("product", "store", "region"):
        entry = scores["levels"][level]
        assert entry["per_level_fit"]["level"] == level and entry["per_level_fit"]["crps"] > 0
        assert 0 <= entry["holdout"]["model"]["coverage_90"] <= 1
    html = (wd / "results/retail_demand/report.html").read_text()
    assert 'id="bottom"' in html and "CRPS per-level fit" in html and "summed draw by draw" in html
    assert (res / "components.png").read_bytes()[:4] == b"\x89PNG" and "which term carries it away" in html


def test_the_forecast_plan_moves_the_planned_series_and_the_report_says_so(retail_run):
    """prod_02 at half its usual price in the horizon: elasticity -1.4 makes about 2.6 times its usual sales,
    in the bottom model's forecasts and in the product level's (whose price is the stores' sales-weighted
    mean); unplanned products stay near their holdout level; each forecast says what it assumed."""
    wd, _ = retail_run
    res = wd / "results" / "retail_demand"
    plan = pd.read_parquet(res / "data" / "plan.parquet")
    assert set(plan["column"]) == {"product", "store", "region", "_series"}
    bottom = pd.read_parquet(res / "bottom" / "forecasts.parquet")
    level = pd.read_parquet(res / "forecasts" / "product.parquet").assign(level="product")
    for f in (bottom.loc[bottom["level"] == "product"], level):
        mean = f.groupby(["unit", "kind"])["mean"].mean().unstack()
        ratio = mean["future"] / mean["holdout"]
        assert ratio["prod_02"] > 1.8, ratio.to_dict()
        assert ratio.drop("prod_02").between(0.6, 1.5).all(), ratio.to_dict()
    for path in (res / "bottom" / "forecasts.json", res / "forecasts" / "product.json"):
        assert "planned prices and promotions of data/plan.csv" in json.loads(path.read_text())["future_assumption"]
    assert "planned prices and promotions of data/plan.csv" in (res / "report.html").read_text()


def test_events_enter_the_bottom_model_and_its_report(retail_run):
    import arviz as az

    wd, _ = retail_run
    res = wd / "results" / "retail_demand"
    post = az.from_netcdf(res / "bottom" / "posterior.nc").posterior
    assert post["events"].dims == ("chain", "draw", "event") and list(post["event"].values) == ["sale_day"]
    assert "events" in json.loads(post.attrs["hbm_priors"])
    assert "events[sale_day]" in (res / "report.html").read_text()
