"""Cluster resources of a job: memory (``mem_mb``) and wall-clock limit (``runtime``, minutes).

The estimates come from the number of rows a job's data has and from the sampler settings
(chains × (draws + tune)); a fit's threads are its chains, or one for a small fit (:func:`fit_threads`). Snakemake hands them to a
cluster executor (on Slurm: ``--mem`` and ``-t``). They never reach ``params:``, so a different estimate
reruns nothing and changes no result; local runs ignore them unless started with
``--resources mem_mb=...``. An analysis can replace any of them per rule under ``resources:``
(config/README.md).

The model, measured on the bundled analyses and on an 85,000-row negative binomial fit on 2 cores, then
given headroom (a job that runs out of memory or time on a cluster is killed and must be rerun):

- every job is a Python process that imports PyMC and ArviZ: ``BASE_MB`` memory and ``BASE_MINUTES``
  (which also covers compiling a model with a cold cache);
- memory grows with the largest arrays a stage holds at once: a float64 value per draw and row
  (posterior predictive draws, LOO; a fit's posterior draws, bounded by draws × rows), times the copies the
  stage makes (``COPIES``), up to the values a stage that works in blocks holds at most (``CELLS_CAP``);
  reading and checking a table costs ``ROW_BYTES`` per row;
- NUTS time grows with iterations × rows (``NUTS_SECONDS`` per row, iteration and chain: about 30 gradient
  evaluations of 0.2 µs per row); chains beyond the job's threads run one after another; work over
  draws × rows costs ``CELL_SECONDS`` per value and reading a table ``ROW_SECONDS`` per row;
  the time is then multiplied by ``TIME_SAFETY``.

Memory is rounded up to a multiple of 100 MB, time up to whole minutes. Attempt n of a job (Snakemake's
``--retries``) asks for n times both.
"""

from __future__ import annotations

import math
import os

MB = 2**20                  # Slurm's --mem counts MiB; Snakemake's mem_mb is passed through as is
BASE_MB = 1000              # Python + NumPy/PyTensor/PyMC/ArviZ imports (measured 450-900 MB RSS)
BASE_MINUTES = 5            # start-up and a cold compile
ROW_BYTES = 1024            # ingest/aggregate: every cell read as text, then typed (a few copies of a row)
ROW_SECONDS = 20e-6         # ingest/aggregate per row
NUTS_SECONDS = 6.3e-6       # per row, NUTS iteration and chain (measured: 536 s for 85,372 rows x 1,000 iterations)
CELL_SECONDS = 2e-6         # per draw x row value (posterior predictive draws, LOO, forecasts)
TIME_SAFETY = 3
# float64 copies of a draws x rows array that a stage holds at once.
# posterior_check holds its predictive draws once and the rest in bounded blocks (hbm.posterior_check):
# measured 753 MB on 4,340 rows x 4,000 draws (17 M values), 1,193 MB before the blocks.
# fit holds no such array since its log-likelihood is written a block of draws at a time
# (hbm.log_likelihood; before, 3 copies: M5's product level peaked at 7.6 GB); one copy stands for its
# posterior draws, whose scalars (deterministics included) are fewer than its rows.
COPIES = {"prior_check": 4, "fit": 1, "posterior_check": 4, "forecast": 4, "report": 2, "compare": 4}
# The draws x rows values a stage counts at most: the posterior check writes its predictive draws to its
# file as they come, PREDICTIVE_CELLS (hbm.posterior_check) at a time, and reads both files back in blocks of
# observations (measured on M5's product level, 2 x 2,000 draws x 85,372 rows: 2,182 MB, 4,824 MB when it
# held the draws whole; benchmarks/memory.py).
PREDICTIVE_CELLS = 2 ** 25
CELLS_CAP = {"posterior_check": 3 * PREDICTIVE_CELLS}
# Rules whose job is one NUTS fit of a level: the fit itself, the validation's long reference run and each
# simulation of simulation-based calibration (its sampler sizes are sbc.chains/draws/tune, one thread).
FITS = ("fit", "long_run", "sbc_simulation")

RULES = ("ingest", "aggregate", "prior_check", "fit", "long_run", "sbc_simulation", "posterior_check",
         "forecast", "coherence", "report", "compare")
# A fit whose chains would take less than this long on one thread (NUTS_SECONDS, the estimate without
# TIME_SAFETY) runs them on one thread; see fit_threads.
SMALL_FIT_SECONDS = 60
CSV_SAMPLE = MB             # a CSV's rows are counted in its first MiB and extrapolated by size beyond it


def table_rows(path) -> int | None:
    """Rows of a Parquet or CSV file (``None`` if it does not exist), cheaply.

    Parquet (recognised by its magic bytes, whatever the extension): the count in its footer. CSV: the
    lines after the header, counted in the first MiB and extrapolated by the file's size beyond it. Never
    raises for a file it cannot read: resources are estimates, and the ingest job reports a bad file.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(CSV_SAMPLE)
    except OSError:
        return None
    if head[:4] == b"PAR1":
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:  # noqa: BLE001 - a damaged file: fall back to its size
            return size // 100
    lines = head.count(b"\n") + (0 if head.endswith(b"\n") or not head else 1)
    if size > len(head) and lines:
        lines = math.ceil(lines * size / len(head))
    return max(lines - 1, 0)


def fit_threads(rows: int, chains: int = 4, draws: int = 1000, tune: int = 1000) -> int:
    """Threads (Snakemake's ``threads:``) of a job that samples one model: its chains, or 1 when the fit is
    small (estimated sampling on one thread under ``SMALL_FIT_SECONDS``).

    Compiling the model is single-threaded and takes 10-25 s with a cold cache (measured: 22 s of a 30 s fit
    of retail_demand's region level on 312 rows, sampling 7 s on 2 threads). A small fit holding every core
    leaves all but one idle for most of its run; on one thread it samples its chains one after another and
    leaves the other cores to other jobs: on 2 cores, `make run` runs two such fits side by side. The draws do
    not depend on the threads (each chain has its own seed). Decided from the data and the sampler settings
    only, never from the machine, so a cluster job asks for what the same job uses locally.
    """
    chains = max(int(chains), 1)
    serial = chains * (int(draws) + int(tune)) * max(int(rows), 0) * NUTS_SECONDS
    return 1 if serial < SMALL_FIT_SECONDS else chains


def estimate(rule: str, *, rows: int, chains: int = 4, draws: int = 1000, tune: int = 1000,
             prior_draws: int = 500, threads: int | None = None, fits: int = 1) -> dict:
    """``{"mem_mb": ..., "runtime": ...}`` of one job of ``rule`` on ``rows`` rows.

    ``rows`` is what the job's model sees: the level's table for the model stages, the raw table for
    ingest, and the sum over levels for report and compare. ``threads`` (default: ``chains``) matter for
    the fits only; ``fits`` is the number of data sets a job fits one after another (an SBC job's batch):
    its time is that many fits', its memory one fit's.
    """
    if rule not in RULES:
        raise ValueError(f"no resource model for rule {rule!r}; known: {', '.join(RULES)}")
    rows = max(int(rows), 0)
    cells = {"prior_check": prior_draws * rows}.get(rule, chains * draws * rows)
    seconds, extra_bytes = 0.0, 0.0
    if rule in ("ingest", "aggregate"):
        extra_bytes, seconds = rows * ROW_BYTES, rows * ROW_SECONDS
    elif rule in FITS:
        rounds = math.ceil(chains / max(1, min(threads or chains, chains)))
        extra_bytes = cells * 8 * COPIES["fit"]
        seconds = max(int(fits), 1) * (rounds * (draws + tune) * rows * NUTS_SECONDS + cells * CELL_SECONDS)
    elif rule == "coherence":
        extra_bytes, seconds = rows * ROW_BYTES, rows * ROW_SECONDS
    else:  # prior_check, posterior_check, forecast, report, compare: work over draws x rows
        extra_bytes, seconds = min(cells, CELLS_CAP.get(rule, cells)) * 8 * COPIES[rule], cells * CELL_SECONDS
    # round(): 3 x 200 s is 10 minutes, not 10.000000000000002 rounded up to 11
    mem_mb = 100 * math.ceil(round((BASE_MB + extra_bytes / MB) / 100, 6))
    runtime = BASE_MINUTES + math.ceil(round(TIME_SAFETY * seconds / 60, 6))
    return {"mem_mb": int(mem_mb), "runtime": int(runtime)}


def job_resources(rule: str, analysis: dict, *, rows: int, inference: dict | None = None,
                  threads: int | None = None, attempt: int = 1, fits: int = 1) -> dict:
    """The resources of one job of an analysis (a config with defaults filled in): the estimate, with
    the analysis's ``resources.<rule>`` put over it, times the attempt number.

    ``inference`` is the sampler settings that apply (a level's own; default the analysis's).
    """
    inf = inference or analysis["inference"]
    res = estimate(rule, rows=rows, chains=inf["chains"], draws=inf["draws"], tune=inf["tune"],
                   prior_draws=analysis["checks"]["prior_draws"], threads=threads, fits=fits)
    res.update((analysis.get("resources") or {}).get(rule) or {})
    n = max(int(attempt or 1), 1)
    return {k: int(v) * n for k, v in res.items()}
