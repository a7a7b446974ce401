"""The GPU path, measured (issue 19): hbm's M5 bottom model sampled by NumPyro's NUTS on JAX's GPU backend.

The model is ``benchmarks/gradient.py``'s (what ``benchmarks/samplers.py`` compares on the CPU): hbm's negative
binomial bottom model of M5's item x store series, 28 days, the intercept pooled along item -> dept -> cat and
store -> state, a weekly season of 3 Fourier pairs per store, the likelihood as one Potential. Each stage is a
fresh process that builds the model, samples it with ``pymc.sampling.jax.sample_jax_nuts`` (what
``inference.sampler: numpyro`` runs; chains vectorized on the one device), and checks every diagnostic with
:func:`hbm.diagnostics.compute`:

- ``every=1``: the whole bottom level (30,490 series, 853,720 rows) in one NUTS fit, 4 chains x (1,000 + 1,000);
- ``every=30``: the CPU table's model (every 30th series, 28,476 rows), 2 chains x (1,000 + 1,000) at seed 11:
  the same run as the CPU's NumPyro row of the samplers table, for the GPU/CPU ratio.

Each stage gets what is left of ``--budget`` seconds; a stage past it is stopped and reported as such, with
the progress it logged. Needs a ``jax`` with CUDA (the project pins the CPU build; on a GPU node install
``jax[cuda12]`` or use the node's).

    python -m benchmarks.gpu results/benchmarks/m5/sales.parquet OUTDIR [--stages 1:4:1000:1000:330,30:2:1000:1000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 11
STAGES = "1:4:1000:1000:330,30:2:1000:1000"  # every:chains:tune:draws[:at most seconds]


def worker(sales: str, every: str, chains: str, tune: str, draws: str, seed: str = str(SEED)) -> dict:
    """Build the model and sample it with NumPyro on JAX's default device; runs in its own process."""
    import jax
    from pymc.sampling.jax import sample_jax_nuts

    from benchmarks.gradient import m5_design
    from benchmarks.samplers import outcome  # the same judgement as the CPU's ways (samplers.THRESHOLDS)
    from hbm import bottom
    from hbm.model.builder import build, resolve_priors

    every, chains, tune, draws, seed = int(every), int(chains), int(tune), int(draws), int(seed)
    device = jax.devices()[0]
    t0 = time.perf_counter()
    data, spec = m5_design(Path(sales), every=every)
    priors = resolve_priors(spec, data)
    settings, _ = bottom._first_settings({"sampler": "numpyro", "chains": chains, "tune": tune, "draws": draws,
                                          "target_accept": 0.9}, data, spec)
    model = build(data, spec, priors, fast=True)
    built = time.perf_counter() - t0
    print(f"built {len(data.series):,} series, {data.y.size:,} rows in {built:.0f} s on {device}", file=sys.stderr,
          flush=True)
    idata = sample_jax_nuts(draws=draws, tune=tune, chains=chains, target_accept=settings["target_accept"],
                            random_seed=seed, model=model, progressbar=True, chain_method="vectorized",
                            nuts_sampler="numpyro", compute_convergence_checks=False)
    wall = time.perf_counter() - t0
    mem = device.memory_stats() or {}
    return {
        "every": every, "series": len(data.series), "rows": int(data.y.size), "device": str(device),
        "device_kind": getattr(device, "device_kind", ""), "jax": jax.__version__, "chains": chains, "tune": tune,
        "draws": draws, "seed": seed, "target_accept": settings["target_accept"], "build_s": built,
        **outcome(idata, wall), "device_peak_mb": mem.get("peak_bytes_in_use", 0) / 2**20,
    }


PROGRESS = re.compile(r"(warmup|sample):[^|]*\|[^|]*\|\s*(\d+)/(\d+) \[([\d:]+)<")


def progress(log_text: str) -> dict | None:
    """Where a stopped stage got to, from NumPyro's progress bar in its log: the phase, iterations done of
    all, seconds since sampling started, and the seconds per iteration over the last 10 iterations."""
    points = [(phase, int(n), int(total), sum(int(x) * 60 ** i for i, x in enumerate(reversed(t.split(":")))))
              for phase, n, total, t in PROGRESS.findall(log_text)]
    if not points:
        return None
    phase, n, total, t = points[-1]
    back = next((p for p in reversed(points) if p[1] <= n - 10), points[0])
    rate = (t - back[3]) / (n - back[1]) if n > back[1] else None
    return {"phase": phase, "iterations": n, "of": total, "elapsed_s": t, "s_per_iteration_last_10": rate}


def run_stage(sales: Path, stage: str, timeout: float, log: Path) -> dict:
    """One stage in a fresh process, its output written to ``log``; stopped after ``timeout`` seconds."""
    code = ("import json, sys; from benchmarks.gpu import worker; "
            "print('RESULT ' + json.dumps(worker(*sys.argv[1:])), flush=True)")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run([sys.executable, "-u", "-c", code, str(sales), *stage.split(":")[:4]], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=fh, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"stage": stage, "error": f"stopped after {timeout:.0f} s", "process_s": time.perf_counter() - t0,
                    "progress": progress(log.read_text())}
    result = next((line for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if proc.returncode != 0 or result is None:
        return {"stage": stage, "error": f"exit {proc.returncode}", "process_s": time.perf_counter() - t0}
    out = json.loads(result[7:])
    out.update(stage=stage, process_s=time.perf_counter() - t0)
    return out


RECORD = Path(__file__).resolve().parent / "gpu_h200.json"  # the last run on a GPU, kept in the repository


def lines(rec: dict) -> list[str]:
    """RESULTS.md's section from a record (``RECORD``: the runs, the machine, and the CPU's numbers of the same
    model from the samplers table, to compare against)."""
    cpu = rec["cpu"]
    out = [f"Measured {rec['measured']} at commit {rec['commit']} on {rec['machine']}; {rec['versions']}. "
           f"CPU rows: {cpu['source']}.", "",
           "| model | where | chains x (tune + draws) | wall s | sampling s | gradients per draw | min bulk ESS | "
           "max R-hat | divergences | all diagnostics | ESS/s | ratio | peak MB (host / GPU) |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for r in rec["runs"]:
        model = f"every {r['every']}th series" if r["every"] > 1 else "the whole bottom level"
        model += f" ({r['series']:,} series, {r['rows']:,} rows)"
        shape = f"{r['chains']} x ({r['tune']:,} + {r['draws']:,})"
        if "error" in r:
            p = r.get("progress") or {}
            where = (f"{p['phase']} iteration {p['iterations']:,} of {p['of']:,} after {p['elapsed_s']} s, "
                     f"{p['s_per_iteration_last_10']:.1f} s per iteration over the last 10") if p else ""
            out.append(f"| {model} | GPU, NumPyro | {shape} | {r['error']}: {where} |" + " |" * 9)
            continue
        base = cpu["numpyro"]["ess_per_s"] if r["every"] == 30 else None
        out.append(f"| {model} | GPU, NumPyro | {shape} | {r['wall_s']:.0f} | {r['sampling_s']:.0f} | "
                   f"{r['gradients_per_draw']:.0f} | {r['min_bulk_ess']:.0f} | {r['max_rhat']:.3f} | {r['divergences']} | "
                   f"{'passed' if r['passed'] else 'failed: ' + '; '.join(r['failures'])} | {r['ess_per_s']:.2f} | "
                   f"{'**%.2f**' % (r['ess_per_s'] / base) if base else ''} | "
                   f"{r['max_rss_mb']:,.0f} / {r['device_peak_mb']:,.0f} |")
        if r["every"] == 30:
            for who, label in (("numpyro", "CPU (2 cores), NumPyro"), ("nutpie", "CPU (2 cores), nutpie (hbm's default)")):
                c = cpu[who]
                out.append(f"| {model} | {label} | 2 x (1,000 + 1,000) | {c['wall_s']} | {c['sampling_s']} | "
                           f"{c['gradients_per_draw']:.0f} | {c['min_bulk_ess']} | {c['max_rhat']:.3f} | "
                           f"{c['divergences']} | {'passed' if c['passed'] else 'failed (R-hat)'} | "
                           f"{c['ess_per_s']:.2f} | {'**%.2f**' % (c['ess_per_s'] / base)} | {c['max_rss_mb']:,} / - |")
    return out + ["", "What it says:", "", *[f"- {n}" for n in rec.get("note", [])], ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sales", type=Path, help="M5's long table (benchmarks.m5.prepare)")
    p.add_argument("out", type=Path, help="folder for gpu.json and one log per stage")
    p.add_argument("--stages", default=STAGES,
                   help=f"every:chains:tune:draws[:at most seconds], comma-separated (default {STAGES})")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for all stages together")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    end = time.perf_counter() + args.budget
    runs = []
    for stage in args.stages.split(","):
        left = end - time.perf_counter()
        if left < 30:
            runs.append({"stage": stage, "error": "no time left"})
            continue
        cap = float(stage.split(":")[4]) if stage.count(":") == 4 else left
        r = run_stage(args.sales.resolve(), stage, min(left, cap), args.out / f"stage_{stage.replace(':', '_')}.log")
        runs.append(r)
        print(json.dumps(r), flush=True)
        (args.out / "gpu.json").write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
