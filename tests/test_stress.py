"""Small versions of the stress battery (benchmarks/stress.py): shapes that break one parametrization or
the other, fitted with hbm's defaults only, must pass every diagnostic (after escalation) and cover the
truth. The full battery is `make bench CASES=stress`."""

import pytest

from benchmarks.stress import SHAPES, run_shape

pytestmark = pytest.mark.slow

SMALL = {
    # centered is right: a few groups, each pinned down by its data
    "few_big": {"students_min": 100, "students_max": 100},
    # non-centered is right: one value per group, spread below the noise
    "many_single": {"schools": 60},
    # a mixed vector: 1 to 200 values per group
    "unbalanced": {"schools": 20},
    # intermittent counts at the product level
    "half_zeros": {"products": 9, "weeks": 52},
}


@pytest.mark.parametrize("shape", list(SMALL))
def test_a_shape_fitted_with_defaults_passes_and_covers_the_truth(shape):
    r = run_shape(shape, seed=3, sizes=SMALL[shape], inference={"chains": 2})
    assert r["passed"], r
    assert r["attempts"] <= 3
    # 90 % intervals: with 3 to 60 true values, a coverage far below 0.9 means the inference is off
    assert r["coverage_90"] >= (0.6 if r["truths"] >= 10 else 1 / 3), r
    assert set(r["parametrization"]) >= {"intercept"}


def test_the_battery_spans_the_regimes_the_issue_names():
    assert len(SHAPES) >= 12
    whats = " ".join(w for _, _, w in SHAPES.values())
    for regime in ("3 groups", "300 groups", "1 value", "200 values", "tiny", "large", "single digits",
                   "thousands", "half", "3 parents", "30 parents"):
        assert regime in whats, regime
