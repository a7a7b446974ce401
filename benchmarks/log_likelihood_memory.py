"""Peak memory of writing a fit's posterior.nc with its pointwise log-likelihood, side by side:

- ``pymc``: what PyMC and ArviZ offer, ``pm.compute_log_likelihood`` (every draw's values in a list, then
  stacked) and the InferenceData's own ``to_netcdf`` (xarray writing to the disk, uncompressed);
- ``hbm``: :func:`hbm.log_likelihood.pointwise` written a block of draws at a time by
  :func:`hbm.io.write_netcdf` (compressed);
- ``floor``: the same process up to the write (imports, the model built, the posterior read), the part of
  the peak that is not the log-likelihood's.

At M5's product level (benchmarks/m5.yaml: 3,049 items, 85,372 rows) with 2 chains x 2,000 draws, the shape
of that level's passing attempt (issue 16), and each in a fresh process (``ru_maxrss``). The posterior is
not a fit's: it is the model's prior draws (every free variable), which costs seconds instead of the fit's
hour and has the same shape; the log-likelihood's values differ from a fit's, its size does not. The two
files' log-likelihoods are compared on a block of rows (they must be equal).

    .venv/bin/python -m benchmarks.log_likelihood_memory     # or: make bench CASES=log_likelihood_memory
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAINS, DRAWS = 2, 2000


def prepare(out: Path) -> dict:
    """M5's product-level table and a posterior of prior draws (CHAINS x DRAWS) under ``out``."""
    import numpy as np
    import pymc as pm
    import xarray as xr

    from benchmarks.m5 import prepare as prepare_m5
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest
    from hbm.io import write_netcdf
    from hbm.models import build_model, load_level

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
        model = build_model(load_level(table, spec), spec)
        names = [rv.name for rv in model.free_RVs]
        drawn = pm.sample_prior_predictive(draws=CHAINS * DRAWS, model=model, var_names=names, random_seed=1)
        prior = drawn.prior.to_dataset()
        post = xr.Dataset({n: (("chain", "draw", *v.dims[2:]), v.values.reshape(CHAINS, DRAWS, *v.shape[2:]))
                           for n, v in prior.items()},
                          coords={"chain": np.arange(CHAINS), "draw": np.arange(DRAWS),
                                  **{d: prior[d].values for d in prior.dims if d not in ("chain", "draw")}})
        tree = xr.DataTree.from_dict({"posterior": post, "observed_data": drawn.observed_data.to_dataset(),
                                      "constant_data": drawn.constant_data.to_dataset()})
        write_netcdf(tree, posterior)
    return {"table": str(table), "posterior": str(posterior), "spec": spec}


def worker(who: str, table: str, posterior: str, spec: dict, out: str) -> dict:
    """One way of writing (``who``), in this process; its wall time and peak RSS."""
    import resource

    t0 = time.perf_counter()
    from hbm.io import read_netcdf, write_netcdf
    from hbm.log_likelihood import pointwise
    from hbm.model import PREDICTIVE_COMPILE
    from hbm.models import build_model, load_level

    model = build_model(load_level(table, spec), spec)
    idata = read_netcdf(posterior)
    ready = time.perf_counter()
    if who == "pymc":
        import pymc as pm

        pm.compute_log_likelihood(idata, model=model, progressbar=False, compile_kwargs=PREDICTIVE_COMPILE)
        idata.to_netcdf(out, engine="h5netcdf")
    elif who == "hbm":
        write_netcdf(idata, out, streamed=pointwise(model, idata))
    done = time.perf_counter()
    return {"who": who, "setup_s": ready - t0, "write_s": done - ready,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "file_mb": Path(out).stat().st_size / 2 ** 20 if Path(out).exists() else 0.0}


def run_worker(who: str, prepared: dict, out: Path) -> dict:
    code = ("import json, sys; from benchmarks.log_likelihood_memory import worker; "
            "print('RESULT ' + json.dumps(worker(*json.loads(sys.argv[1]))))")
    args = [who, prepared["table"], prepared["posterior"], prepared["spec"], str(out)]
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{who}: {proc.stderr[-3000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def case(work: Path) -> dict:
    """Every way, in turn, each in a fresh process; the log-likelihoods of the two files compared."""
    import numpy as np
    import xarray as xr

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prepared = prepare(work)
    prep_s = time.perf_counter() - t0
    runs = {}
    for who in ("floor", "pymc", "hbm"):
        out = work / f"{who}.nc"
        out.unlink(missing_ok=True)
        runs[who] = run_worker(who, prepared, out)
        print(f"  log_likelihood_memory {who}: peak {runs[who]['max_rss_mb']:.0f} MB, write "
              f"{runs[who]['write_s']:.1f} s, file {runs[who]['file_mb']:.0f} MB", flush=True)
    with xr.open_datatree(work / "pymc.nc", engine="h5netcdf") as a, \
            xr.open_datatree(work / "hbm.nc", engine="h5netcdf") as b:
        rows = slice(40_000, 41_000)
        x, y = (t["log_likelihood"]["y"].isel(obs_id=rows).values for t in (a, b))
        shape = tuple(b["log_likelihood"]["y"].shape)
    same = bool(np.array_equal(x, y, equal_nan=True))
    for who in ("pymc", "hbm"):
        (work / f"{who}.nc").unlink()
    return {"case": "log_likelihood_memory", "shape": shape, "prepare_s": prep_s, "runs": runs,
            "equal": same, "rows_compared": [rows.start, rows.stop]}


def lines(m: dict) -> list[str]:
    runs = m["runs"]
    floor = runs["floor"]["max_rss_mb"]
    c, d, n = m["shape"]
    out = [f"M5's product level, log-likelihood of {c} chains x {d:,} draws x {n:,} rows "
           f"({c * d * n * 8 / 2 ** 30:.1f} GiB of float64); each way in a fresh process; the floor is the same "
           "process without the log-likelihood (model built, posterior read). The two files' log-likelihoods "
           f"are {'equal' if m['equal'] else 'NOT EQUAL'} (rows {m['rows_compared'][0]:,}-{m['rows_compared'][1]:,}).",
           "",
           "| way | peak RSS (MB) | above the floor (MB) | write (s) | file (MB) |",
           "|---|---:|---:|---:|---:|"]
    for who, label in (("floor", "floor: model and posterior only"),
                       ("pymc", "pm.compute_log_likelihood + InferenceData.to_netcdf"),
                       ("hbm", "hbm: blocks of draws streamed into write_netcdf")):
        r = runs[who]
        out.append(f"| {label} | {r['max_rss_mb']:,.0f} | {r['max_rss_mb'] - floor:,.0f} | "
                   f"{r['write_s']:.1f} | {r['file_mb']:,.0f} |")
    ratio = (runs["hbm"]["max_rss_mb"] - floor) / max(1.0, runs["pymc"]["max_rss_mb"] - floor)
    out += ["", f"Memory above the floor, hbm / PyMC: {ratio:.3f}; peak, hbm / PyMC: "
                f"{runs['hbm']['max_rss_mb'] / runs['pymc']['max_rss_mb']:.2f}."]
    return out


if __name__ == "__main__":
    result = case(ROOT / "results" / "benchmarks" / "log_likelihood_memory")
    print(json.dumps(result, indent=2))
    print("\n".join(lines(result)))
