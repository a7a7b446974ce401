"""Faults survived: a run killed outright (SIGKILL, as when the machine goes down) and a full disk.

Slow: a workflow killed mid-sampling, unlocked and rerun with --rerun-incomplete, gives the draws and
diagnostics of an uninterrupted run; a full results disk (a small tmpfs; root only) fails with a message
that names the file and leaves no half-written output. Fast: atomic_path on its own.
"""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, load_config, snakemake
from test_workflow import _draws_sha256

from hbm.errors import DiskFullError
from hbm.io import atomic_path, read_netcdf, write_json, write_netcdf

FIT = "grouped/fits/group"
DISK_FULL_HINT = "free space on that disk, or point 'results' in config/config.yaml at a disk with more room"


def grouped_workdir(wd: Path, *, draws: int, tune: int, results: str | None = None) -> Path:
    """A working directory like test_workflow's finished_run: the grouped analysis, 2 chains, on_failure flag."""
    cfg = load_config("grouped")
    cfg.pop("validation", None)  # its long reference run is tested in test_validate.py
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["inference"].update(draws=draws, tune=tune, chains=2, max_attempts=1)
    # no pooling variants: the fit is the one job that samples (the full-disk test expects it to fail first)
    cfg["checks"].update(prior_draws=50, on_failure="flag", pooling_comparison=False)
    (wd / "data").mkdir(parents=True)
    shutil.copy(ROOT / "data/grouped/grouped.csv", wd / "data/grouped.csv")
    (wd / "config/analyses").mkdir(parents=True)
    (wd / "config/analyses/grouped.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    main = {"analyses": ["config/analyses/grouped.yaml"], **({"results": results} if results else {})}
    (wd / "config/config.yaml").write_text(yaml.safe_dump(main))
    return wd


def temp_files(folder: Path) -> list[str]:
    """Temporary files of hbm.io.atomic_path (.<name>.<random>.tmp) under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.tmp"))


def kill_everything(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake and every process under it at once, as a power cut would: no handler runs."""
    import psutil

    tree = psutil.Process(proc.pid).children(recursive=True)  # before the parent dies and they are reparented
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake runs in its own process group (start_new_session)
    for p in tree:  # jobs that Snakemake may have started in a group of their own
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"still running after SIGKILL: {alive}"


def wait_for(path: Path, text: str, proc: subprocess.Popen, output: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before {path} said {text!r}:\n"
                                 f"{output.read_text()[-6000:]}")
        time.sleep(0.1)
    raise AssertionError(f"{path} did not say {text!r} within {timeout} s")


@pytest.mark.slow
def test_sigkill_mid_sampling_then_rerun_incomplete_gives_the_uninterrupted_results(tmp_path):
    # Sampling takes several seconds with these settings (2 chains x 3000 iterations of nutpie).
    killed = grouped_workdir(tmp_path / "killed", draws=2000, tune=1000)
    fit = killed / "results" / FIT
    output = tmp_path / "killed.out"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(killed),
           "--cores", "2"]
    with open(output, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The fit is small, so it runs on one thread beside the prior check (hbm.resources.fit_threads): wait
        # until Snakemake has recorded the prior check as finished, so that the fit is the one job the kill
        # interrupts. fit.py logs "sampling 2 chains x ..." just before pm.sample; 2 s later nutpie is
        # compiling or sampling.
        wait_for(output, "(Rule: prior_check)", proc, output)
        wait_for(killed / "results/grouped/logs/fit/group.log", "sampling", proc, output)
        time.sleep(2)
        assert proc.poll() is None, "the fit finished before it could be killed: raise draws"
    finally:
        if proc.poll() is None:
            kill_everything(proc)
    assert proc.returncode == -signal.SIGKILL

    # Nothing of the fit was written; no temporary file is left (none was open: the kill came mid-sampling).
    assert not fit.exists() or not list(fit.iterdir())
    for name in ("posterior.nc", "diagnostics.json", "rank.png"):
        assert not (fit / name).exists(), name
    assert temp_files(killed / "results") == []
    # What Snakemake leaves after a kill: the directory locked and the running job marked incomplete.
    assert list((killed / ".snakemake/locks").iterdir()), "no lock left"
    assert list((killed / ".snakemake/incomplete").iterdir()), "no incomplete marker left"
    locked = snakemake(killed, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stderr, locked.stderr[-3000:]

    # A kill during a write itself would leave a hidden temporary file beside the output (the window is too
    # short to hit by timing, so plant one): it is never taken for the output, and the rerun removes it.
    stale = fit / f".posterior.nc.{uuid.uuid4().hex[:8]}.tmp"
    fit.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\x89HDF\r\n\x1a\n half-written")

    snakemake(killed, "--unlock")
    t0 = time.perf_counter()
    snakemake(killed, "--rerun-incomplete")
    print(f"rerun after the kill: {time.perf_counter() - t0:.0f} s")
    assert (killed / "results/grouped/report.html").is_file()
    assert not stale.exists() and temp_files(killed / "results") == []
    assert not list((killed / ".snakemake/incomplete").iterdir())

    # the uninterrupted run needs only the fit's job (and what it depends on) for the comparison
    fresh = grouped_workdir(tmp_path / "fresh", draws=2000, tune=1000)
    t0 = time.perf_counter()
    snakemake(fresh, f"results/{FIT}/posterior.nc")
    print(f"uninterrupted run: {time.perf_counter() - t0:.0f} s")
    assert _draws_sha256(fit / "posterior.nc") == _draws_sha256(fresh / "results" / FIT / "posterior.nc")

    def diagnostics(folder):
        d = json.loads((folder / "results" / FIT / "diagnostics.json").read_text())
        d.pop("seconds")
        for attempt in d["attempts"]:  # each attempt's wall time: a timing, not a result
            attempt.pop("seconds")
        return d

    assert diagnostics(killed) == diagnostics(fresh)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """Mount a tmpfs of ``size`` at ``folder`` (skips the test where this cannot be done); unmount after."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as a full disk")
    if not shutil.which("mount") or not shutil.which("umount"):
        pytest.skip("needs mount and umount to make a small tmpfs as a full disk")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needed as a full disk): {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def assert_only_complete_files(results: Path) -> None:
    """No temporary file under ``results``, and every file left there reads back whole."""
    import pyarrow.parquet as pq

    assert temp_files(results) == []
    for path in results.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".nc":
            read_netcdf(path)
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


@pytest.mark.slow
def test_full_disk_fails_with_a_message_that_names_the_file(tmp_path):
    """Results on a 1 MB disk: the data, tables and logs fit; posterior.nc (about 2 MB) does not."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        wd = grouped_workdir(tmp_path / "wd", draws=1000, tune=500, results=str(disk))
        proc = snakemake(wd, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        # What the user sees: hbm's one-paragraph message (the job's stderr, which Snakemake passes on; also
        # in the job's log), then Snakemake's "Error in rule fit" block. No traceback, no crash.
        assert (f"{disk}/{FIT}/posterior.nc: no space left on device while writing this file (nothing "
                f"half-written was kept); {DISK_FULL_HINT}") in proc.stderr
        assert "Error in rule fit" in proc.stderr
        for bad in ("Traceback", "Logging error", "Segmentation fault", "HDF5-DIAG"):
            assert bad not in out, bad
        assert "no space left on device" in (disk / "grouped/logs/fit/group.log").read_text()
        assert not (disk / FIT).exists() or not [p for p in (disk / FIT).rglob("*") if p.is_file()]
        assert_only_complete_files(disk)


@pytest.mark.slow
def test_disk_full_from_the_start_names_the_first_file(tmp_path):
    """The results disk is full before the run. The first write (ingest's observations.parquet) fails with
    the same message. Nothing is left but the empty log file Snakemake made for the job."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
        wd = grouped_workdir(tmp_path / "wd", draws=300, tune=300, results=str(disk))
        proc = snakemake(wd, check=False)
        assert proc.returncode != 0
        assert (f"{disk}/grouped/data/observations.parquet: no space left on device while writing this file "
                f"(nothing half-written was kept); {DISK_FULL_HINT}") in proc.stderr
        assert "Error in rule ingest" in proc.stderr
        assert "Segmentation fault" not in proc.stderr
        assert not (disk / "grouped/data").exists() or not list((disk / "grouped/data").rglob("*.*"))
        assert_only_complete_files(disk)
        assert "--- Logging error ---" not in proc.stderr and "Traceback" not in proc.stderr


def test_atomic_path_keeps_no_temporary_file_and_names_a_full_disk(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError) as e:
        write_json({"a": 1}, target)
    assert str(e.value) == (f"{target}: no space left on device while writing this file (nothing half-written "
                            f"was kept); {DISK_FULL_HINT}")
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()

    # Another OSError is not called a full disk.
    with pytest.raises(PermissionError), atomic_path(target):
        raise PermissionError(errno.EACCES, "denied")


def test_stale_temporary_files_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "posterior.nc"
    stale = tmp_path / ".posterior.nc.abcd1234.tmp"
    other = tmp_path / ".posterior.nc.gz.abcd1234.tmp"  # another file's temporary: left alone
    stale.write_bytes(b"half")
    other.write_bytes(b"half")
    write_json({"a": 1}, target)
    assert not stale.exists() and other.exists()
    assert json.loads(target.read_text()) == {"a": 1}


def test_netcdf_is_built_in_memory_and_reads_back(tmp_path):
    """write_netcdf hands HDF5 no file (a full disk mid-write crashes h5py); the file holds every group."""
    import arviz as az
    import numpy as np

    idata = az.from_dict({"posterior": {"mu": np.arange(8.0).reshape(2, 4)}, "observed_data": {"y": np.arange(3.0)}})
    idata.attrs["hbm_analysis"] = "t"
    path = tmp_path / "post.nc"
    write_netcdf(idata, path)
    back = read_netcdf(path)
    assert list(back.children) == ["posterior", "observed_data"] and back.attrs["hbm_analysis"] == "t"
    assert (back.posterior["mu"].values == idata.posterior["mu"].values).all()
    assert [p.name for p in tmp_path.iterdir()] == ["post.nc"]
