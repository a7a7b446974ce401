"""Figures for the checks and the report (arviz-plots where it has the plot, matplotlib backend). Each returns a
matplotlib Figure (a PlotCollection's figure for the arviz-plots ones)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hbm.models import LIKELIHOOD  # noqa: E402

RANK_ALPHA = 0.01  # level of arviz-plots' multi-chain uniformity test on the rank plots
LOO_PIT_BAND_PROB = 0.95  # simultaneous band of the LOO-PIT ECDF difference
LOO_PIT_POINTS = 100  # evaluation points of the LOO-PIT ECDF (and its band): k / 101, k = 1..100


def _figure(pc):
    """The matplotlib Figure of an arviz-plots PlotCollection."""
    return pc.get_viz("figure")


def rank(idata, var_names):
    """Rank plots of the population-level parameters (arviz-plots ``plot_rank``): per chain, the ECDF of the
    chain's fractional ranks (ranks over all chains, scaled to 0..1) minus the uniform CDF. Chains that
    mix stay near zero; a p-value below ``RANK_ALPHA`` (multi-chain uniformity test) flags a variable,
    and its most deviating ranks are marked. With one chain (no multi-chain test) the ranks of its
    thinned draws are drawn with the 1 - ``RANK_ALPHA`` simultaneous envelope of a uniform ECDF."""
    import arviz_plots as azp

    names = [v for v in var_names if v in idata["posterior"].data_vars]
    post = idata["posterior"].to_dataset()[names]
    panels = sum(int(np.prod([n for d, n in post[v].sizes.items() if d not in ("chain", "draw")])) for v in names)
    cols = min(4, max(panels, 1))
    rows = -(-panels // cols)
    multi = post.sizes["chain"] > 1
    pc = azp.plot_rank(idata, var_names=names, method="mtc_c" if multi else "envelope",
                       envelope_prob=1 - RANK_ALPHA, backend="matplotlib", col_wrap=cols,
                       figure_kwargs={"figsize": (3.3 * cols + 0.8, 2.4 * rows + 0.7), "figsize_units": "inches",
                                      "sharex": False, "layout": "constrained"})
    if multi:
        pc.add_legend("chain", loc="outside right upper", fontsize=8)
        detail = (f"p: multi-chain uniformity test; below {RANK_ALPHA:g} the chains disagree, "
                  "dots: the ranks that deviate most")
    else:
        detail = f"one chain, thinned; grey: {100 * (1 - RANK_ALPHA):g}% simultaneous envelope of a uniform ECDF"
    fig = _figure(pc)
    fig.suptitle(f"Rank plots: ECDF of each chain's fractional ranks minus the uniform CDF\n({detail})",
                 fontsize=10)
    return fig


def predictive(idata, group: str, plausible_range=None, title: str = "", log1p: bool = False,
               num_samples: int = 100):
    """Observed distribution (black) against ``num_samples`` predictive datasets (``group`` is "prior" or
    "posterior"; arviz-plots ``plot_ppc_dist``), with the plausible range as dashed lines: kernel density
    estimates, or with ``log1p`` ECDFs of log(1 + y) (the families whose ``plot_scale`` is ``log1p``, the
    log-link families: their prior predictive tails span orders of magnitude, and counts' few distinct
    values make densities spiky).
    """
    import xarray as xr
    import arviz_plots as azp
    from matplotlib.lines import Line2D

    pred_group = f"{group}_predictive"
    pred = idata[pred_group].to_dataset()[[LIKELIHOOD]]
    # only the draws shown are converted (evenly spaced along each chain): a large level's predictive is
    # draws x rows, and every conversion below would copy it whole
    step = max(1, pred.sizes["chain"] * pred.sizes["draw"] // num_samples)
    pred = pred.isel(draw=slice(None, None, step)).astype("float64")
    obs = idata["observed_data"].to_dataset()[[LIKELIHOOD]].astype("float64")
    if log1p:
        pred, obs = np.log1p(pred.clip(min=0)), np.log1p(obs.clip(min=0))  # log-link targets are never negative
        plausible_range = None if plausible_range is None else [np.log1p(max(x, 0)) for x in plausible_range]
    dt = xr.DataTree.from_dict({pred_group: pred, "observed_data": obs})
    shown = min(num_samples, pred.sizes["chain"] * pred.sizes["draw"])
    pc = azp.plot_ppc_dist(dt, group=pred_group, var_names=[LIKELIHOOD], kind="ecdf" if log1p else "kde",
                           num_samples=shown, backend="matplotlib",
                           visuals={"observed_dist": {"color": "black", "linewidth": 1.8},
                                    "predictive_dist": {"color": "tab:blue", "alpha": 0.25},
                                    "title": False, "remove_axis": False},
                           figure_kwargs={"figsize": (8, 4.5), "figsize_units": "inches"})
    fig = _figure(pc)
    ax = fig.axes[0]
    handles = [Line2D([], [], color="tab:blue", alpha=0.5, label=f"{group} predictive ({shown} draws)"),
               Line2D([], [], color="black", lw=1.8, label="observed")]
    if plausible_range is not None:
        for x in plausible_range:
            ax.axvline(x, color="crimson", ls="--", lw=1)
        handles.append(Line2D([], [], color="crimson", ls="--", lw=1, label="plausible range"))
    ax.legend(handles=handles, fontsize=8, loc="lower right" if log1p else "upper right")
    ax.set_xlabel(f"log(1 + {LIKELIHOOD})" if log1p else LIKELIHOOD)
    if log1p:
        ax.set_ylabel("ECDF")
    else:
        ax.set_ylabel("density")
        ax.set_yticks([])
    ax.set_title(title)
    return fig


def loo_pit(pit, prob: float = LOO_PIT_BAND_PROB, title: str = ""):
    """ECDF of the LOO-PIT values minus the uniform CDF, at k / 101 (k = 1..100), with the ``prob``
    simultaneous band of a uniform ECDF (Säilynoja et al. 2022, :func:`hbm.sbc.ecdf_band`): inside the
    band everywhere means calibrated predictive distributions.

    ``pit``: the values of :func:`hbm.posterior_check.loo_pit_values` (randomized for counts). An
    InferenceData is accepted too (its values are then computed with seed 0).
    """
    from hbm.sbc import ecdf_band

    if hasattr(pit, "children"):  # an InferenceData (DataTree): the values of posterior_check, seed 0
        from hbm.posterior_check import loo_pit_values

        pit = loo_pit_values(pit, np.random.default_rng(0))
    pit = np.sort(np.asarray(pit, dtype=float).ravel())
    n = pit.size
    z, lower, upper = ecdf_band(n, LOO_PIT_POINTS, prob)
    ecdf = np.searchsorted(pit, z, side="right") / n
    outside = (ecdf < lower - 1e-12) | (ecdf > upper + 1e-12)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(z, lower - z, upper - z, color="0.85", step="mid", lw=0,
                    label=f"{100 * prob:g}% simultaneous band")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.plot(z, ecdf - z, color="C3" if outside.any() else "C0", drawstyle="steps-mid",
            label="ECDF of the LOO-PIT minus uniform CDF")
    if outside.any():
        ax.scatter(z[outside], (ecdf - z)[outside], s=12, color="C3", zorder=3, label="outside the band")
    ax.set_xlim(0, 1)
    ax.set_xlabel("LOO-PIT")
    ax.set_ylabel("ECDF difference")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or f"LOO-PIT of {n} observations: ECDF difference, {100 * prob:g}% simultaneous band")
    return fig


def shrinkage(raw_mean, raw_n, post_mean, post_lo, post_hi, labels, level: str, pooled_mean=None,
              scale: str = "identity"):
    """Partially pooled group means against the groups' raw means."""
    fig, ax = plt.subplots(figsize=(7, 6))
    raw_mean, post_mean = np.asarray(raw_mean), np.asarray(post_mean)
    sizes = 15 + 85 * np.asarray(raw_n) / max(1, np.max(raw_n))
    ax.errorbar(raw_mean, post_mean, yerr=[post_mean - post_lo, post_hi - post_mean], fmt="none",
                ecolor="0.6", lw=1, zorder=1)
    ax.scatter(raw_mean, post_mean, s=sizes, color="tab:blue", zorder=2, label="group (size ~ observations)")
    lo = float(np.min([raw_mean.min(), np.min(post_lo)]))
    hi = float(np.max([raw_mean.max(), np.max(post_hi)]))
    ax.plot([lo, hi], [lo, hi], color="0.3", ls=":", lw=1, label="no pooling (y = x)")
    if pooled_mean is not None:
        ax.axhline(pooled_mean, color="tab:orange", ls="--", lw=1, label="population mean (mu)")
    if len(labels) <= 15:
        for x, y, t in zip(raw_mean, post_mean, labels):
            ax.annotate(str(t), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, parse_math=False)
    ax.set_xlabel("log of the raw group mean of the target" if scale == "log" else "raw group mean of the target")
    ax.set_ylabel("posterior mean of theta (90% interval)")
    ax.set_title(f"Shrinkage of {level} means toward the population")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def forecast(history, forecasts, units, unit_column: str, target: str, level: str, history_periods: int = 78,
             grid: dict | None = None, time: str | None = None):
    """Recent history, held-out observations and forecast median with 50% / 90% intervals of some units.

    With the data's time ``grid`` the x axis shows dates (or the integer periods of an integer grid), labelled
    with the ``time`` column's name; without it, period indices on the grid.
    """
    import matplotlib.dates as mdates

    from hbm.ingest import PERIOD, period_times

    def x(periods):
        return period_times(grid, periods) if grid else np.asarray(periods)

    dates = bool(grid) and grid["kind"] != "integer"
    n = max(1, len(units))
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 2.6 * nrows), squeeze=False)
    for ax, u in zip(axes.ravel(), units):
        h = history.loc[history[unit_column].astype(str) == u].sort_values(PERIOD)
        h = h.loc[h[PERIOD] > h[PERIOD].max() - history_periods]
        f = forecasts.loc[forecasts["unit"] == u].sort_values(PERIOD)
        ax.plot(x(h[PERIOD]), h[target], color="0.25", lw=1, label="fitted data")
        fx = x(f[PERIOD])
        ax.fill_between(fx, f["q05"], f["q95"], color="tab:blue", alpha=0.2, lw=0, label="90% interval")
        ax.fill_between(fx, f["q25"], f["q75"], color="tab:blue", alpha=0.35, lw=0, label="50% interval")
        ax.plot(fx, f["median"], color="tab:blue", lw=1.2, label="forecast median")
        held = f.loc[f["kind"] == "holdout"]
        if len(held):
            ax.scatter(x(held[PERIOD]), held["observed"], s=10, color="crimson", zorder=3, label="held out")
        if dates:
            locator = mdates.AutoDateLocator(maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_title(f"{level} {u}", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.supxlabel(time if grid and time else "period (index on the data's time grid)", fontsize=9)
    fig.supylabel(target, fontsize=9)
    fig.suptitle(f"Forecasts of the largest {level} units")
    fig.tight_layout()
    return fig


def components(summary, series, log_link: bool, grid: dict | None = None, time: str | None = None):
    """What each term of the bottom model contributes to some series over time (:func:`hbm.bottom.components`):
    one panel per series, a line (median) and 90% band per effect, the intercept left out (a constant), the
    fitted periods before the dashed line and the forecast ones after it. For a log link each term is shown as
    the factor it multiplies the mean by (``exp``; 1 = no effect), else as its part of the mean.

    ``summary``: rows of (``series``, ``_period``, ``effect``, ``q05``, ``median``, ``q95``, ``kind``)."""
    import matplotlib.dates as mdates

    from hbm.ingest import PERIOD, period_times

    def x(periods):
        return period_times(grid, periods) if grid else np.asarray(periods)

    effects = [e for e in dict.fromkeys(summary["effect"]) if e != "intercept"]
    palette = plt.get_cmap("tab10").colors  # repeated beyond ten effects (seasonalities, events, shifts, ...)
    colors = {e: palette[i % len(palette)] for i, e in enumerate(effects)}
    n = max(1, len(series))
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 2.8 * nrows), squeeze=False)
    scale = np.exp if log_link else (lambda v: v)
    for ax, s in zip(axes.ravel(), series):
        rows = summary.loc[summary["series"] == s]
        for e in effects:
            r = rows.loc[rows["effect"] == e].sort_values(PERIOD)
            px = x(r[PERIOD])
            ax.fill_between(px, scale(r["q05"]), scale(r["q95"]), color=colors[e], alpha=0.15, lw=0)
            ax.plot(px, scale(r["median"]), color=colors[e], lw=1.2, label=e)
        first = rows.loc[rows["kind"] != "fitted", PERIOD]
        if len(first):
            ax.axvline(x([first.min()])[0], color="0.4", ls="--", lw=0.8)
        ax.axhline(1.0 if log_link else 0.0, color="0.6", lw=0.6)
        if log_link:
            ax.set_yscale("log")
        if bool(grid) and grid["kind"] != "integer":
            locator = mdates.AutoDateLocator(maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_title(str(s), fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="upper left", ncol=min(4, len(effects)))
    fig.supxlabel(time if grid and time else "period (index on the data's time grid)", fontsize=9)
    fig.supylabel("factor on the mean (log scale)" if log_link else "part of the mean", fontsize=9)
    fig.suptitle("What the bottom model's terms contribute to its largest series (forecasts after the dashed line)")
    fig.tight_layout()
    return fig
