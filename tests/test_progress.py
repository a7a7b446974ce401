"""Progress lines of a long fit (hbm.progress): what they say, how often, and that the draws do not change."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from hbm import progress


def chain(done, total, divergent=0):
    return SimpleNamespace(finished_draws=done, total_draws=total, divergent_draws=list(range(divergent)))


def test_a_line_says_draws_done_divergences_and_time_left():
    text = progress.line([chain(300, 2000, 2), chain(100, 2000, 1)], elapsed=40.0)
    assert text.startswith("400 of 4,000 draws (10 %")
    assert "3 divergences so far" in text and "40 s elapsed" in text and "about 6 min left" in text


def test_lines_are_written_at_most_once_per_interval(caplog, monkeypatch):
    clock = iter([0.0, 5.0, 31.0, 40.0, 70.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    p = progress.ProgressLog(chains=1, draws=100)
    with caplog.at_level(logging.INFO, logger="hbm.fit"):
        for done in (10, 40, 60, 90):
            p.update([chain(done, 200)])
    assert [r.getMessage().split(" of")[0] for r in caplog.records] == ["40", "90"]


@pytest.mark.slow
def test_a_nutpie_fit_logs_progress_and_gives_the_same_draws(caplog):
    import pymc as pm

    from hbm.fit import sample

    with pm.Model() as model:
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=np.arange(20.0))
    inference = {"sampler": "nutpie", "chains": 2, "draws": 300, "tune": 200, "target_accept": 0.9}
    quiet = sample(model, inference, 3)
    progress.ProgressLog.interval = 0.0
    try:
        with caplog.at_level(logging.INFO, logger="hbm.fit"):
            loud = sample(model, inference, 3, progress_label="level x: ")
    finally:
        progress.ProgressLog.interval = progress.INTERVAL
    lines = [r.getMessage() for r in caplog.records if "draws (" in r.getMessage()]
    assert lines and lines[0].startswith("level x: ") and "of 1,000 draws" in lines[-1]
    assert np.array_equal(quiet.posterior["mu"].values, loud.posterior["mu"].values)
