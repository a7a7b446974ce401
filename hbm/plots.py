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


def predictive(idata, group: str, plausible_range=None, title: str = ""):
    """Observed distribution against predictive draws (``group`` is "prior" or "posterior")."""
    import arviz as az

    draws = idata[f"{group}_predictive"].sizes
    ax = az.plot_ppc(idata, group=group, var_names=[LIKELIHOOD], random_seed=0,
                     num_pp_samples=min(100, draws["chain"] * draws["draw"]),
                     figsize=(8, 4.5), observed=True, legend=True)
    ax = np.ravel(ax)[0]
    if plausible_range is not None:
        for x in plausible_range:
            ax.axvline(x, color="crimson", ls="--", lw=1)
        ax.text(0.01, 0.97, "dashed: plausible range", transform=ax.transAxes, va="top", color="crimson", fontsize=8)
    ax.set_title(title)
    return ax.figure


def loo_pit(idata):
    """LOO-PIT ECDF difference with simultaneous bands: inside the band means calibrated."""
    import arviz as az

    ax = az.plot_loo_pit(idata, y=LIKELIHOOD, ecdf=True, figsize=(8, 4))
    ax = np.ravel(ax)[0]
    ax.set_title("LOO-PIT (ECDF difference; the band is the 94% simultaneous envelope)")
    return ax.figure


def shrinkage(raw_mean, raw_n, post_mean, post_lo, post_hi, labels, level: str, pooled_mean=None):
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
    ax.set_xlabel("raw group mean of the target")
    ax.set_ylabel("posterior mean of theta (90% interval)")
    ax.set_title(f"Shrinkage of {level} means toward the population")
    ax.legend(fontsize=8, loc="upper left")
    return fig
