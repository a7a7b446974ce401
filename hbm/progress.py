"""Progress of a long fit in its job log: draws done, divergences so far, time left.

PyMC hands nutpie a progress callback (``pymc.sampling.mcmc.NutpieProgressBarManager.update``, called with
one ``nutpie.ChainProgress`` per chain several times a second) and draws a terminal progress bar with it,
which in a job's log file is noise. :func:`logged` swaps that manager, for one ``pm.sample`` call, for
:class:`ProgressLog`, which writes one line to the log at most every ``interval`` seconds. The draws do not
depend on it: the callback only reads the chains' counters.
"""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("hbm.fit")

INTERVAL = 30.0  # seconds between two progress lines


class ProgressLog:
    """Stands in for PyMC's NutpieProgressBarManager (same constructor, context manager and ``update``)."""

    interval = INTERVAL
    label = ""

    def __init__(self, chains: int, draws: int, progressbar=True, progressbar_theme=None):
        self.chains, self.draws = chains, draws
        self._start = time.monotonic()
        self._last = self._start

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, chain_progresses) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        log.info("%s%s", self.label, line(chain_progresses, now - self._start))


def line(chain_progresses, elapsed: float) -> str:
    """``1,200 of 8,000 draws (15 %, tuning included), 3 divergences so far, 45 s elapsed, about 4 min left``."""
    done = sum(int(cp.finished_draws) for cp in chain_progresses)
    total = sum(int(cp.total_draws) for cp in chain_progresses)
    divergences = sum(len(cp.divergent_draws) for cp in chain_progresses)
    left = elapsed * (total - done) / done if done else float("nan")
    return (f"{done:,} of {total:,} draws ({100 * done / max(total, 1):.0f} %, tuning included), "
            f"{divergences} divergence{'s' if divergences != 1 else ''} so far, {_duration(elapsed)} elapsed, "
            f"about {_duration(left)} left")


def _duration(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def logged(label: str = "", interval: float | None = None):
    """Within the block, ``pm.sample(nuts_sampler="nutpie")`` logs its progress instead of drawing a bar."""
    import pymc.sampling.mcmc as mcmc

    cls = type("ProgressLog", (ProgressLog,), {"label": label,
                                               "interval": ProgressLog.interval if interval is None else interval})
    original = mcmc.NutpieProgressBarManager
    mcmc.NutpieProgressBarManager = cls
    try:
        yield
    finally:
        mcmc.NutpieProgressBarManager = original
