"""The pooling comparison (hbm/pooling.py) on synthetic InferenceData whose winner is known."""

import json

import numpy as np
import pytest
from scipy import stats

from hbm.pooling import compare_pooling, comparison, interpret, pareto_k_counts, variant_spec

N, CHAINS, DRAWS = 60, 2, 500


def idata_of(y, centre_draws, sd=1.0):
    """InferenceData of y_i ~ Normal(centre, sd): posterior draws of the centres (one per observation or
    one shared), and the pointwise log-likelihood PSIS-LOO needs."""
    import arviz as az

    c = np.broadcast_to(centre_draws, (CHAINS, DRAWS, y.size))
    return az.from_dict({"posterior": {"c": c}, "log_likelihood": {"y": stats.norm(c, sd).logpdf(y)},
                         "observed_data": {"y": y}})


def diag(passed=True, divergences=0, rhat=1.001, seed=1):
    return {"passed": passed, "seed": seed, "checks": [
        {"name": "r_hat", "label": "max R-hat", "value": rhat, "op": "<=", "threshold": 1.01, "where": "mu",
         "passed": rhat <= 1.01},
        {"name": "divergences", "label": "divergent transitions", "value": divergences, "op": "<=", "threshold": 0,
         "where": "", "passed": divergences == 0}]}


@pytest.fixture(scope="module")
def synthetic():
    """Six groups of ten whose means differ a lot (-6 ... 6): the model that knows each group's mean
    ("partial") predicts far better than one mean for all ("complete"); "none" is close to partial."""
    rng = np.random.default_rng(0)
    means = np.repeat(np.linspace(-6, 6, 6), 10)
    y = means + rng.normal(size=N)
    shape = (CHAINS, DRAWS, 1)
    group_means = means[None, None, :] + rng.normal(scale=0.3, size=(CHAINS, DRAWS, 6)).repeat(10, axis=2)
    return {
        "partial": idata_of(y, group_means),
        "complete": idata_of(y, rng.normal(0.0, 0.15, size=shape), sd=np.std(y)),
        "none": idata_of(y, group_means + rng.normal(scale=0.25, size=(CHAINS, DRAWS, 6)).repeat(10, axis=2)),
    }


def test_the_model_that_knows_the_groups_wins_clearly(synthetic):
    result = comparison(synthetic, {v: diag() for v in synthetic}, pareto_k=0.7)
    rows = {r["variant"]: r for r in result["variants"]}
    assert result["best"] == "partial" and [r["rank"] for r in result["variants"]] == [0, 1, 2]
    assert rows["partial"]["elpd_diff"] == 0 and rows["partial"]["dse"] == 0
    complete = rows["complete"]
    assert complete["elpd_diff"] > 2 * complete["dse"] > 0  # a clear loss; elpd_diff = best - this one
    assert complete["elpd_loo"] == pytest.approx(rows["partial"]["elpd_loo"] - complete["elpd_diff"])
    assert sum(r["weight"] for r in rows.values()) == pytest.approx(1.0)
    assert complete["weight"] < 0.01 and rows["partial"]["weight"] > 0.5
    assert result["observations"] == N
    for r in rows.values():
        assert sum(r["pareto_k"].values()) == N and r["bad_pareto_k"] == 0
        assert r["diagnostics"] == {"passed": True, "failures": [], "divergences": 0, "max_r_hat": 1.001, "seed": 1}
    s = result["summary"]
    assert s.startswith("Partial pooling predicts best")
    assert "Complete pooling is" in s and "more than 2 standard errors of the difference: a clear difference" in s
    assert "Stacking weights: complete pooling 0.00, partial pooling" in s and "Caution" not in s
    # no pooling: 4.2 ± 0.3 lower, far beyond 2 dse but hardly above 4
    assert "No pooling is 4.2 ± 0.3 lower (more than 2 standard errors of the difference: a clear" in s


def test_a_difference_below_4_is_small_and_one_within_2_dse_is_not_clear(synthetic):
    result = comparison(synthetic, {v: diag() for v in synthetic})
    rows = result["variants"]
    rows[1].update(elpd_diff=3.0, dse=0.5)
    rows[2].update(elpd_diff=30.0, dse=16.0)
    s = interpret(result)
    assert f"{rows[1]['label'].capitalize()} is 3.0 ± 0.5 lower (more than 2 standard errors of the difference, " \
           "but below 4: a small difference)" in s
    assert f"{rows[2]['label'].capitalize()} is 30.0 ± 16.0 lower (within 2 standard errors of the difference: " \
           "not clearly worse)" in s


def test_a_failed_variant_and_high_pareto_k_are_named(synthetic):
    diags = {"partial": diag(), "complete": diag(), "none": diag(passed=False, divergences=12, rhat=1.2)}
    result = comparison(synthetic, diags, pareto_k=0.7)
    none = next(r for r in result["variants"] if r["variant"] == "none")
    assert none["diagnostics"]["passed"] is False and none["diagnostics"]["divergences"] == 12
    assert none["diagnostics"]["failures"] == ["max R-hat 1.2 (mu) > 1.01", "divergent transitions 12 > 0"]
    assert "Caution: no pooling failed the convergence diagnostics, so its elpd is not reliable." in result["summary"]
    result["variants"][1]["bad_pareto_k"] = 3
    assert f"Pareto k ≥ 0.7: {result['variants'][1]['label']} (3)" in interpret(result)


def test_pareto_k_counts_use_the_threshold():
    assert pareto_k_counts([0.1, 0.5, 0.69, 0.7, 1.2], 0.7) == {
        "good (k < 0.5)": 1, "ok (0.5 <= k < 0.7)": 2, "bad (k >= 0.7)": 2}


def test_compare_pooling_writes_json_and_plot(synthetic, tmp_path):
    paths = {}
    for name, idata in synthetic.items():
        paths[name] = tmp_path / f"{name}.nc"
        idata.to_netcdf(paths[name])
        (tmp_path / f"{name}.json").write_text(json.dumps(diag(seed=len(name))))
    compare_pooling(paths["partial"], tmp_path / "partial.json", {v: paths[v] for v in ("complete", "none")},
                    {v: tmp_path / f"{v}.json" for v in ("complete", "none")}, tmp_path / "out/comparison.json",
                    tmp_path / "out/comparison.png", level="group", pareto_k=0.7)
    written = json.loads((tmp_path / "out/comparison.json").read_text())
    assert written["level"] == "group" and written["best"] == "partial" and written["method"] == "stacking"
    assert {r["variant"]: r["diagnostics"]["seed"] for r in written["variants"]} == {
        "partial": 7, "complete": 8, "none": 4}
    assert (tmp_path / "out/comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_variant_spec_leaves_the_level_spec_alone(spec):
    s = spec()
    v = variant_spec(s, "none")
    assert v["pooling"] == "none" and "pooling" not in s and {k: x for k, x in v.items() if k != "pooling"} == s


def test_comparison_from_lazily_read_files_gives_arviz_compare_numbers(synthetic, tmp_path):
    """PSIS-LOO a block of observations at a time (hbm.posterior_check.elpd_data), the log-likelihoods read
    from their files only as needed: az.compare's elpd, se, p, elpd_diff, dse and stacking weights, and
    az.loo's Pareto k, as from the InferenceData in memory."""
    import arviz as az

    from hbm.io import open_netcdf, write_netcdf

    diags = {name: diag() for name in synthetic}
    ref = az.compare({n: az.loo(i, pointwise=True) for n, i in synthetic.items()}, method="stacking", round_to="none")
    for name, idata in synthetic.items():
        write_netcdf(idata, tmp_path / f"{name}.nc")
    with open_netcdf(tmp_path / "partial.nc", lazy=("log_likelihood",)) as p, \
            open_netcdf(tmp_path / "complete.nc", lazy=("log_likelihood",)) as c, \
            open_netcdf(tmp_path / "none.nc", lazy=("log_likelihood",)) as n:
        assert not p["log_likelihood"]["y"].variable._in_memory
        out = comparison({"partial": p, "complete": c, "none": n}, diags)
    rows = {r["variant"]: r for r in out["variants"]}
    for name, r in ref.iterrows():
        got = rows[name]
        assert got["rank"] == int(r["rank"])
        assert got["elpd_loo"] == pytest.approx(float(r["elpd"]), rel=1e-12)
        assert got["se"] == pytest.approx(float(r["se"]), rel=1e-10)
        assert got["p_loo"] == pytest.approx(float(r["p"]), rel=1e-10)
        assert got["elpd_diff"] == pytest.approx(-float(r["elpd_diff"]), abs=1e-9)
        assert got["dse"] == pytest.approx(float(r["dse"]), abs=1e-9)
        assert got["weight"] == pytest.approx(float(r["weight"]), abs=1e-6)
        assert got["max_pareto_k"] == pytest.approx(float(np.max(az.loo(synthetic[name], pointwise=True).pareto_k)),
                                                    rel=1e-12)
    assert out["observations"] == N and rows["complete"]["elpd_diff"] > 10
