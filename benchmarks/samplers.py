"""Sampling choices measured on one large model, side by side: which sampler and adaptation to use by default.

The model: hbm's negative binomial bottom model of M5 (``benchmarks/gradient.py``'s: an intercept pooled along
item -> dept -> cat and store -> state, a weekly season of 3 Fourier pairs per store) over every
``EVERY``-th of M5's 30,490 item x store series, 28 days (about 28,500 rows, 1,017 series in all 10 stores;
the whole bottom level is an hour per chain, the ways below differ per gradient and per draw, not per row).
Each way samples the same model from the same seed, one attempt of 2 chains x (1,000 + 1,000) draws (the
chains in parallel, one per core), in a fresh process:

- ``nutpie``: what hbm does (``inference.sampler: nutpie``, the default): nutpie on PyTensor's numba backend,
  diagonal mass matrix, the likelihood as one Potential (``fast``), hbm's first ``target_accept``;
- ``nutpie_low_rank``: the same with nutpie's low-rank mass matrix adaptation (``inference.adaptation: low_rank``);
- ``nutpie_jax``: nutpie on the JAX backend (``pm.sample(..., nuts_sampler="nutpie", backend="jax")``);
- ``numpyro``: NumPyro's NUTS on the same model (``inference.sampler: numpyro``);
- ``pymc_defaults``: the model as people write it, the observed ``pm.NegativeBinomial``, sampled with
  ``pm.sample()``'s defaults of a plain PyMC install (PyMC's own NUTS, target_accept 0.8; on 2 cores 2 chains);
- ``hbm_ladder``: what hbm's fit job does with the default when an attempt fails its diagnostics: the
  escalation ladder (:func:`hbm.fit.sample_until_passing`, up to 3 attempts; wall counts every attempt).

Reported: wall (build + compile + sampling), the sampler's own sampling time, gradients per draw, min bulk and
tail ESS and max R-hat over every scalar (:func:`hbm.diagnostics.compute`, the thresholds' defaults),
divergences, whether every diagnostic passed, ESS per second of wall against hbm's default, and the process's
peak memory (max RSS). Then the default, NumPyro and hbm's fit again at two more seeds (``REPEAT_SEEDS``):
ESS/s per seed, medians and the ratio of medians (a run's min ESS is its worst scalar's, which differs from
run to run: on the same model one seed's ranges from 155 to 620 across the ways).

    .venv/bin/python -m benchmarks.samplers [ways] [seeds]   # or: make bench CASES=samplers
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVERY, CHAINS, TUNE, DRAWS, SEED = 30, 2, 1000, 1000, 11
WAYS = ("nutpie", "nutpie_low_rank", "nutpie_jax", "numpyro", "pymc_defaults", "hbm_ladder")
LABELS = {
    "nutpie": "hbm's default: nutpie, numba, diagonal mass matrix",
    "nutpie_low_rank": "nutpie, numba, low-rank mass matrix",
    "nutpie_jax": "nutpie, JAX backend, diagonal",
    "numpyro": "NumPyro NUTS (JAX)",
    "pymc_defaults": "pm.sample() defaults, observed likelihood",
    "hbm_ladder": "hbm's fit: the default, refitted along the escalation ladder until it passes",
}
THRESHOLDS = {"r_hat": 1.01, "ess_per_chain": 100, "divergences": 0, "ebfmi": 0.3}
# the fastest ways and hbm's fit again at further seeds: medians over 3 seeds
REPEAT_SEEDS, REPEAT_WAYS = (12, 13), ("nutpie", "numpyro", "hbm_ladder")


def worker(who: str, sales: str, seed: str = str(SEED), every: str = str(EVERY)) -> dict:
    """Build the model and sample it one way; runs in its own process (``run_worker``). ``every``: every how
    many-th series (1: M5's whole bottom level). nutpie's progress goes to the ``hbm.fit`` log every 30 s."""
    import pymc as pm

    from benchmarks.gradient import m5_design
    from hbm import bottom
    from hbm.model.builder import build, resolve_priors
    from hbm.progress import logged

    data, spec = m5_design(Path(sales), every=int(every))
    priors = resolve_priors(spec, data)
    settings, _ = bottom._first_settings({"sampler": "nutpie", "chains": CHAINS, "tune": TUNE, "draws": DRAWS,
                                          "target_accept": 0.9}, data, spec)
    t0 = time.perf_counter()
    model = build(data, spec, priors, fast=who != "pymc_defaults")
    seed = int(seed)
    common = dict(random_seed=seed, progressbar=False, model=model, compute_convergence_checks=False)
    attempts = 1
    if who == "pymc_defaults":
        idata = pm.sample(**common, nuts_sampler="pymc")
        ta = 0.8
    elif who == "hbm_ladder":  # what hbm's fit job does when the first attempt fails (hbm.fit.escalate)
        from hbm.fit import sample_until_passing

        idata, ladder = sample_until_passing(model, {**settings, "max_attempts": 3}, seed, THRESHOLDS, cores=CHAINS)
        ta, attempts = ladder["target_accept"], len(ladder["attempts"])
    else:
        ta = settings["target_accept"]
        kw = dict(**common, draws=DRAWS, tune=TUNE, chains=CHAINS, cores=CHAINS, target_accept=ta)
        if who == "numpyro":
            idata = pm.sample(**kw, nuts_sampler="numpyro")
        else:
            extra = {"backend": "jax"} if who == "nutpie_jax" else {}
            with logged(label=f"{who}, every {every}"):
                idata = pm.sample(**kw, nuts_sampler="nutpie", **extra,
                                  nuts={"adaptation": "low_rank" if who == "nutpie_low_rank" else "diag"})
    wall = time.perf_counter() - t0
    post = idata["posterior"].to_dataset()
    return {
        "who": who, "rows": int(data.y.size), "series": len(data.series), "target_accept": ta,
        "chains": int(post.sizes["chain"]), "attempts": attempts,
        "tune": ladder["tune"] if who == "hbm_ladder" else TUNE if who != "pymc_defaults" else 1000,
        "draws": int(post.sizes["draw"]), **outcome(idata, wall),
    }


def outcome(idata, wall: float) -> dict:
    """What a run is judged by (its warm-up and transformed draws dropped first): wall and sampling time,
    gradients per draw, min bulk / tail ESS and max R-hat over every scalar, divergences, E-BFMI, hbm's
    diagnostics (``THRESHOLDS``), ESS per second of wall, the process's peak memory."""
    import resource

    import numpy as np

    from hbm import diagnostics

    for group in [g for g in idata.children if g.startswith("warmup_")]:
        del idata[group]
    transformed = [v for v in idata.posterior.data_vars if str(v).endswith("__")]
    if transformed:
        idata["posterior"] = idata.posterior.to_dataset().drop_vars(transformed)
    diag = diagnostics.compute(idata, THRESHOLDS)
    checks = {c["name"]: c["value"] for c in diag["checks"]}
    stats = idata["sample_stats"].to_dataset()
    steps = next((stats[k] for k in ("n_steps", "tree_size", "num_steps") if k in stats), None)
    return {
        "wall_s": wall, "sampling_s": float(idata.posterior.attrs.get("sampling_time", float("nan"))),
        "gradients_per_draw": float(steps.mean()) if steps is not None else None,
        "min_bulk_ess": checks["ess_bulk"], "min_tail_ess": checks["ess_tail"], "max_rhat": checks["r_hat"],
        "divergences": int(np.asarray(stats["diverging"]).sum()), "min_ebfmi": checks.get("ebfmi"),
        "passed": bool(diag["passed"]), "failures": diagnostics.failures(diag),
        "ess_per_s": checks["ess_bulk"] / wall,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(who: str, sales: Path, seed: int = SEED) -> dict:
    code = ("import json, sys; from benchmarks.samplers import worker; "
            "print('RESULT ' + json.dumps(worker(*sys.argv[1:])))")
    # JAX sees one CPU device unless told: NumPyro's chains then run one after the other
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={CHAINS}"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, who, str(sales), str(seed)], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        return {"who": who, "error": proc.stderr[-2000:], "process_s": time.perf_counter() - t0}
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    out["process_s"] = time.perf_counter() - t0
    return out


def _report(who: str, seed: int, r: dict) -> None:
    if "error" in r:
        print(f"  samplers {who} seed {seed}: FAILED\n{r['error']}", flush=True)
        return
    print(f"  samplers {who} seed {seed}: wall {r['wall_s']:.0f} s, min bulk ESS {r['min_bulk_ess']:.0f}, "
          f"{r['ess_per_s']:.2f} ESS/s, {r['divergences']} divergences, max R-hat {r['max_rhat']:.3f}, "
          f"passed {r['passed']}", flush=True)


def case(sales: Path, ways=WAYS, repeat_seeds=REPEAT_SEEDS, repeat_ways=REPEAT_WAYS) -> dict:
    """Every way in turn at seed ``SEED``, then ``repeat_ways`` again at each of ``repeat_seeds`` (one run's min
    ESS is noisy: its worst scalar differs from run to run); the machine should be otherwise idle."""
    runs = {}
    for who in ways:
        runs[who] = run_worker(who, sales)
        _report(who, SEED, runs[who])
    repeats = {}
    for seed in repeat_seeds:
        for who in [w for w in repeat_ways if w in ways]:
            r = repeats.setdefault(str(seed), {})[who] = run_worker(who, sales, seed)
            _report(who, seed, r)
    return {"case": "samplers", "every": EVERY, "seed": SEED, "runs": runs, "repeats": repeats}


def lines(m: dict) -> list[str]:
    runs = m["runs"]
    first = next((r for r in runs.values() if "error" not in r), {})
    base = runs.get("nutpie", {}).get("ess_per_s")
    out = [f"hbm's negative binomial bottom model of every {m['every']}th M5 series ({first.get('series', '?'):,} "
           f"series, {first.get('rows', 0):,} rows, 28 days), seed {m['seed']}, one attempt each, each in a fresh "
           "process; chains in parallel on 2 cores. ESS/s = min bulk ESS over every scalar / wall (build + compile "
           "+ sampling); ratio = against hbm's default; peak MB = the process's max RSS.", "",
           "| way | chains x (tune + draws) | target_accept | wall s | sampling s | gradients per draw | "
           "min bulk ESS | min tail ESS | max R-hat | divergences | all diagnostics | ESS/s | ratio | peak MB |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for who in WAYS:
        r = runs.get(who)
        if r is None:
            continue
        if "error" in r:
            out.append(f"| {LABELS[who]} | failed: {r['error'].strip().splitlines()[-1][:120]} |" + " |" * 12)
            continue
        grad = f"{r['gradients_per_draw']:.1f}" if r["gradients_per_draw"] is not None else ""
        ratio = f"**{r['ess_per_s'] / base:.2f}**" if base else ""
        shape = f"{r['chains']} x ({r['tune']:,} + {r['draws']:,})"
        if r.get("attempts", 1) > 1:
            shape += f" at attempt {r['attempts']} (wall: all attempts)"
        peak = f"{r['max_rss_mb']:,.0f}" if r.get("max_rss_mb") else "not recorded"
        out.append(f"| {LABELS[who]} | {shape} | {r['target_accept']:g} | "
                   f"{r['wall_s']:.0f} | {r['sampling_s']:.0f} | {grad} | {r['min_bulk_ess']:.0f} | "
                   f"{r['min_tail_ess']:.0f} | {r['max_rhat']:.3f} | {r['divergences']} | "
                   f"{'passed' if r['passed'] else 'failed: ' + '; '.join(r['failures'])} | {r['ess_per_s']:.2f} | "
                   f"{ratio} | {peak} |")
    return out + [""] + repeat_lines(m)


def repeat_lines(m: dict) -> list[str]:
    """The ways run at several seeds: ESS/s per seed, its median, the ratio of medians against the default's,
    and how many runs passed every diagnostic."""
    import numpy as np

    seeds = [str(m["seed"]), *m.get("repeats", {})]
    every = {seed: (m["runs"] if seed == str(m["seed"]) else m["repeats"][seed]) for seed in seeds}
    ways = [w for w in WAYS if sum(w in every[s] for s in seeds) > 1]
    if not ways:
        return []

    def ok(seed, who):
        r = every[seed].get(who)
        return r if r is not None and "error" not in r else None

    median = {w: float(np.median([ok(s, w)["ess_per_s"] for s in seeds if ok(s, w)])) for w in ways
              if any(ok(s, w) for s in seeds)}
    out = [f"The same at seeds {', '.join(seeds)} (medians; one run's min ESS is that of its worst scalar, "
           "which differs from run to run):", "",
           "| way | ESS/s per seed | median ESS/s | ratio of medians | passed every diagnostic | attempts (ladder) |",
           "|---|---|---:|---:|---:|---|"]
    for w in ways:
        runs = [ok(s, w) for s in seeds]
        per = ", ".join(f"{r['ess_per_s']:.2f}" if r else "failed" for r in runs)
        passed = sum(bool(r and r["passed"]) for r in runs)
        ratio = f"**{median[w] / median['nutpie']:.2f}**" if w in median and median.get("nutpie") else ""
        attempts = ", ".join(str(r.get("attempts", 1)) for r in runs if r) if w == "hbm_ladder" else ""
        out.append(f"| {LABELS[w]} | {per} | {median.get(w, float('nan')):.2f} | {ratio} | "
                   f"{passed} of {len(seeds)} | {attempts} |")
    return out + [""]


if __name__ == "__main__":
    from benchmarks import m5

    sales = ROOT / "results" / "benchmarks" / "m5" / "sales.parquet"
    if not sales.exists():
        m5.prepare(sales)
    ways = sys.argv[1].split(",") if len(sys.argv) > 1 else WAYS
    seeds = tuple(int(x) for x in sys.argv[2].split(",")) if len(sys.argv) > 2 else REPEAT_SEEDS
    result = case(sales, ways, seeds)
    print(json.dumps(result, indent=1))
    print("\n".join(lines(result)))
