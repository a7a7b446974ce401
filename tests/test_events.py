"""Holidays and events of the bottom model (hbm/events.py, ``bottom.events``): the file checked like the data,
its indicators in the design, and the effect of an event recovered by a fit."""

import numpy as np
import pandas as pd
import pytest

from hbm import bottom, simulate
from hbm.aggregate import fit_rows
from hbm.errors import DataError
from hbm.ingest import PERIOD, ingest, read_observations
from hbm.model.builder import build, resolve_priors
from hbm.model.design import design

COLUMNS = {"target": "units", "time": "week", "price": "price", "promotion": "promo", "covariates": [],
           "measurement_sd": None, "series_start": "data"}
LEVELS = {"product": {"column": "product", "parents": [], "predictors": []},
          "store": {"column": "store", "parents": ["region"], "predictors": []}}
KEYS = ["product", "store", "region"]


def spec(events=True, effects=None, time_effects=False):
    return {
        "analysis": "test", "level": "bottom", "holdout": 0, "columns": COLUMNS,
        "model": {"family": "negative_binomial", "parametrization": "auto", "priors": {},
                  "trend": {"per": 52.18} if time_effects else None,
                  "seasonality": {"period": 52.18, "order": 2} if time_effects else None},
        "bottom": {"series": ["product", "store"], "hierarchies": {"product": ["product"], "store": ["store", "region"]},
                   "effects": effects or {"intercept": ["product", "store"]}, **({"events": "events.csv"} if events else {})},
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 products x 4 stores in 2 regions x 40 weeks; in weeks 10-12 the stores of region_1 sell half their
    usual units (each unit sold kept with probability 1/2: a negative binomial thinned this way is again one,
    with half the mean and the same shape, so the true event effect is exactly log 1/2)."""
    wd = tmp_path_factory.mktemp("events")
    df, _ = simulate.retail({**simulate.RETAIL_TRUTH, "regions": 2, "stores": 4, "products": 4, "categories": 1,
                             "weeks": 40, "seed": 5})
    weeks = sorted(df["week"].unique())
    hit = df["week"].isin(weeks[10:13]) & (df["region"] == "region_1")
    rng = np.random.default_rng(1)
    df.loc[hit, "units"] = rng.binomial(df.loc[hit, "units"].astype(int), 0.5)
    df.to_csv(wd / "sales.csv", index=False)
    ingest(wd / "sales.csv", wd / "observations.parquet", wd / "summary.json", COLUMNS, LEVELS, family="negative_binomial")
    return wd, df, weeks


def events_file(wd, text):
    (wd / "events.csv").write_text(text)
    return wd / "events.csv"


def read(wd, text):
    return bottom.read_bottom_events(events_file(wd, text), read_observations(wd / "observations.parquet"), spec())


def error(wd, text) -> str:
    with pytest.raises(DataError) as e:
        read(wd, text)
    return str(e.value).replace(f"{wd}/", "")


def test_events_file_rows_become_periods_with_their_series_keys(data):
    wd, _, weeks = data
    ev = read(wd, "week,event,region\n2024-03-11,strike,region_1\n2024-03-18,strike,region_1\n"
                  "2024-12-23,christmas,\n2024-10-07,after_the_data,\n")
    assert list(ev.columns) == ["event", "region", PERIOD]
    assert ev[PERIOD].tolist() == [10, 11, 51, 40]  # weekly from 2024-01-01; 40 is the week after the data
    assert ev["region"].tolist() == ["region_1", "region_1", None, None]  # blank: every series


@pytest.mark.parametrize("text, want", [
    ("week,event,shop\n2024-03-11,strike,x\n", "events.csv, column 'shop': unknown column"),
    ("week,region\n2024-03-11,region_1\n", "events.csv, column 'event': required column is missing"),
    ("week,event\n2024-03-11,strike\n2024-03-18, \n", "events.csv, column 'event', row 2: the event has no name"),
    ("week,event,region\n2024-03-11,strike,region_9\n",
     "events.csv, column 'region', row 1: not a value of 'region' in the data (value 'region_9')"),
    ("week,event\n2024-03-12,strike\n", "events.csv, column 'week', row 1: not on the data's time grid"),
    ("week,event\n2023-12-25,christmas\n", "events.csv, column 'week', row 1: before the data's first period"),
    ("week,event\n2024-03-11,strike\n2024-03-11,strike\n",
     "events.csv, column 'event', row 2: the same event, period and series as an earlier row"),
])
def test_a_bad_events_file_names_file_column_and_row(data, text, want):
    wd, _, _ = data
    assert want in error(wd, text)


def test_indicators_mark_the_event_s_periods_and_series_only(data):
    wd, df, _ = data
    obs = read_observations(wd / "observations.parquet")
    ev = read(wd, "week,event,region\n2024-03-11,strike,region_1\n2024-03-18,strike,region_1\n"
                  "2024-03-25,strike,region_1\n2024-05-06,sale_day,\n2024-10-07,after_the_data,\n")
    tab = bottom.table(obs, spec())
    d = design(tab, spec(), events=ev)
    x = d.effects["events"].x
    assert d.coords["event"] == ["after_the_data", "sale_day", "strike"]
    strike = (tab[PERIOD].between(10, 12) & (tab["region"] == "region_1")).to_numpy()
    np.testing.assert_array_equal(x[:, 2], strike.astype(float))
    np.testing.assert_array_equal(x[:, 1], (tab[PERIOD] == 18).to_numpy().astype(float))
    assert x[:, 0].sum() == 0  # only after the data: its coefficient rests on its prior
    model = build(d, spec())
    assert model.named_vars_to_dims["events"] == ("event",)
    assert resolve_priors(spec(), d)["events"]["sigma"] == 1.0
    # future rows (forecasts) take the fitted events' columns: the event after the data is marked there
    future = tab[tab[PERIOD] == 39].assign(**{PERIOD: 40})
    x_future = design(future, spec(), like=d, events=ev).effects["events"].x
    assert (x_future[:, 0] == 1).all() and x_future[:, 1:].sum() == 0


def test_events_along_a_hierarchy_are_pooled_like_any_effect(data):
    wd, _, _ = data
    obs = read_observations(wd / "observations.parquet")
    ev = read(wd, "week,event\n2024-05-06,sale_day\n")
    s = spec(effects={"intercept": ["product", "store"], "events": "store"})
    model = build(design(bottom.table(obs, s), s, events=ev), s)
    assert {"events", "events_store", "events_region", "events_store_sd"} <= set(model.named_vars)
    assert model.named_vars_to_dims["events_store"] == ("store", "event")


@pytest.mark.slow
def test_the_fit_recovers_an_event_that_halves_one_region_s_sales(data):
    """Truth log(1/2) = -0.69 for the strike; a sale day with no effect stays near 0."""
    import arviz as az

    from hbm.fit import sample

    wd, _, _ = data
    obs = read_observations(wd / "observations.parquet")
    ev = read(wd, "week,event,region\n2024-03-11,strike,region_1\n2024-03-18,strike,region_1\n"
                  "2024-03-25,strike,region_1\n2024-05-06,sale_day,\n")
    # the simulator's model (its trend and season too: without them a one-week event takes that week's season)
    s = spec(effects={"intercept": ["product", "store"], "trend": "product", "season": "store"}, time_effects=True)
    d = design(fit_rows(bottom.table(obs, s)), s, events=ev)
    # target_accept as the fit job starts a model with a 2-group layer (hbm.fit.first_settings)
    idata = sample(build(d, s), {"sampler": "nutpie", "chains": 2, "draws": 400, "tune": 400,
                                 "target_accept": 0.99}, seed=2, cores=2)
    assert int(idata.sample_stats["diverging"].sum()) <= 2
    s = az.summary(idata, var_names=["events"], ci_kind="eti", ci_prob=0.9, round_to="none")
    strike, sale = s.loc["events[strike]"], s.loc["events[sale_day]"]
    assert strike["eti90_lb"] <= np.log(0.5) <= strike["eti90_ub"]
    assert strike["eti90_ub"] - strike["eti90_lb"] < 1.0  # informative: 3 weeks x 8 series (the prior: 3.3)
    assert sale["eti90_lb"] <= 0.0 <= sale["eti90_ub"]
