"""Figures of hbm.plots on the arviz-plots stack: each returns a matplotlib Figure that hbm.io.save_figure
writes, and shows what its caption says. Fast: fake InferenceData, no sampling."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import arviz as az

from hbm import plots
from hbm.io import save_figure
from hbm.sbc import ecdf_band

CHAINS, DRAWS, N = 4, 300, 200


def saved(fig, tmp_path, name="plot.png") -> int:
    assert isinstance(fig, Figure)
    path = tmp_path / name
    save_figure(fig, path)
    return path.stat().st_size


def test_rank_draws_one_panel_per_parameter_element_and_flags_a_stuck_chain(tmp_path):
    rng = np.random.default_rng(0)
    post = {"mu": rng.normal(size=(CHAINS, DRAWS)), "tau": np.abs(rng.normal(size=(CHAINS, DRAWS))),
            "beta": rng.normal(size=(CHAINS, DRAWS, 2)), "theta": rng.normal(size=(CHAINS, DRAWS, 5))}
    post["mu"][0] += 1.0  # chain 0 samples somewhere else
    idata = az.from_dict({"posterior": post}, dims={"beta": ["covariate"], "theta": ["group"]},
                         coords={"covariate": ["price", "promo"], "group": list("abcde")})
    fig = plots.rank(idata, ["mu", "tau", "beta", "not_in_the_model"])
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 4  # mu, tau, beta[price], beta[promo]; theta not asked for
    assert "fractional ranks" in fig.get_suptitle()
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in panels}
    p_mu = float(texts["mu"][0].split("=")[1].split("(")[0])
    p_tau = float(texts["tau"][0].split("=")[1].split("(")[0])
    assert p_mu < plots.RANK_ALPHA < p_tau
    assert saved(fig, tmp_path) > 20_000


def _predictive(group, y, y_rep):
    return az.from_dict({f"{group}_predictive": {"y": y_rep}, "observed_data": {"y": y}}, dims={"y": ["obs"]})


def test_prior_predictive_of_counts_on_the_log1p_scale_with_the_plausible_range(tmp_path):
    rng = np.random.default_rng(1)
    lam = np.exp(rng.normal(1, 2, (2, 100, 1)))  # prior predictive means over orders of magnitude
    idata = _predictive("prior", rng.poisson(3, N), rng.poisson(lam, (2, 100, N)))
    fig = plots.predictive(idata, "prior", [0, 40], "Prior predictive check: g", log1p=True)
    ax = fig.axes[0]
    dashed = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert dashed == pytest.approx([0.0, np.log1p(40)])
    assert ax.get_xlabel() == "log(1 + y)" and ax.get_title() == "Prior predictive check: g"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"prior predictive (100 draws)", "observed",
                                                                  "plausible range"}
    assert len(ax.lines) >= 100 + 1 + 2  # draws, observed, range
    assert saved(fig, tmp_path) > 20_000


def test_posterior_predictive_of_a_continuous_target(tmp_path):
    rng = np.random.default_rng(2)
    idata = _predictive("posterior", rng.normal(10, 2, N), rng.normal(10, 2, (2, 30, N)))
    fig = plots.predictive(idata, "posterior", title="Posterior predictive check: g")
    ax = fig.axes[0]
    assert not [line for line in ax.lines if line.get_linestyle() == "--"]
    assert "posterior predictive (60 draws)" in {t.get_text() for t in ax.get_legend().get_texts()}
    assert ax.get_xlabel() == "y"
    assert saved(fig, tmp_path) > 20_000


def test_loo_pit_draws_the_ecdf_difference_inside_its_simultaneous_band(tmp_path):
    rng = np.random.default_rng(3)
    fig = plots.loo_pit(rng.uniform(size=N))
    ax = fig.axes[0]
    assert "95% simultaneous band" in ax.get_title()
    z, lower, upper = ecdf_band(N, plots.LOO_PIT_POINTS, plots.LOO_PIT_BAND_PROB)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(np.min(lower - z)) and band[:, 1].max() == pytest.approx(np.max(upper - z))
    assert len(ax.collections) == 1  # no points outside
    assert saved(fig, tmp_path) > 10_000


def test_loo_pit_marks_the_points_outside_the_band():
    rng = np.random.default_rng(4)
    too_narrow = np.concatenate([rng.uniform(0, 0.05, 40), rng.uniform(0.95, 1, 40), rng.uniform(size=120)])
    ax = plots.loo_pit(too_narrow).axes[0]
    assert len(ax.collections) == 2 and len(ax.collections[1].get_offsets()) > 0
    assert "outside the band" in {t.get_text() for t in ax.get_legend().get_texts()}


def test_loo_pit_takes_an_inference_data_too():
    from hbm.posterior_check import loo_pit_values
    from scipy import stats

    rng = np.random.default_rng(5)
    y = rng.poisson(2.0, N)
    mu = 2.0 * np.exp(rng.normal(0, 0.05, (2, 200, 1)))
    idata = az.from_dict({"posterior": {"mu": mu[..., 0]}, "log_likelihood": {"y": stats.poisson(mu).logpmf(y)},
                          "posterior_predictive": {"y": rng.poisson(mu, (2, 200, N))}, "observed_data": {"y": y}},
                         dims={"y": ["obs"]})
    from_idata = plots.loo_pit(idata).axes[0].lines[-1].get_ydata()
    from_values = plots.loo_pit(loo_pit_values(idata, np.random.default_rng(0))).axes[0].lines[-1].get_ydata()
    assert np.array_equal(from_idata, from_values)


def test_rank_of_a_single_chain_draws_the_envelope_instead_of_the_multi_chain_test(tmp_path):
    rng = np.random.default_rng(6)
    idata = az.from_dict({"posterior": {"mu": rng.normal(size=(1, DRAWS)), "tau": rng.normal(size=(1, DRAWS))}})
    fig = plots.rank(idata, ["mu", "tau"])
    assert "simultaneous envelope" in fig.get_suptitle()
    assert saved(fig, tmp_path) > 10_000


def test_components_draw_one_panel_per_series_and_a_line_per_effect_but_the_intercept(tmp_path):
    import pandas as pd

    from hbm.ingest import PERIOD

    rows = []
    for s in ("a | x", "b | x", "c | y"):
        for p in range(12):
            for e, v in (("intercept", 5.0), ("trend", 0.02 * p), ("season", np.sin(p))):
                rows.append({"series": s, PERIOD: p, "kind": "fitted" if p < 9 else "holdout", "effect": e,
                             "q05": v - 0.1, "median": v, "q95": v + 0.1})
    fig = plots.components(pd.DataFrame(rows), ["a | x", "b | x", "c | y"], log_link=True)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["a | x", "b | x", "c | y"]
    assert [line.get_label() for line in shown[0].get_lines() if not line.get_label().startswith("_")] == \
        ["trend", "season"]
    season = next(line for line in shown[0].get_lines() if line.get_label() == "season")
    np.testing.assert_allclose(season.get_ydata(), np.exp(np.sin(np.arange(12))))  # a factor on the mean
    assert shown[0].get_yscale() == "log" and saved(fig, tmp_path) > 10_000
    many = pd.DataFrame([{**r, "effect": f"season_{k}"} for k in range(12) for r in rows if r["effect"] == "season"])
    fig = plots.components(many, ["a | x"], log_link=False)  # more effects than the palette has colors
    assert len([line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]) == 12
