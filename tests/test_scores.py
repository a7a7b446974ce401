from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from hbm import scores


def crps_normal(m: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Closed form (Gneiting et al. 2005): s * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)), z = (y - m)/s."""
    z = (y - m) / s
    return s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def crps_brute(draws: np.ndarray, y: np.ndarray) -> np.ndarray:
    """O(S^2) definition: mean |X - y| - 1/2 mean |X - X'|."""
    term1 = np.abs(draws - y).mean(axis=0)
    term2 = np.abs(draws[:, None, :] - draws[None, :, :]).mean(axis=(0, 1))
    return term1 - 0.5 * term2


# --- crps_sample ---------------------------------------------------------------------------------

def test_crps_matches_normal_closed_form():
    # Monte Carlo error of the 200,000-draw estimate, measured over 100 seeds for these five cases:
    # relative SD 0.0014-0.0026, so rtol 1e-2 is about 4 SD (the V-statistic bias, ~3e-6, is negligible).
    m = np.array([0.0, 0.0, 1.5, -2.0, 10.0])
    s = np.array([1.0, 1.0, 0.5, 2.0, 3.0])
    y = np.array([0.0, 1.5, 1.0, -5.0, 4.0])
    draws = np.random.default_rng(20240601).normal(m, s, size=(200_000, 5))
    np.testing.assert_allclose(scores.crps_sample(draws, y), crps_normal(m, s, y), rtol=1e-2)


def test_crps_closed_form_reference_value():
    # guard the reference itself: CRPS(N(0,1), 0) = 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1)/sqrt(pi)
    assert crps_normal(np.array(0.0), np.array(1.0), np.array(0.0)) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))


def test_crps_degenerate_predictive_is_absolute_error():
    c = np.array([1.5, -2.0, 0.0, 3.25])
    y = np.array([-0.25, -2.0, 7.0, 1.0])
    draws = np.broadcast_to(c, (1000, 4))
    # dyadic values: every sum is exact, so equality is exact
    np.testing.assert_array_equal(scores.crps_sample(draws, y), np.abs(y - c))
    # arbitrary values: equal up to rounding in the mean of S equal terms (~1e-14 relative)
    c2, y2 = np.array([0.1, 1 / 3]), np.array([0.7, -2.9])
    np.testing.assert_allclose(scores.crps_sample(np.broadcast_to(c2, (999, 2)), y2), np.abs(y2 - c2), rtol=1e-12)


@pytest.mark.parametrize("S", [1, 2, 7, 50])
def test_crps_matches_brute_force(S):
    rng = np.random.default_rng(S)
    draws = rng.normal(size=(S, 6)) * 3
    draws[: S // 2, 0] = 1.0  # ties
    y = rng.normal(size=6) * 3
    np.testing.assert_allclose(scores.crps_sample(draws, y), crps_brute(draws, y), rtol=0, atol=1e-12)


def test_crps_nan_y_gives_nan_and_shapes_checked():
    draws = np.random.default_rng(0).normal(size=(20, 3))
    out = scores.crps_sample(draws, np.array([0.0, np.nan, 1.0]))
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    np.testing.assert_allclose(out[[0, 2]], crps_brute(draws, np.array([0.0, 0.0, 1.0]))[[0, 2]], atol=1e-12)
    with pytest.raises(ValueError):
        scores.crps_sample(draws, np.zeros(4))


# --- interval coverage ---------------------------------------------------------------------------

def test_quantile_bounds_and_coverage_exact():
    # every observation's draws are 0, 1, ..., 100: the central 50% interval is exactly [25, 75]
    draws = np.repeat(np.arange(101.0)[:, None], 6, axis=1)
    lo, hi = scores.quantile_bounds(draws, 0.5)
    np.testing.assert_array_equal(lo, 25.0)
    np.testing.assert_array_equal(hi, 75.0)
    y = np.array([25.0, 75.0, 24.9, 96.0, 50.0, np.nan])  # in, in (closed), out, out, in, ignored
    assert scores.interval_coverage(draws, y, 0.5) == pytest.approx(3 / 5)
    assert scores.interval_coverage(draws, y, 0.9) == pytest.approx(4 / 5)  # [5, 95]: only 96 outside
    assert np.isnan(scores.interval_coverage(draws, np.full(6, np.nan), 0.5))
    with pytest.raises(ValueError):
        scores.quantile_bounds(draws, 1.5)


def test_coverage_nan_draws():
    draws = np.repeat(np.arange(101.0)[:, None], 3, axis=1)
    draws[0, 2] = np.nan
    # NaN draws only where y is missing: ignored with that observation
    assert scores.interval_coverage(draws, np.array([50.0, 99.0, np.nan]), 0.5) == pytest.approx(0.5)
    # NaN draws for a used observation: coverage undefined, not silently "outside"
    assert np.isnan(scores.interval_coverage(draws, np.array([50.0, 99.0, 50.0]), 0.5))


@pytest.mark.parametrize("width", [0.5, 0.9])
def test_coverage_near_nominal_for_calibrated_forecast(width):
    # n = 10,000 independent observations: binomial SD of the share is <= 0.005, tolerance 0.02 is 4 SD
    rng = np.random.default_rng(7)
    draws = rng.normal(size=(500, 10_000))
    y = rng.normal(size=10_000)
    assert scores.interval_coverage(draws, y, width) == pytest.approx(width, abs=0.02)
    # a predictive twice too narrow under-covers badly
    assert scores.interval_coverage(draws / 2, y, width) < width - 0.15


# --- seasonal naive ------------------------------------------------------------------------------

def test_seasonal_naive_season4_horizon6():
    history = np.array([10.0, 20.0, 30.0, 40.0, 11.0, 21.0, 31.0, 41.0])
    np.testing.assert_array_equal(scores.seasonal_naive(history, 6, 4), [11.0, 21.0, 31.0, 41.0, 11.0, 21.0])
    np.testing.assert_array_equal(scores.seasonal_naive(history, 9, 3), [21.0, 31.0, 41.0] * 3)


def test_seasonal_naive_season1_is_last_value():
    np.testing.assert_array_equal(scores.seasonal_naive(np.array([3.0, 1.0, 4.0]), 3, 1), [4.0, 4.0, 4.0])
    assert scores.seasonal_naive(np.array([3.0]), 0, 1).shape == (0,)


def test_seasonal_naive_nan_fallback():
    # season 4, T = 6: h=1 -> y[3rd] = 3; h=2 -> y[4th] is NaN -> last non-NaN (6); h=3,4 -> 5, 6; h=5 -> 3
    history = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 6.0])
    np.testing.assert_array_equal(scores.seasonal_naive(history, 5, 4), [3.0, 6.0, 5.0, 6.0, 3.0])
    # last value missing: naive forecast falls back to the last observed value
    np.testing.assert_array_equal(scores.seasonal_naive(np.array([1.0, 4.0, np.nan]), 2, 1), [4.0, 4.0])
    # history shorter than a season: periods before the start count as missing
    np.testing.assert_array_equal(scores.seasonal_naive(np.array([7.0, 8.0]), 4, 4), [8.0, 8.0, 7.0, 8.0])


def test_seasonal_naive_errors():
    with pytest.raises(ValueError, match="no non-NaN"):
        scores.seasonal_naive(np.array([np.nan, np.nan]), 2, 1)
    with pytest.raises(ValueError):
        scores.seasonal_naive(np.array([1.0, 2.0]), 2, 0)


# --- MASE ----------------------------------------------------------------------------------------

def test_mase_scale_hand_computed():
    history = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert scores.mase_scale(history, 1) == pytest.approx(7 / 4)  # |2|, |1|, |3|, |1|
    assert scores.mase_scale(history, 2) == pytest.approx(5 / 3)  # |2-1|, |5-3|, |4-2|
    assert scores.mase_scale(np.array([1.0, np.nan, 2.0, 5.0, 4.0]), 1) == pytest.approx(2.0)  # |3|, |1|
    assert scores.mase_scale(np.array([1.0, 4.0]), 4) == pytest.approx(3.0)  # too short: season 1
    assert np.isnan(scores.mase_scale(np.array([1.0]), 1))
    assert np.isnan(scores.mase_scale(np.array([1.0, np.nan, 2.0]), 1))


def test_mase_hand_computed():
    y = np.array([6.0, np.nan, 2.0])
    assert scores.mase(y, np.array([5.0, 5.0, 5.0]), 2.0) == pytest.approx(1.0)  # (1 + 3)/2 / 2


def test_mase_zero_for_seasonal_naive_on_periodic_series():
    season = 4
    series = np.tile([3.0, 7.0, 1.0, 5.0], 5)
    history, future = series[:14], series[14:]
    y_hat = scores.seasonal_naive(history, future.size, season)
    np.testing.assert_array_equal(y_hat, future)
    assert scores.mase(future, y_hat, scores.mase_scale(history, 1)) == 0.0
    # the seasonal in-sample scale of a periodic series is 0, so MASE with it is undefined
    assert scores.mase_scale(history, season) == 0.0
    assert np.isnan(scores.mase(future, y_hat, scores.mase_scale(history, season)))


def test_mase_undefined_cases():
    y = np.array([1.0, 2.0])
    assert np.isnan(scores.mase(y, y + 1, 0.0))
    assert np.isnan(scores.mase(y, y + 1, float("nan")))
    assert np.isnan(scores.mase(np.array([np.nan]), np.array([1.0]), 1.0))
