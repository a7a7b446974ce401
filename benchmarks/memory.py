"""Peak memory of the two jobs that handle arrays of draws x rows, at M5's product level, side by side:

- the fit's write of posterior.nc with its pointwise log-likelihood:
  - ``ll_pymc``: what PyMC and ArviZ offer, ``pm.compute_log_likelihood`` and the InferenceData's own
    ``to_netcdf`` (xarray, uncompressed);
  - ``ll_hbm``: :func:`hbm.log_likelihood.pointwise` written a block of draws at a time by
    :func:`hbm.io.write_netcdf`;
- the posterior check:
  - ``check_whole``: its passes with the posterior predictive draws held whole (:func:`predictive_draws`,
    then p-values, coverage, PSIS-LOO and LOO-PIT over the array; the posterior check until 2026-12-04);
  - ``check_hbm``: :func:`hbm.posterior_check.posterior_check` itself, the draws written to its file as they
    come and read back a block of observations at a time;
- ``floor``: the same process up to that work (imports, the model built, the posterior read).

Each in a fresh process (``ru_maxrss``). benchmarks/m5.yaml's product level (3,049 items, 85,372 rows) with
2 chains x 2,000 draws, the shape of that level's passing attempt (issue 16). The posterior is a short NUTS
run (2 x (100 + 100), minutes instead of the fit's hour) whose draws are repeated to 2,000: a fit's values,
a fit's shape. The two log-likelihood files are compared on a block of rows, the two checks' summaries
number for number (they must be equal).

    .venv/bin/python -m benchmarks.memory      # or: make bench CASES=memory
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAINS, DRAWS, SHORT = 2, 2000, 100
WAYS = ("floor", "ll_pymc", "ll_hbm", "check_whole", "check_hbm")
LABELS = {
    "floor": "floor: model built, posterior read",
    "ll_pymc": "fit's write: pm.compute_log_likelihood + InferenceData.to_netcdf",
    "ll_hbm": "fit's write: hbm, blocks of draws streamed into write_netcdf",
    "check_whole": "posterior check, predictive draws held whole (before)",
    "check_hbm": "posterior check, predictive draws streamed to its file (hbm)",
}


def prepare(out: Path) -> dict:
    """M5's product-level table, a posterior (a short NUTS run repeated to CHAINS x DRAWS) with its
    log-likelihood, and a passing diagnostics.json under ``out``."""
    import numpy as np

    from benchmarks.m5 import prepare as prepare_m5
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.fit import sample, stamp
    from hbm.ingest import ingest
    from hbm.io import write_json, write_netcdf
    from hbm.log_likelihood import pointwise
    from hbm.models import build_model, load_level, resolve_priors

    analysis = load_analysis(ROOT / "benchmarks" / "m5.yaml")
    sales = ROOT / analysis["data"]["path"]
    if not sales.exists():
        prepare_m5(sales)
    spec = level_spec(analysis, "product")
    obs, table = out / "observations.parquet", out / "product.parquet"
    if not table.exists():
        ingest(sales, obs, out / "summary.json", analysis["columns"], analysis["levels"],
               fmt=analysis["data"]["format"], family=analysis["model"]["family"])
        aggregate(obs, table, spec=spec, holdout=analysis["forecast"]["holdout"])
    posterior = out / "posterior.nc"
    if not posterior.exists():
        data = load_level(table, spec)
        model = build_model(data, spec)
        idata = sample(model, {"sampler": "nutpie", "chains": CHAINS, "draws": SHORT, "tune": SHORT,
                               "target_accept": 0.9}, seed=1, cores=CHAINS)
        repeat = np.tile(np.arange(SHORT), DRAWS // SHORT)
        for group in ("posterior", "sample_stats"):
            idata[group] = idata[group].to_dataset().isel(draw=repeat).assign_coords(draw=np.arange(DRAWS))
        stamp(idata, spec, resolve_priors(spec, data))
        write_netcdf(idata, posterior, streamed=pointwise(model, idata))
    write_json({"passed": True, "checks": []}, out / "diagnostics.json")
    return {"table": str(table), "posterior": str(posterior), "diagnostics": str(out / "diagnostics.json"),
            "spec": spec}


def worker(who: str, prepared: dict, out: str) -> dict:
    """One way (``who``), in this process; its wall time, peak RSS and what it computed."""
    import resource

    import numpy as np

    t0 = time.perf_counter()
    from hbm import posterior_check as pc
    from hbm.io import open_netcdf, read_netcdf, write_netcdf
    from hbm.log_likelihood import pointwise
    from hbm.model import PREDICTIVE_COMPILE
    from hbm.models import LIKELIHOOD, build_model, load_level

    spec, out = prepared["spec"], Path(out)
    data = load_level(prepared["table"], spec)
    model = build_model(data, spec)
    result = None
    if who in ("floor", "ll_pymc", "ll_hbm"):
        idata = read_netcdf(prepared["posterior"], exclude=("log_likelihood",))
    ready = time.perf_counter()
    if who == "ll_pymc":
        import pymc as pm

        pm.compute_log_likelihood(idata, model=model, progressbar=False, compile_kwargs=PREDICTIVE_COMPILE)
        idata.to_netcdf(out / "ll.nc", engine="h5netcdf")
    elif who == "ll_hbm":
        write_netcdf(idata, out / "ll.nc", streamed=pointwise(model, idata))
    elif who == "check_whole":
        seed = 7
        with open_netcdf(prepared["posterior"], lazy=("log_likelihood",)) as fitted:
            pp = pc.predictive_draws(fitted, model, seed, rows=data.y.size)
            y_rep = pc._draws_by_obs(pp["posterior_predictive"][LIKELIHOOD])
            loo, pit = pc.loo_and_pit(fitted["log_likelihood"][LIKELIHOOD],
                                      pc.relative_efficiency(fitted.posterior.to_dataset()), y_rep, data.y,
                                      np.random.default_rng([seed, 1]), 0.7)
            result = {"p_values": pc.p_values(data.y, y_rep), "coverage": pc.coverage(data.y, y_rep, data.group_idx,
                                                                                       data.groups),
                      "loo": loo, "loo_pit": pc.loo_pit_summary(None, pit=pit)}
            write_netcdf(pp, out / "pp.nc")
    elif who == "check_hbm":
        summary = pc.posterior_check(
            prepared["table"], prepared["posterior"], prepared["diagnostics"], out / "pp.nc", out / "pp.json",
            out / "ppc.png", out / "loo_pit.png", out / "shrinkage.png", spec=spec, seed=7, pareto_k=0.7,
            on_failure="flag")
        result = {k: summary[k] for k in ("p_values", "coverage", "loo", "loo_pit")}
    done = time.perf_counter()
    files = {p.name: p.stat().st_size / 2 ** 20 for p in out.glob("*.nc")}
    return {"who": who, "setup_s": ready - t0, "work_s": done - ready,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "file_mb": sum(files.values()),
            "result": result}


def run_worker(who: str, prepared: dict, out: Path) -> dict:
    code = ("import json, sys; from benchmarks.memory import worker; "
            "print('RESULT ' + json.dumps(worker(*json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([who, prepared, str(out)])], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{who}: {proc.stderr[-3000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def case(work: Path) -> dict:
    """Every way, in turn, each in a fresh process; their outputs compared."""
    import shutil

    import numpy as np
    import xarray as xr

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepared = prepare(work)
    prep_s = time.perf_counter() - t0
    runs = {}
    for who in WAYS:
        out = work / who
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        runs[who] = run_worker(who, prepared, out)
        print(f"  memory {who}: peak {runs[who]['max_rss_mb']:.0f} MB, work {runs[who]['work_s']:.1f} s, "
              f"files {runs[who]['file_mb']:.0f} MB", flush=True)
    rows = slice(40_000, 41_000)
    with xr.open_datatree(work / "ll_pymc" / "ll.nc", engine="h5netcdf") as a, \
            xr.open_datatree(work / "ll_hbm" / "ll.nc", engine="h5netcdf") as b:
        x, y = (t["log_likelihood"]["y"].isel(obs_id=rows).values for t in (a, b))
        shape = tuple(b["log_likelihood"]["y"].shape)
    with xr.open_datatree(work / "check_whole" / "pp.nc", engine="h5netcdf") as a, \
            xr.open_datatree(work / "check_hbm" / "pp.nc", engine="h5netcdf") as b:
        same_draws = bool(np.array_equal(a["posterior_predictive"]["y"].isel(obs_id=rows).values,
                                         b["posterior_predictive"]["y"].isel(obs_id=rows).values))
    whole, streamed = runs["check_whole"].pop("result"), runs["check_hbm"].pop("result")
    for who in WAYS:
        runs[who].pop("result", None)
        shutil.rmtree(work / who)
    return {"case": "memory", "shape": shape, "prepare_s": prep_s, "runs": runs,
            "log_likelihood_equal": bool(np.array_equal(x, y)), "rows_compared": [rows.start, rows.stop],
            "predictive_equal": same_draws, "summaries_equal": whole == streamed,
            "loo": streamed["loo"]["elpd_loo"]}


def lines(m: dict) -> list[str]:
    runs = m["runs"]
    floor = runs["floor"]["max_rss_mb"]
    c, d, n = m["shape"]
    out = [f"M5's product level, {c} chains x {d:,} draws x {n:,} rows ({c * d * n * 8 / 2 ** 30:.1f} GiB per "
           "float64 array of draws x rows); each way in a fresh process; the floor is the same process before "
           "the work (model built, posterior read). Equal outputs: log-likelihood "
           f"{m['log_likelihood_equal']}, predictive draws {m['predictive_equal']} (rows "
           f"{m['rows_compared'][0]:,}-{m['rows_compared'][1]:,}), the checks' summaries {m['summaries_equal']}.",
           "",
           "| way | peak RSS (MB) | above the floor (MB) | work (s) | files written (MB) |",
           "|---|---:|---:|---:|---:|"]
    for who in WAYS:
        r = runs[who]
        out.append(f"| {LABELS[who]} | {r['max_rss_mb']:,.0f} | {r['max_rss_mb'] - floor:,.0f} | "
                   f"{r['work_s']:.1f} | {r['file_mb']:,.0f} |")
    ratio = lambda a, b: runs[a]["max_rss_mb"] / runs[b]["max_rss_mb"]  # noqa: E731
    out += ["", f"Peak, hbm / the other way: the fit's write {ratio('ll_hbm', 'll_pymc'):.2f}, the posterior "
                f"check {ratio('check_hbm', 'check_whole'):.2f}."]
    return out


if __name__ == "__main__":
    result = case(ROOT / "results" / "benchmarks" / "memory")
    print(json.dumps(result, indent=2))
    print("\n".join(lines(result)))
