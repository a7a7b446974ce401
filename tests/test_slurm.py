"""The workflow on a real Slurm, through `--profile profiles/slurm`, gives the same results as a local run.

Marked slow and slurm. `make test` brings up a single-node Slurm first when it can (as root with apt-get:
tests/setup_system_deps.sh runs profiles/slurm/up.sh); without a Slurm whose node is up, these tests skip
and say why. Each executor runs in its own temporary working directory (config/ and data/ copied there;
the profile holds no paths, the Snakefile is this checkout's).
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import ROOT, load_config, snakemake
from test_workflow import _draws_sha256

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

PROFILE = ROOT / "profiles" / "slurm"
TIMEOUT_S = 900


def tiny_grouped() -> dict:
    cfg = load_config("grouped")
    cfg.pop("validation", None)  # its long reference run is tested in test_validate.py
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["inference"].update(draws=300, tune=300, chains=2, max_attempts=1)
    # the pooling comparison's two extra fits are tested in test_workflow.py; here they would double the run
    cfg["checks"].update(prior_draws=50, on_failure="flag", pooling_comparison=False)
    cfg["sbc"] = {"simulations": 3, "parametrizations": ["noncentered"], "chains": 2, "draws": 200, "tune": 200}
    return cfg


# What both executors build: analysis name -> (config maker, data files {destination: source}, targets).
# To cover more (e.g. a small SBC run), add its analysis or its targets here: every output file under
# results/ is then compared by test_outputs_are_bit_identical_to_a_local_run.
RUNS = {
    "grouped": (tiny_grouped, {"data/grouped.csv": "data/grouped/grouped.csv"},
                ["results/grouped/report.html", "results/grouped/sbc/summary.json"]),  # + a small SBC
}


def slurm_unavailable() -> str | None:
    """Why the Slurm tests cannot run here, or None when a Slurm node is up."""
    hint = "bring up a test Slurm with `profiles/slurm/up.sh` as root (`make test` does so when it can)"
    if not (shutil.which("sinfo") and shutil.which("sbatch")):
        return f"Slurm is not installed (no sinfo/sbatch on PATH); {hint}"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%t %c"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"Slurm does not answer (sinfo took over 30 s); {hint}"
    if proc.returncode != 0:
        return f"Slurm does not answer (sinfo: {(proc.stderr.strip().splitlines() or ['?'])[-1]}); {hint}"
    nodes = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    up = [n for n in nodes if re.match(r"(idle|mix|alloc)", n[0])]
    if not up:
        return f"no Slurm node is up (sinfo node states: {', '.join(n[0] for n in nodes) or 'none'}); {hint}"
    if max(int(n[1]) for n in up) < 2:
        return "no Slurm node has the 2 CPUs a fit with 2 chains asks for"
    return None


def make_workdir(path):
    (path / "config" / "analyses").mkdir(parents=True)
    for name, (make_config, data, _) in RUNS.items():
        for dest, src in data.items():
            (path / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / src, path / dest)
        (path / "config" / "analyses" / f"{name}.yaml").write_text(yaml.safe_dump(make_config(), sort_keys=False))
    analyses = [f"config/analyses/{name}.yaml" for name in RUNS]
    (path / "config" / "config.yaml").write_text(yaml.safe_dump({"analyses": analyses}))
    return path


def start_on_slurm(workdir, *targets) -> subprocess.Popen:
    """Start `snakemake --profile profiles/slurm TARGETS` in ``workdir`` (output to slurm_run.log)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--profile", str(PROFILE),
           *targets]
    with open(workdir / "slurm_run.log", "w") as out:
        return subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)


def finish_on_slurm(proc, workdir) -> str:
    """Wait for the run; its output. Past TIMEOUT_S it is interrupted, so that it cancels its Slurm jobs."""
    try:
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rc = f"timeout after {TIMEOUT_S} s"
    text = (workdir / "slurm_run.log").read_text()
    if rc != 0:
        raise AssertionError(f"snakemake --profile {PROFILE} failed ({rc}):\n{text[-8000:]}")
    return text


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every target of RUNS built on Slurm and, meanwhile, locally, in fresh working directories."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    targets = [t for _, _, ts in RUNS.values() for t in ts]
    on_slurm = make_workdir(tmp_path_factory.mktemp("slurm"))
    local = make_workdir(tmp_path_factory.mktemp("local"))
    t0 = time.monotonic()
    proc = start_on_slurm(on_slurm, *targets)
    try:
        snakemake(local, *targets)
    except BaseException:
        proc.send_signal(signal.SIGINT)  # Snakemake cancels its Slurm jobs
        proc.wait(timeout=120)
        raise
    t1 = time.monotonic()
    output = finish_on_slurm(proc, on_slurm)
    print(f"\nlocal run {t1 - t0:.0f} s; Slurm run {time.monotonic() - t0:.0f} s (both started together)")
    return {"local": local, "slurm": on_slurm, "output": output}


def _without(value, key):
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key and not k.endswith("_" + key)}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


def _netcdf_sha256(path) -> str:
    """sha256 of every group's variables (names, shapes and bytes) in an InferenceData file; attributes
    (which record times and the command line) left out. For posterior.nc this includes the draws hashed
    by tests/test_workflow.py's _draws_sha256."""
    import arviz as az

    idata = az.from_netcdf(path)
    h = hashlib.sha256()
    for group in sorted(idata.children):
        ds = idata[group]
        for name in sorted(ds.data_vars):
            values = ds[name].values
            h.update(f"{group}/{name}{values.shape}".encode())
            h.update(values.tobytes())
    return h.hexdigest()


def test_every_job_ran_as_a_slurm_job(runs):
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", runs["output"])
    jobs = re.findall(r"^(?:local)?rule (\w+):", runs["output"], re.M)
    assert submitted and len(submitted) == len([j for j in jobs if j != "all"])
    assert "Finished jobid" in runs["output"] and "(100%) done" in runs["output"]
    for name in RUNS:
        logs = runs["slurm"] / "results" / name / "logs"
        assert (logs / "ingest.log").is_file() and (logs / "report.log").is_file()


def test_slurm_got_the_rules_resources(runs):
    """The fit job asked Slurm for its threads (hbm.resources.fit_threads: one, for a fit this small; a CPU per
    chain for a large one) and the estimated memory and time (hbm/resources.py)."""
    from hbm.resources import estimate, fit_threads

    fit = re.search(r"^rule fit:\n(?:    .*\n)*?    jobid: (\d+)$", runs["output"], re.M)
    assert fit, "no fit job in the output"
    slurm_id = re.search(rf"Job {fit.group(1)} has been submitted with SLURM jobid (\d+)", runs["output"]).group(1)
    proc = subprocess.run(["scontrol", "show", "job", slurm_id], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"Slurm no longer lists job {slurm_id} (MinJobAge): {proc.stderr.strip()}")
    job = dict(re.findall(r"(\w+)=(\S+)", proc.stdout))
    threads = fit_threads(120, chains=2, draws=300, tune=300)
    assert threads == 1  # 120 rows x 2 chains x 600 iterations: well under a minute on one thread
    want = estimate("fit", rows=120, chains=2, draws=300, tune=300, prior_draws=50, threads=threads)
    assert job["NumCPUs"] == str(threads)
    assert job["MinMemoryNode"] == f"{want['mem_mb']}M"
    assert job["TimeLimit"] == time.strftime("%H:%M:%S", time.gmtime(want["runtime"] * 60))
    assert job["JobState"] == "COMPLETED"


def test_outputs_are_bit_identical_to_a_local_run(runs):
    """Posterior draws hash the same; every NetCDF group's values, every Parquet table and every JSON
    result (diagnostics.json without its "seconds") are equal. provenance.json records times and the
    command line, so only its seeds, config and data hashes are compared."""
    import pyarrow.parquet as pq

    local, on_slurm = runs["local"], runs["slurm"]
    files = sorted(p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(on_slurm) for p in (on_slurm / "results").rglob("*") if p.is_file())
    compared = []
    for rel in files:
        a, b = local / rel, on_slurm / rel
        if rel.name == "posterior.nc":
            assert _draws_sha256(a) == _draws_sha256(b), rel
        if rel.suffix == ".nc":
            assert _netcdf_sha256(a) == _netcdf_sha256(b), rel
        elif rel.suffix == ".parquet":
            assert pq.read_table(a).equals(pq.read_table(b)), rel
        elif rel.name == "provenance.json":
            pa, pb = (json.loads(p.read_text()) for p in (a, b))
            for key in ("config_sha256", "data_sha256", "job_seeds"):
                assert pa[key] == pb[key], (rel, key)
        elif rel.suffix == ".json":
            assert _without(json.loads(a.read_text()), "seconds") == _without(json.loads(b.read_text()), "seconds"), rel
        else:
            continue
        compared.append(rel)
    assert {str(p) for p in compared} >= {"results/grouped/fits/group/posterior.nc",
                                          "results/grouped/fits/group/diagnostics.json"}
    assert os.path.getsize(on_slurm / "results/grouped/report.html") > 0
