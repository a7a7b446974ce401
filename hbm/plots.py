"""Figures for the checks and the report (ArviZ plots where ArviZ has one). Each returns a Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hbm.models import LIKELIHOOD  # noqa: E402


def rank(idata, var_names):
    """Rank plots of the population-level parameters: flat bars when the chains mix."""
    import arviz as az

    names = [v for v in var_names if v in idata.posterior]
    axes = az.plot_rank(idata, var_names=names, kind="vlines", figsize=(10, 1.8 * max(2, len(names))))
    return np.ravel(axes)[0].figure


def predictive(idata, group: str, plausible_range=None, title: str = "", log1p: bool = False):
    """Observed distribution against predictive draws (``group`` is "prior" or "posterior").

    ``log1p``: compare log(1 + y) (counts, whose prior predictive tails span orders of magnitude).
    """
    import arviz as az

    if log1p:
        idata = az.InferenceData(**{g: np.log1p(idata[g][[LIKELIHOOD]].astype("float64"))
                                    for g in (f"{group}_predictive", "observed_data")})
        plausible_range = None if plausible_range is None else [np.log1p(max(x, 0)) for x in plausible_range]
    draws = idata[f"{group}_predictive"].sizes
    ax = az.plot_ppc(idata, group=group, var_names=[LIKELIHOOD], random_seed=0,
                     num_pp_samples=min(100, draws["chain"] * draws["draw"]),
                     figsize=(8, 4.5), observed=True, legend=True)
    ax = np.ravel(ax)[0]
    if plausible_range is not None:
        for x in plausible_range:
            ax.axvline(x, color="crimson", ls="--", lw=1)
        ax.text(0.01, 0.97, "dashed: plausible range", transform=ax.transAxes, va="top", color="crimson", fontsize=8)
    if log1p:
        ax.set_xlabel(f"log(1 + {LIKELIHOOD})")
    ax.set_title(title)
    return ax.figure


def loo_pit(idata):
    """LOO-PIT ECDF difference with simultaneous bands: inside the band means calibrated."""
    import arviz as az

    ax = az.plot_loo_pit(idata, y=LIKELIHOOD, ecdf=True, figsize=(8, 4))
    ax = np.ravel(ax)[0]
    ax.set_title("LOO-PIT (ECDF difference; the band is the 94% simultaneous envelope)")
    return ax.figure


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


def forecast(history, forecasts, units, unit_column: str, target: str, level: str, history_periods: int = 78):
    """Recent history, held-out observations and forecast median with 50% / 90% intervals of some units."""
    from hbm.ingest import PERIOD

    n = max(1, len(units))
    ncols = 2 if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(11, 2.6 * nrows), squeeze=False)
    for ax, u in zip(axes.ravel(), units):
        h = history.loc[history[unit_column].astype(str) == u].sort_values(PERIOD)
        h = h.loc[h[PERIOD] > h[PERIOD].max() - history_periods]
        f = forecasts.loc[forecasts["unit"] == u].sort_values(PERIOD)
        ax.plot(h[PERIOD], h[target], color="0.25", lw=1, label="fitted data")
        ax.fill_between(f[PERIOD], f["q05"], f["q95"], color="tab:blue", alpha=0.2, lw=0, label="90% interval")
        ax.fill_between(f[PERIOD], f["q25"], f["q75"], color="tab:blue", alpha=0.35, lw=0, label="50% interval")
        ax.plot(f[PERIOD], f["median"], color="tab:blue", lw=1.2, label="forecast median")
        held = f.loc[f["kind"] == "holdout"]
        if len(held):
            ax.scatter(held[PERIOD], held["observed"], s=10, color="crimson", zorder=3, label="held out")
        ax.set_title(f"{level} {u}", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    fig.supxlabel("period (index on the data's time grid)", fontsize=9)
    fig.supylabel(target, fontsize=9)
    fig.suptitle(f"Forecasts of the largest {level} units")
    fig.tight_layout()
    return fig
