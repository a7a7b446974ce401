"""Cluster resources per job (hbm/resources.py): known answers, row counts, overrides and retries.
(That editing them reruns nothing is checked on a finished run in tests/test_workflow.py.)"""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hbm.resources import NUTS_SECONDS, RULES, SMALL_FIT_SECONDS, estimate, fit_threads, job_resources, table_rows


def test_the_tiny_grouped_fit_of_the_slurm_test():
    # 2 x 300 draws x 120 rows x 8 bytes x 1 copy = 0.55 MiB over the 1000 MB base -> 1100 (next 100).
    # (600 iterations x 120 rows x 6.3 us + 72,000 values x 2 us) x 3 = 2.8 s -> 5 + 1 minutes.
    assert estimate("fit", rows=120, chains=2, draws=300, tune=300) == {"mem_mb": 1100, "runtime": 6}


def test_a_large_count_model_fit():
    # 85,372 rows, 2 chains x (500 + 500): 85.4 M values x 8 bytes = 651 MiB -> 1651 -> 1700 MB;
    # (1000 x 85,372 x 6.3 us + 85.4 M x 2 us) x 3 = 2126 s = 35.4 min -> 5 + 36 minutes (it took 9 min).
    assert estimate("fit", rows=85_372, chains=2, draws=500, tune=500) == {"mem_mb": 1700, "runtime": 41}


def test_chains_beyond_the_threads_run_one_after_another():
    parallel = estimate("fit", rows=100_000, chains=4, draws=1000, tune=1000, threads=4)
    serial = estimate("fit", rows=100_000, chains=4, draws=1000, tune=1000, threads=1)
    # NUTS: 2000 x 1e5 x 6.3 us = 1260 s per round; the 4e8 values add 800 s; times 3.
    assert parallel["runtime"] == 5 + 103 and serial["runtime"] == 5 + 292  # (1260 + 800) x 3, (4 x 1260 + 800) x 3
    assert parallel["mem_mb"] == serial["mem_mb"] == 4100  # 4e8 x 8 B = 3051.8 MiB + 1000


def test_a_posterior_check_counts_at_most_the_blocks_it_holds():
    """M5's product level, 2 x 2,000 draws x 85,372 rows (341 M values): not 4 copies of them (10.4 GB) but
    of the 3 x 2^25 values the check holds at most: 3,072 MiB + 1000 -> 4100 MB (measured peak 2,182 MB).
    The cap is the posterior check's own block size."""
    from hbm import posterior_check
    from hbm.resources import PREDICTIVE_CELLS

    assert PREDICTIVE_CELLS == posterior_check.PREDICTIVE_CELLS
    assert estimate("posterior_check", rows=85_372, chains=2, draws=2000)["mem_mb"] == 4100


def test_posterior_check_of_the_bundled_retail_product_level():
    # 3,120 rows, 4 chains x 2000 draws: 25 M values x 8 bytes x 4 copies = 762 MiB -> 1762 -> 1800 MB
    # (measured on 17 M values of M5's product level: 753 MB); 25 M x 2 us x 3 = 150 s -> 5 + 3 minutes.
    assert estimate("posterior_check", rows=3120, chains=4, draws=2000, tune=1000) == {"mem_mb": 1800, "runtime": 8}


def test_prior_check_uses_the_prior_draws():
    small = estimate("prior_check", rows=1_000_000, prior_draws=10, chains=64, draws=100_000)
    assert small == {"mem_mb": 1400, "runtime": 6}  # 1e7 values x 32 B = 305 MiB; 20 s x 3 = 1 min


def test_ingest_grows_with_rows_and_small_jobs_get_the_base():
    assert estimate("ingest", rows=10_000_000) == {"mem_mb": 10800, "runtime": 15}  # 9766 MiB; 200 s x 3 = 10 min
    for rule in RULES:
        assert estimate(rule, rows=0) == {"mem_mb": 1000, "runtime": 5}
    with pytest.raises(ValueError, match="no resource model for rule 'sbc'"):
        estimate("sbc", rows=1)


def test_reference_runs_and_sbc_simulations_are_sized_like_fits_of_their_own_sampler_settings():
    # long_run: grouped's reference, 4 chains x (1000 + 10,000) on 120 rows: 4.8 M values x 8 B = 37 MiB;
    # (11,000 x 120 x 6.3 us + 4.8 M x 2 us) x 3 = 53.7 s -> 5 + 1 minutes.
    assert estimate("long_run", rows=120, chains=4, draws=10_000, tune=1000) == {"mem_mb": 1100, "runtime": 6}
    # One SBC simulation: 2 chains x (500 + 1000), one thread, so the chains take two rounds.
    one = estimate("sbc_simulation", rows=100_000, chains=2, draws=1000, tune=500, threads=1)
    assert one == estimate("fit", rows=100_000, chains=2, draws=1000, tune=500, threads=1)
    assert one["runtime"] == 5 + 115  # (2 x 1500 x 1e5 x 6.3 us + 2e8 x 2 us) x 3 = 6870 s = 114.5 min
    # A batch of 10 simulations in one job: ten fits' time, one fit's memory.
    ten = estimate("sbc_simulation", rows=100_000, chains=2, draws=1000, tune=500, threads=1, fits=10)
    assert ten == {"mem_mb": one["mem_mb"], "runtime": 5 + 1145}  # 6870 s x 10 = 1145 min
    cfg = {**ANALYSIS, "resources": {"sbc_simulation": {"runtime": 10}}}
    assert job_resources("sbc_simulation", cfg, rows=100_000)["runtime"] == 10
    assert job_resources("fit", cfg, rows=100_000) == estimate("fit", rows=100_000)


ANALYSIS = {"inference": {"chains": 4, "draws": 1000, "tune": 1000}, "checks": {"prior_draws": 500}}


def test_analysis_overrides_and_retries():
    est = estimate("fit", rows=5000)
    assert job_resources("fit", ANALYSIS, rows=5000) == est
    cfg = {**ANALYSIS, "resources": {"fit": {"runtime": 240}, "report": {"mem_mb": 4000}}}
    assert job_resources("fit", cfg, rows=5000) == {"mem_mb": est["mem_mb"], "runtime": 240}
    assert job_resources("fit", cfg, rows=5000, attempt=2) == {"mem_mb": 2 * est["mem_mb"], "runtime": 480}
    assert job_resources("report", cfg, rows=5000)["mem_mb"] == 4000
    # A level's own sampler settings count.
    level = {**ANALYSIS["inference"], "draws": 4000}
    assert job_resources("fit", ANALYSIS, rows=5000, inference=level) == estimate("fit", rows=5000, draws=4000)


def test_table_rows(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("g,y\n" + "".join(f"a,{i}\n" for i in range(250)))
    assert table_rows(csv) == 250
    csv.write_text("g,y\na,1\nb,2")  # no newline at the end
    assert table_rows(csv) == 2
    (tmp_path / "empty.csv").write_text("")
    assert table_rows(tmp_path / "empty.csv") == 0
    assert table_rows(tmp_path / "missing.csv") is None
    # Past the first MiB the count is extrapolated from the file's size (here within 0.01 %).
    big = tmp_path / "big.csv"
    big.write_text("group,value\n" + "".join(f"g{i % 10},{i % 7}.000\n" for i in range(200_000)))
    assert big.stat().st_size > 2**20 and abs(table_rows(big) - 200_000) <= 20
    # Parquet: the footer's count, whatever the file is called.
    pq.write_table(pa.table({"y": list(range(1234))}), tmp_path / "table.data")
    assert table_rows(tmp_path / "table.data") == 1234
    (tmp_path / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 996)
    assert table_rows(tmp_path / "broken.parquet") == 10  # unreadable: 1 row per 100 bytes



def test_fit_threads_one_for_a_small_fit_its_chains_for_a_large_one():
    # retail_demand's region level (312 rows): about 16 s of sampling on one thread, under the limit
    assert fit_threads(312, chains=4, draws=1000, tune=1000) == 1
    # its product level (3,120 rows): about 157 s on one thread: one thread per chain
    assert fit_threads(3120, chains=4, draws=1000, tune=1000) == 4
    assert fit_threads(3120, chains=2, draws=1000, tune=1000) == 2
    # the limit is the estimate: just under and just over SMALL_FIT_SECONDS
    rows = int(SMALL_FIT_SECONDS / (4 * 2000 * NUTS_SECONDS))
    assert fit_threads(rows, 4, 1000, 1000) == 1
    assert fit_threads(rows + 2, 4, 1000, 1000) == 4
    # the data decide, never the machine: the same answer for the same sizes (a cluster job asks for
    # what the same job uses locally), and the resources of a small fit assume its chains run in turn
    assert estimate("fit", rows=312, threads=1)["runtime"] >= estimate("fit", rows=312, threads=4)["runtime"]
