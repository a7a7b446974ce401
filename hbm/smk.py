"""The bridge between a Snakemake ``script:`` and one hbm function.

Each script in ``workflow/scripts/`` is one call to :func:`run`: it sends logging and warnings to the
job's log file (and the log lines to stderr), runs the stage function, and turns an
:class:`hbm.errors.HbmError` into a one-paragraph message and exit status 1, without a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings

from hbm.errors import HbmError


class _LogFile(logging.FileHandler):
    """The job's log file. If it cannot be written (a full disk), the message still reaches stderr: no
    "--- Logging error ---" traceback after it."""

    def handleError(self, record):
        pass


def setup_logging(log_path=None) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(_LogFile(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    # arviz_stats logs an INFO line per variable for a 1-chain fit ("Shape validation failed")
    for noisy in ("pymc", "pytensor", "arviz", "arviz_base", "arviz_stats", "arviz_plots", "numba", "jax",
                  "matplotlib", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")


def run(smk, func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` for the Snakemake job ``smk``; exit 1 with a clear message on HbmError."""
    # No compile-cache set-up here (hbm.cache.install): the samplers install it before they compile
    # (hbm.fit.sample, hbm.sbc), the only numba code of a job; importing numba and PyTensor for it took
    # 3.5 s in every job, most of an ingest's or a report's time.
    setup_logging(smk.log[0] if smk.log else None)
    try:
        return func(*args, **kwargs)
    except HbmError as e:
        logging.getLogger("hbm").error("%s", e)
        sys.exit(1)
    except Exception:
        logging.getLogger("hbm").exception("unexpected error (a bug in hbm: please report it with this log)")
        sys.exit(1)


def optional_file(value):
    """A named input that an input function gives as one file or none (``[]``): the path, or None. (A named
    input of one file reads as its path, of none as an empty list.)"""
    if isinstance(value, str):
        return value
    return str(value[0]) if len(value) else None
