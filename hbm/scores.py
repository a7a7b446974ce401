"""Forecast scores: sample CRPS, central-interval coverage, seasonal naive benchmark, MASE.

Pure numpy functions. Conventions: predictive draws have shape ``(S, *shape)`` (S draws for each
observation), observations ``y`` have shape ``shape``; NaN in ``y`` marks a missing observation.

References
----------
- Gneiting, T. & Raftery, A. E. (2007). Strictly proper scoring rules, prediction, and estimation.
  JASA 102(477), 359-378.
- Gneiting, T., Raftery, A. E., Westveld, A. H. & Goldman, T. (2005). Calibrated probabilistic
  forecasting using ensemble model output statistics and minimum CRPS estimation. Mon. Wea. Rev. 133,
  1098-1118 (closed-form CRPS of the normal distribution).
- Jordan, A., Krüger, F. & Lerch, S. (2019). Evaluating probabilistic forecasts with scoringRules.
  J. Stat. Softw. 90(12) (sample CRPS computed from the sorted sample).
- Hyndman, R. J. & Koehler, A. B. (2006). Another look at measures of forecast accuracy.
  Int. J. Forecast. 22(4), 679-688 (MASE).
- Hyndman, R. J. & Athanasopoulos, G. Forecasting: Principles and Practice, 3rd ed., sec. 5.2
  (seasonal naive method).
"""

from __future__ import annotations

import math

import numpy as np


def _draws_and_y(draws: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(draws, dtype=float)
    obs = np.asarray(y, dtype=float)
    if x.ndim != obs.ndim + 1 or x.shape[1:] != obs.shape:
        raise ValueError(f"draws must have shape (S, *y.shape) = (S, *{obs.shape}), got {x.shape}")
    if x.shape[0] < 1:
        raise ValueError("draws must hold at least one draw per observation")
    return x, obs


def crps_sample(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-observation CRPS of the empirical predictive distribution of ``draws`` (shape (S, n)) at ``y`` (n,).

    CRPS(F_S, y) = mean_i |x_i - y| - 1/2 mean_{i,j} |x_i - x_j|   (Gneiting & Raftery 2007, eq. 21),

    the exact CRPS of the empirical distribution of the S draws (the "energy"/V-statistic form; its
    second term is biased low by a factor (S-1)/S compared with the "fair" U-statistic version).
    The double sum is computed in O(S log S) from the sorted draws x_(1) <= ... <= x_(S):

        sum_{i,j} |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i) = 2 sum_{k=1}^{S-1} k (S - k) (x_(k+1) - x_(k)),

    the last (gap) form being used: all its terms are >= 0, so there is no cancellation and a degenerate
    predictive (all draws equal c) gives exactly |y - c|. Lower is better; units are those of y.
    NaN in ``y`` (or in an observation's draws) gives NaN for that observation. Any trailing shape
    works: ``draws`` (S, *shape) with ``y`` of shape ``shape``.
    """
    x, obs = _draws_and_y(draws, y)
    s = x.shape[0]
    abs_err = np.abs(x - obs).mean(axis=0)  # NaN where y is NaN
    gaps = np.diff(np.sort(x, axis=0), axis=0)  # (S-1, *shape), NaN draws sort last -> NaN gaps
    k = np.arange(1, s, dtype=float)
    weights = (k * (s - k)).reshape((s - 1,) + (1,) * obs.ndim)
    spread = (weights * gaps).sum(axis=0) / float(s) ** 2  # = 1/2 mean_{i,j} |x_i - x_j|
    return abs_err - spread


def quantile_bounds(draws: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Central ``width`` interval of the draws (shape (S, ...)) per observation: the quantiles (1-w)/2 and (1+w)/2.

    Quantiles are numpy's default (linear interpolation, Hyndman & Fan type 7). ``width`` in (0, 1].
    """
    if not 0.0 < width <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    x = np.asarray(draws, dtype=float)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError("draws must hold at least one draw per observation")
    lo, hi = np.quantile(x, [(1.0 - width) / 2.0, (1.0 + width) / 2.0], axis=0)
    return lo, hi


def interval_coverage(draws: np.ndarray, y: np.ndarray, width: float) -> float:
    """Share of observations with lo <= y <= hi, (lo, hi) = :func:`quantile_bounds` (draws, width).

    Observations with NaN ``y`` are ignored; NaN if none are left, or if a used bound is NaN
    (NaN draws). A calibrated forecast has coverage close to ``width``.
    """
    x, obs = _draws_and_y(draws, y)
    lo, hi = quantile_bounds(x, width)
    keep = ~np.isnan(obs)
    if not keep.any() or np.isnan(lo[keep]).any() or np.isnan(hi[keep]).any():
        return float("nan")
    inside = (lo[keep] <= obs[keep]) & (obs[keep] <= hi[keep])
    return float(inside.mean())


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Seasonal naive forecast of one series (1-D, oldest first) for the next ``horizon`` periods.

    With T = len(history) (1-based times):  y_hat[T+h] = y[T + h - season * ceil(h / season)],
    i.e. the value one season earlier, the last observed season repeated for h > season
    (Hyndman & Athanasopoulos, FPP3 sec. 5.2). ``season = 1`` is the naive last-value forecast.
    Where that value is NaN (missing period), or lies before the start of a history shorter than one
    season, the forecast is the last non-NaN value of the history. Raises ValueError if the history
    has no non-NaN value.
    """
    y = np.asarray(history, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"history must be 1-D, got shape {y.shape}")
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season}")
    if int(horizon) != horizon or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon}")
    season, horizon = int(season), int(horizon)
    observed = np.flatnonzero(~np.isnan(y))
    if observed.size == 0:
        raise ValueError("history has no non-NaN value")
    last = y[observed[-1]]
    t = y.size
    out = np.empty(horizon)
    for h in range(1, horizon + 1):
        idx = t - 1 + h - season * math.ceil(h / season)  # 0-based index into history
        value = y[idx] if idx >= 0 else np.nan
        out[h - 1] = last if np.isnan(value) else value
    return out


def mase_scale(history: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive method: mean |y_t - y_{t-season}| over pairs with both non-NaN.

    The MASE denominator of Hyndman & Koehler (2006). If the history is shorter than season + 1 (no
    seasonal pair exists), season = 1 is used instead. NaN if there is no pair at all.
    """
    y = np.asarray(history, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"history must be 1-D, got shape {y.shape}")
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season}")
    lag = int(season) if y.size >= season + 1 else 1
    if y.size < lag + 1:
        return float("nan")
    diff = np.abs(y[lag:] - y[:-lag])
    diff = diff[~np.isnan(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def mase(y: np.ndarray, y_hat: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error: mean |y - y_hat| / scale over non-NaN ``y`` (Hyndman & Koehler 2006).

    ``scale`` is normally :func:`mase_scale` of the training history. NaN if ``scale`` is 0 or NaN,
    or no ``y`` is non-NaN; a NaN ``y_hat`` at a non-NaN ``y`` gives NaN.
    """
    obs = np.asarray(y, dtype=float)
    pred = np.asarray(y_hat, dtype=float)
    if obs.shape != pred.shape:
        raise ValueError(f"y and y_hat must have the same shape, got {obs.shape} and {pred.shape}")
    scale = float(scale)
    keep = ~np.isnan(obs)
    if not scale or math.isnan(scale) or not keep.any():
        return float("nan")
    return float(np.abs(obs[keep] - pred[keep]).mean() / scale)
