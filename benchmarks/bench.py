"""Benchmarks: hbm side by side with plain PyMC, workflow overhead, compile cost, first impression, M5,
Stallion, the stress battery and the accuracy league table against statsforecast (benchmarks/accuracy.py).

    make bench                                   # every case, 3 repetitions -> benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks.bench --cases grouped,radon --reps 5

Each fit runs in a fresh Python process (as a user's script or a Snakemake job would), so compilation is
paid every time; the fit's wall time (model build + compile + sampling, imports excluded and reported
apart) is the denominator of the metric: minimum bulk ESS over the model's parameters per second. Ours and
the baseline alternate (ours first on even repetitions, the baseline first on odd ones) so that a machine
that gets busier or quieter affects both; tables show medians and the ratio of medians ours / baseline.
Never part of ``make test``: nothing here asserts anything, it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hbm import cache as compile_cache

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "results" / "benchmarks"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"

# case -> (analysis config, level, what the baseline is)
FITS = {
    "grouped": ("config/analyses/grouped.yaml", "group",
                "centered, hand-written, pm.sample() defaults with 4 chains x 1000 draws"),
    "retail_product": ("config/analyses/retail_demand.yaml", "product",
                       "same likelihood hand-written in PyMC, every layer centered, pm.sample() defaults, 4 chains"),
    "radon": ("config/analyses/radon.yaml", "county", "the same model (hbm's), pm.sample() defaults, 4 chains"),
}
CASES = [*FITS, "overhead", "sbc", "compile", "first_impression", "m5", "stallion", "stress", "bottom_coverage",
         "accuracy", "gradient", "memory", "samplers", "seeds"]


def _t0() -> float:
    return time.perf_counter()


# --------------------------------------------------------------------------------------------------------
# one fit in a fresh process


def prepared_table(case: str) -> Path:
    """The level's table as the workflow makes it (ingest + aggregate), under results/benchmarks/<case>/."""
    from hbm.aggregate import aggregate
    from hbm.config import level_spec, load_analysis
    from hbm.ingest import ingest

    cfg, level, _ = FITS[case]
    analysis = load_analysis(ROOT / cfg)
    out = WORK / case
    obs, table = out / "observations.parquet", out / f"{level}.parquet"
    if not table.exists():
        ingest(ROOT / analysis["data"]["path"], obs, out / "summary.json", analysis["columns"], analysis["levels"],
               fmt=analysis["data"]["format"], family=analysis["model"]["family"])
        aggregate(obs, table, spec=level_spec(analysis, level), holdout=analysis["forecast"]["holdout"])
    return table


def worker(case: str, who: str, seed: int, draws: int | None = None, sampler: str | None = None) -> dict:
    """Fit ``case`` once (``who``: ours | baseline) and measure; runs in its own process."""
    t_import = _t0()
    import arviz as az
    import numpy as np
    import pymc as pm

    from benchmarks import baselines
    from hbm.config import level_inference, level_spec, load_analysis
    from hbm.fit import sample_until_passing
    from hbm.models import build_model, group_parameters, hyperparameters, load_level, resolve_priors

    import_s = _t0() - t_import
    cfg, level, _ = FITS[case]
    analysis = load_analysis(ROOT / cfg)
    spec, inference = level_spec(analysis, level), dict(level_inference(analysis, level))
    if draws:
        inference["draws"] = draws
    if sampler:
        inference["sampler"] = sampler
    data = load_level(prepared_table(case), spec)
    priors = resolve_priors(spec, data)
    t0 = _t0()
    if who == "ours":
        # what the fit job does: the automatic parametrization and, if a fit fails, the escalation ladder
        idata, diag = sample_until_passing(build_model(data, spec, priors), inference, seed,
                                           analysis["checks"]["thresholds"], cores=2)
        settings = (f"{inference['sampler']}, {inference['chains']} x ({diag['tune']} + {diag['attempts'][-1]['draws']}), "
                    f"target_accept {diag['target_accept']}, attempts {len(diag['attempts'])}")
    else:
        model = baselines.BASELINES[case](data, priors, spec)
        # What people write: pm.sample() with its defaults. Without nutpie installed (a plain `pip install pymc`)
        # that is PyMC's own NUTS; PyMC 6 picks nutpie (400 tuning steps) when nutpie is installed, as it is
        # here, so the sampler is named to keep the baseline what a plain install runs.
        idata = pm.sample(chains=4, random_seed=seed, progressbar=False, model=model, compute_convergence_checks=False,
                          nuts_sampler="pymc")
        settings = "pymc NUTS, 4 x (1000 + 1000), target_accept 0.8 (pm.sample() defaults of a plain PyMC install)"
    wall = _t0() - t0
    sampling = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    names = [n for n in hyperparameters(spec) + group_parameters(spec) if n in idata.posterior]
    post = idata["posterior"].to_dataset()[names]
    ess = az.ess(post, method="bulk")
    rhat = az.rhat(post)
    min_ess = float(min(np.nanmin(ess[v].values) for v in names))
    stats = idata["sample_stats"].to_dataset()
    steps = stats.get("n_steps", stats.get("tree_size"))
    return {
        "case": case, "who": who, "seed": seed, "settings": settings, "import_s": import_s, "wall_s": wall,
        "sampling_s": sampling, "compile_s": wall - sampling, "min_bulk_ess": min_ess,
        "ess_per_s": min_ess / wall, "max_rhat": float(max(np.nanmax(rhat[v].values) for v in names)),
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "gradients": int(steps.sum()) if steps is not None else None, "rows": int(data.y.size),
        "parameters": names,
    }


def run_worker(case: str, who: str, seed: int, env: dict | None = None, **kw) -> dict:
    args = [sys.executable, "-m", "benchmarks.bench", "worker", case, who, str(seed)]
    for k, v in kw.items():
        args += [f"--{k}", str(v)]
    t0 = _t0()
    # PyTensor's caches (C and numba) in .cache/pytensor of the checkout, as in the workflow, unless env says
    env = {**os.environ, **compile_cache.environ(), **(env or {})}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{case} {who} seed {seed} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = _t0() - t0
    return out


# --------------------------------------------------------------------------------------------------------
# cases


def fits_case(case: str, reps: int) -> dict:
    prepared_table(case)
    runs = {"ours": [], "baseline": []}
    for rep in range(reps):
        order = ["ours", "baseline"] if rep % 2 == 0 else ["baseline", "ours"]
        for who in order:
            r = run_worker(case, who, 1000 + rep)
            runs[who].append(r)
            print(f"  {case} rep {rep + 1}/{reps} {who:8s}: {r['wall_s']:6.1f} s, min bulk ESS {r['min_bulk_ess']:7.0f}, "
                  f"{r['ess_per_s']:7.1f} ESS/s, {r['divergences']} divergences, max R-hat {r['max_rhat']:.3f}", flush=True)
    med = {who: {k: statistics.median(r[k] for r in rs) for k in
                 ("wall_s", "compile_s", "sampling_s", "min_bulk_ess", "ess_per_s", "max_rhat", "divergences", "import_s")}
           for who, rs in runs.items()}
    return {"case": case, "baseline": FITS[case][2], "runs": runs, "median": med,
            "ratio_ess_per_s": med["ours"]["ess_per_s"] / med["baseline"]["ess_per_s"]}


def _snakemake(args: list[str], cwd: Path = ROOT, env: dict | None = None) -> float:
    t0 = _t0()
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return _t0() - t0


def overhead_case(reps: int) -> dict:
    """grouped: the whole DAG (ingest to report) against the fit alone; a no-op rerun."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config/analyses/grouped.yaml").read_text())
    core = {**cfg, "checks": {**cfg["checks"], "pooling_comparison": False}}
    core.pop("validation", None)
    core.pop("sbc", None)
    out = WORK / "overhead"
    out.mkdir(parents=True, exist_ok=True)
    core_path = out / "grouped_core.yaml"
    core_path.write_text(yaml.safe_dump(core, sort_keys=False))
    # The Slurm executor plugin runs `scontrol show config` (10 s timeout) whenever Snakemake starts; where
    # scontrol is installed but no controller answers, that is most of a no-op. Measured both ways.
    no_slurm = _no_slurm_env(out)
    rows = {"dag_core_s": [], "fit_alone_s": [], "noop_s": [], "noop_no_scontrol_s": [], "dag_default_s": []}
    for rep in range(reps):
        results = out / f"core_{rep}"
        shutil.rmtree(results, ignore_errors=True)
        common = ["--cores", "2", "--config", f"analyses=[{core_path}]", f"results={results}"]
        rows["dag_core_s"].append(_snakemake(common))
        rows["noop_s"].append(_snakemake(common))
        rows["noop_no_scontrol_s"].append(_snakemake(common, env=no_slurm))
        alone = run_worker("grouped", "ours", 7)
        rows["fit_alone_s"].append(alone["process_s"])
        print(f"  overhead rep {rep + 1}/{reps}: DAG {rows['dag_core_s'][-1]:.1f} s, fit alone "
              f"{rows['fit_alone_s'][-1]:.1f} s, no-op rerun {rows['noop_s'][-1]:.1f} s", flush=True)
    results = out / "default"
    shutil.rmtree(results, ignore_errors=True)
    rows["dag_default_s"].append(_snakemake(["--cores", "2", "--config", "analyses=[config/analyses/grouped.yaml]",
                                             f"results={results}"]))
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {"case": "overhead", "runs": rows, "median": med, "ratio": med["dag_core_s"] / med["fit_alone_s"]}


def _no_slurm_env(out: Path) -> dict:
    """PATH with a failing ``scontrol`` first: the Slurm executor plugin's ``scontrol show config`` (10 s
    timeout where no controller answers) then costs nothing at Snakemake's start."""
    stub = out / "no_slurm_bin"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "scontrol").write_text("#!/bin/sh\nexit 127\n")
    (stub / "scontrol").chmod(0o755)
    return {"PATH": f"{stub}{os.pathsep}{os.environ.get('PATH', '')}"}


def sbc_case(reps: int, sims: int = 20, batches=(1, 10)) -> dict:
    """grouped, centered: SBC of ``sims`` simulations with one job per simulation (sbc.batch 1, the
    default) against batches of 10 (one compilation per job), alternating; the ranks must be the same."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config/analyses/grouped.yaml").read_text())
    cfg["checks"] = {**cfg["checks"], "pooling_comparison": False}
    cfg.pop("validation", None)
    out = WORK / "sbc"
    env = _no_slurm_env(out)
    rows = {b: [] for b in batches}
    summaries = {}
    for rep in range(reps):
        for batch in (batches if rep % 2 == 0 else batches[::-1]):
            c = {**cfg, "sbc": {**cfg["sbc"], "simulations": sims, "parametrizations": ["centered"], "batch": batch}}
            path = out / f"grouped_batch{batch}.yaml"
            path.write_text(yaml.safe_dump(c, sort_keys=False))
            results = out / f"batch{batch}"
            shutil.rmtree(results, ignore_errors=True)
            common = ["--cores", "2", "--config", f"analyses=[{path}]", f"results={results}"]
            _snakemake([f"{results}/grouped/data/levels/group.parquet", *common], env=env)  # not timed
            target = f"{results}/grouped/sbc/summary.json"
            rows[batch].append(_snakemake([target, *common], env=env))
            summaries[batch] = json.loads((results / "grouped/sbc/group/centered/summary.json").read_text())
            print(f"  sbc rep {rep + 1}/{reps}: batch {batch}: {rows[batch][-1]:.1f} s", flush=True)
    med = {b: statistics.median(v) for b, v in rows.items()}
    p_values = {b: {n: v["chi2_p"] for n, v in s["parameters"].items()} for b, s in summaries.items()}
    return {"case": "sbc", "simulations": sims, "runs": {str(b): v for b, v in rows.items()},
            "median": {str(b): v for b, v in med.items()}, "ratio": med[batches[0]] / med[batches[-1]],
            "same_ranks": all(p == p_values[batches[0]] for p in p_values.values())}


def compile_case() -> dict:
    """Compile seconds of a first fit (empty caches) and of a second fit of the same model with other
    draws, each in a fresh process sharing the cache, for nutpie and PyMC's sampler (both numba).

    The cache is a new, empty temporary ``base_compiledir`` per sampler: it holds PyTensor's C cache and
    its numba cache (``<base_compiledir>/numba``). Setting only ``compiledir``, as before, left the numba
    cache in ~/.pytensor, so the "empty cache" fit compiled with a warm one."""
    import tempfile

    rows = []
    for sampler in ("nutpie", "pymc"):
        with tempfile.TemporaryDirectory(prefix=f"hbm-compile-{sampler}-") as cache:
            env = compile_cache.environ(cache)
            for i, draws in enumerate((1000, 500)):
                r = run_worker("grouped", "ours", 7, env=env, draws=draws, sampler=sampler)
                rows.append({"sampler": sampler, "fit": "first (empty cache)" if i == 0 else "second (other draws)",
                             "draws": draws, "compile_s": r["compile_s"], "sampling_s": r["sampling_s"]})
                print(f"  compile {sampler} fit {i + 1}: compile {r['compile_s']:.1f} s, sampling {r['sampling_s']:.1f} s", flush=True)
    return {"case": "compile", "rows": rows}


def first_impression_case() -> dict:
    """`make run` in a fresh clone (its own venv; pip's download cache is this machine's), timed."""
    import glob
    import re

    clone = WORK / "first_impression"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    times = {}
    t0 = _t0()
    subprocess.run(["make", "venv"], cwd=clone, check=True, capture_output=True)
    times["setup_s"] = _t0() - t0
    t0 = _t0()
    proc = subprocess.run(["make", "run", "CORES=2"], cwd=clone, capture_output=True, text=True)
    times["run_s"] = _t0() - t0
    if proc.returncode:
        raise RuntimeError(f"make run failed:\n{proc.stderr[-3000:]}")
    compile_s = sampling_s = 0.0
    pattern = re.compile(r"compiled in ([\d.]+) s, sampled in ([\d.]+) s")
    for log in glob.glob(str(clone / "results" / "*" / "logs" / "**" / "*.log"), recursive=True):
        for m in pattern.finditer(Path(log).read_text()):
            compile_s += float(m.group(1))
            sampling_s += float(m.group(2))
    times.update(compile_s=compile_s, sampling_s=sampling_s, total_s=times["setup_s"] + times["run_s"])
    print(f"  first impression: set-up {times['setup_s']:.0f} s, make run {times['run_s']:.0f} s", flush=True)
    shutil.rmtree(clone / ".venv", ignore_errors=True)
    return {"case": "first_impression", **times}


def m5_case() -> dict:
    """The M5 analysis (benchmarks/m5.yaml) end to end at its three levels; per-job time and max RSS."""
    import csv

    from benchmarks.m5 import prepare

    out = WORK / "m5"
    t0 = _t0()
    info = prepare(out / "sales.parquet")
    prep_s = _t0() - t0
    results = out / "results"
    shutil.rmtree(results, ignore_errors=True)
    t0 = _t0()
    try:
        _snakemake(["--cores", "2", "--keep-going", "--config", "analyses=[benchmarks/m5.yaml]", f"results={results}"])
        ok = True
    except RuntimeError as e:
        print(str(e)[-2000:])
        ok = False
    wall = _t0() - t0
    jobs = []
    for tsv in sorted((results / "m5" / "benchmarks").glob("*.tsv")):
        with open(tsv) as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        jobs.append({"job": tsv.stem, "s": float(row["s"]), "max_rss_mb": float(row["max_rss"])})
    levels = {}
    for level in ("region", "store", "product"):
        d = results / "m5" / "fits" / level / "diagnostics.json"
        if d.exists():
            diag = json.loads(d.read_text())
            levels[level] = diag
    print(f"  m5: prepare {prep_s:.0f} s, workflow {wall:.0f} s, {'finished' if ok else 'FAILED'}", flush=True)
    return {"case": "m5", "data": info, "prepare_s": prep_s, "workflow_s": wall, "finished": ok, "jobs": jobs,
            "levels": levels}


def stallion_case() -> dict:
    """Stallion (benchmarks/stallion.yaml; data in ../shared/data/stallion) end to end: the per-level fits
    (sku, agency) and the bottom model over sku x agency, their diagnostics and holdout scores per level."""
    results = WORK / "stallion" / "results"
    shutil.rmtree(results, ignore_errors=True)
    t0 = _t0()
    try:
        _snakemake(["--cores", "2", "--keep-going", "--config", "analyses=[benchmarks/stallion.yaml]",
                    f"results={results}"])
        ok = True
    except RuntimeError as e:
        print(str(e)[-2000:])
        ok = False
    wall = _t0() - t0
    res = results / "stallion"
    fits = {}
    for name, d in (("sku", res / "fits/sku"), ("agency", res / "fits/agency"), ("bottom", res / "bottom")):
        if (d / "diagnostics.json").exists():
            fits[name] = json.loads((d / "diagnostics.json").read_text())
    scores = {}
    for level in ("sku", "agency"):
        f = res / "forecasts" / f"{level}.json"
        if f.exists():
            scores[level] = json.loads(f.read_text()).get("holdout")
    bottom = res / "bottom" / "forecasts.json"
    bottom_scores = json.loads(bottom.read_text())["levels"] if bottom.exists() else {}
    print(f"  stallion: workflow {wall:.0f} s, {'finished' if ok else 'FAILED'}", flush=True)
    return {"case": "stallion", "workflow_s": wall, "finished": ok, "fits": fits, "scores": scores,
            "bottom_scores": bottom_scores}


def bottom_coverage_case(seeds=(1, 2, 3, 4, 5)) -> dict:
    """retail_demand's bottom model on data the bundled config was not made for: the simulator's own truth
    with other seeds (every drawn effect, price path and count differs), each analysis run by the workflow
    (ingest, fit_bottom) with the bundled config's settings. Per seed and parameter of the config's
    ``recovery.levels.bottom`` mapping: the posterior mean, the 90 % interval and whether it covers the truth."""
    import arviz as az
    import numpy as np
    import yaml

    from hbm.simulate import RETAIL_TRUTH, retail

    base = yaml.safe_load((ROOT / "config/analyses/retail_demand.yaml").read_text())
    mapping = base["recovery"]["levels"]["bottom"]
    rows = []
    for seed in seeds:
        name = f"retail_seed_{seed}"
        folder = WORK / "bottom_coverage" / name
        folder.mkdir(parents=True, exist_ok=True)
        df, truth = retail(dict(RETAIL_TRUTH, seed=seed))
        cfg = {k: v for k, v in base.items() if k != "recovery"}
        cfg.update(name=name, data={"path": str(folder / "sales.csv")})
        # files rewritten only when their content changes: Snakemake reruns what an edit of the code or
        # of the config affects, and keeps a finished fit otherwise
        for file, text in (("sales.csv", df.to_csv(index=False)), ("analysis.yaml", yaml.safe_dump(cfg, sort_keys=False))):
            if not (folder / file).exists() or (folder / file).read_text() != text:
                (folder / file).write_text(text)
        results = folder / "results"
        t0 = _t0()
        _snakemake([str(results / name / "bottom" / "diagnostics.json"), "--cores", "2", "--config",
                    f"analyses=[{folder / 'analysis.yaml'}]", f"results={results}"])
        wall = _t0() - t0
        diag = json.loads((results / name / "bottom" / "diagnostics.json").read_text())
        post = az.from_netcdf(results / name / "bottom" / "posterior.nc").posterior
        for var, key in mapping.items():
            x = post[var].values.reshape(post[var].shape[0] * post[var].shape[1], -1)
            want = np.ravel(truth[key])
            if x.shape[1] != want.size:
                continue
            lo, hi = np.quantile(x, [0.05, 0.95], axis=0)
            rows.append({"seed": seed, "parameter": var, "truth_key": key, "values": int(want.size),
                         "covered": int(((lo <= want) & (want <= hi)).sum()),
                         "mean": float(x.mean(axis=0)[0]), "lo": float(lo[0]), "hi": float(hi[0]),
                         "truth": float(want[0]), "z": float((x.mean(axis=0)[0] - want[0]) / x.std(axis=0)[0]),
                         "passed": diag["passed"], "attempts": len(diag["attempts"]), "fit_s": diag.get("seconds", wall)})
        print(f"  bottom_coverage seed {seed}: {wall:.0f} s, passed {diag['passed']}", flush=True)
    return {"rows": rows, "seeds": list(seeds)}


def _bottom_coverage_lines(m: dict) -> list[str]:
    rows = m["rows"]
    lines = ["## The bottom model's recovery on other seeds of the bundled shape (retail_demand config; 2 cores)", "",
             f"Simulator seeds {m['seeds']} (every effect, price path and count drawn anew); the workflow's fit_bottom "
             "with the bundled settings. 90 % equal-tailed intervals.", "",
             "| seed | passed | attempts | fit s | elasticity (truth) | 90 % | z | promotion | 90 % | z |",
             "|---:|---|---:|---:|---|---|---:|---:|---|---:|"]
    for seed in m["seeds"]:
        r = {x["parameter"]: x for x in rows if x["seed"] == seed}
        e, p = r.get("elasticity"), r.get("promotion")
        if not (e and p):
            continue
        lines.append(f"| {seed} | {e['passed']} | {e['attempts']} | {e['fit_s']:.0f} | {e['mean']:.3f} ({e['truth']}) | "
                     f"{e['lo']:.3f} .. {e['hi']:.3f} | {e['z']:+.2f} | {p['mean']:.3f} ({p['truth']}) | "
                     f"{p['lo']:.3f} .. {p['hi']:.3f} | {p['z']:+.2f} |")
    n = sum(x["values"] for x in rows)
    c = sum(x["covered"] for x in rows)
    lines += ["", f"Over every mapped parameter and seed: {c} of {n} true values inside their 90 % intervals "
              f"({100 * c / max(n, 1):.0f} %).", ""]
    return lines


def _note(m: dict) -> list[str]:
    """A case's ``note`` in raw.json (how it was run: a load on the machine, a measurement made outside
    ``make bench``), as a paragraph."""
    return [m["note"], ""] if m.get("note") else []


def _stallion_lines(m: dict) -> list[str]:
    lines = ["## Stallion: per-level fits and the bottom model (benchmarks/stallion.yaml; hurdle gamma; 2 cores)", "",
             *_note(m),
             f"Workflow ingest to report {m['workflow_s']:.0f} s ({'finished' if m['finished'] else 'did NOT finish'}); "
             "holdout: the last 6 months. CRPS from 4,000 posterior predictive draws; the seasonal-naive forecast "
             "repeats the value 12 months earlier.", "",
             "| fit | seconds | passed | attempts | failures |", "|---|---:|---|---:|---|"]
    for name, d in m["fits"].items():
        fails = "; ".join(f"{c['label']} {c['value']:.3g}" for c in d.get("checks", []) if not c["passed"]) or "-"
        lines.append(f"| {name} | {d.get('seconds', float('nan')):.0f} | {d.get('passed')} | "
                     f"{len(d.get('attempts', []))} | {fails} |")
    lines += ["", "| level | bottom model CRPS | per-level fit CRPS | seasonal naive CRPS | bottom 90 % coverage | "
              "per-level 90 % coverage |", "|---|---:|---:|---:|---:|---:|"]
    for level, entry in m["bottom_scores"].items():
        h = entry.get("holdout") or {}
        own = entry.get("per_level_fit") or {}
        if not h:
            continue
        lines.append(f"| {level} | {h['model']['crps']:.1f} | {own.get('crps', float('nan')):.1f} | "
                     f"{h['seasonal_naive']['crps']:.1f} | {h['model']['coverage_90']:.2f} | "
                     f"{own.get('coverage_90', float('nan')):.2f} |")
    return lines + [""]


# --------------------------------------------------------------------------------------------------------
# RESULTS.md


def _versions() -> str:
    from importlib.metadata import version

    pkgs = ["pymc", "pytensor", "nutpie", "numba", "arviz", "snakemake", "numpy"]
    return ", ".join(f"{p} {version(p)}" for p in pkgs)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, Python {platform.python_version()}, {platform.system()}"


def stress_case(seeds=(1,)) -> dict:
    """The stress battery (benchmarks/stress.py): every shape fitted with hbm's defaults only."""
    from benchmarks import stress

    rows = []
    for name in stress.SHAPES:
        for seed in seeds:
            rows.append(stress.run_shape(name, seed))
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


def write_results(found: dict, path: Path, reps: int) -> None:
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = [
        "# Benchmark results", "",
        f"Written by `make bench` (benchmarks/bench.py) on {time.strftime('%Y-%m-%d %H:%M')}, commit {git}.", "",
        f"- Machine: {_machine()}; load average at the end {os.getloadavg()[0]:.2f}",
        f"- Versions: {_versions()}",
        f"- {reps} repetitions per fit case, ours and the baseline alternating, each fit in a fresh process "
        "(compile included). Wall = model build + compile + sampling (imports excluded, ~3-4 s for both). "
        "ESS/s = minimum bulk ESS over the model's parameters / wall. Medians; ratio = ours / baseline of the "
        "median ESS/s.", "",
    ]
    lines += ["Measured: " + ", ".join(f"{c} {found[c].get('measured', '?')}" for c in CASES if c in found), ""]
    fits = [found[c] for c in FITS if c in found]
    if fits:
        lines += ["## Ours against plain PyMC", "",
                  "| case | who | wall s | compile s | sampling s | min bulk ESS | ESS/s | divergences | max R-hat | ratio |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for f in fits:
            for who in ("ours", "baseline"):
                m = f["median"][who]
                lines.append(f"| {f['case']} | {who} | {m['wall_s']:.1f} | {m['compile_s']:.1f} | {m['sampling_s']:.1f} | "
                             f"{m['min_bulk_ess']:.0f} | {m['ess_per_s']:.1f} | {m['divergences']:.0f} | {m['max_rhat']:.3f} | "
                             f"{'**%.1fx**' % f['ratio_ess_per_s'] if who == 'ours' else ''} |")
        lines += [""]
        for f in fits:
            o = f["runs"]["ours"][0]
            lines.append(f"- {f['case']}: ours = hbm's model and config ({o['settings']}); baseline = {f['baseline']}. "
                         f"Per repetition ours / baseline ESS/s: "
                         + ", ".join(f"{a['ess_per_s']:.1f} / {b['ess_per_s']:.1f}" for a, b in zip(f["runs"]["ours"], f["runs"]["baseline"]))
                         + f"; divergences: {[r['divergences'] for r in f['runs']['ours']]} / {[r['divergences'] for r in f['runs']['baseline']]}.")
        lines.append("")
    if "overhead" in found:
        o = found["overhead"]["median"]
        lines += ["## Workflow overhead (grouped)", "",
                  "| measure | median s |", "|---|---:|",
                  f"| whole DAG, ingest to report (prior check, fit, posterior check, report; `snakemake --cores 2`) | {o['dag_core_s']:.1f} |",
                  f"| the fit alone (one Python process: imports, data, build, compile, sample) | {o['fit_alone_s']:.1f} |",
                  f"| **ratio DAG / fit** (target <= 2) | **{found['overhead']['ratio']:.2f}** |",
                  f"| no-op rerun (target < 5 s) | {o['noop_s']:.1f} |",
                  *([f"| no-op rerun where `scontrol` fails at once (no Slurm client, or a stub first on PATH) | {o['noop_no_scontrol_s']:.1f} |"]
                    if "noop_no_scontrol_s" in o else []),
                  f"| default DAG of the bundled config (adds pooling variants and the long-run validation), once | {o['dag_default_s']:.1f} |",
                  ""]
    if "sbc" in found:
        f = found["sbc"]
        first, last = list(f["median"])[0], list(f["median"])[-1]
        lines += [f"## Simulation-based calibration: one job per simulation against batches (grouped, centered, "
                  f"{f['simulations']} simulations, `snakemake --cores 2`)", "",
                  "| sbc.batch | jobs | median s | per simulation s |", "|---:|---:|---:|---:|"]
        lines += [f"| {b} | {-(-f['simulations'] // int(b))} | {m:.1f} | {m / f['simulations']:.2f} |" for b, m in f["median"].items()]
        lines += ["", f"Ratio of medians, batch {first} / batch {last}: **{f['ratio']:.1f}x**. Same ranks either way "
                  f"(each simulation's own seed): {f['same_ranks']}. Runs (s): "
                  + "; ".join(f"batch {b}: {', '.join(f'{x:.1f}' for x in v)}" for b, v in f["runs"].items()) + ".", ""]
    if "compile" in found:
        lines += ["## Compile cost (grouped; each fit a fresh process sharing one base_compiledir, empty before "
                  "the first)", "",
                  "| sampler | fit | draws | compile s | sampling s |", "|---|---|---:|---:|---:|"]
        lines += [f"| {r['sampler']} | {r['fit']} | {r['draws']} | {r['compile_s']:.1f} | {r['sampling_s']:.1f} |"
                  for r in found["compile"]["rows"]]
        lines.append("")
    if "first_impression" in found:
        f = found["first_impression"]
        lines += ["## First impression: `make run` from a fresh clone (2 cores)", "", *_note(f),
                  "| part | s |", "|---|---:|",
                  f"| set-up (`make venv`: venv + pip install; pip's download cache warm) | {f['setup_s']:.0f} |",
                  f"| `make run` (every bundled analysis) | {f['run_s']:.0f} |",
                  f"| of which compile (sum over fit jobs) | {f['compile_s']:.0f} |",
                  f"| of which sampling (sum over fit jobs) | {f['sampling_s']:.0f} |",
                  f"| **total** (target 600) | **{f['total_s']:.0f}** |", ""]
    if "m5" in found:
        m = found["m5"]
        lines += ["## M5 at three levels (benchmarks/m5.yaml; 2 cores)", "", *_note(m),
                  f"Data: {m['data']['rows']:,} rows, {m['data']['series']:,} series x {m['data']['days']} days, "
                  f"{100 * m['data']['zeros']:.1f} % zeros. Preparation (wide -> long) {m['prepare_s']:.0f} s; "
                  f"workflow ingest to report {m['workflow_s']:.0f} s ({'finished' if m['finished'] else 'did NOT finish'}; target 900).", "",
                  "| level | fit s | passed | max R-hat | min bulk ESS | min tail ESS | divergences | E-BFMI min |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        for level, d in m["levels"].items():
            vals = {c["name"]: c["value"] for c in d.get("checks", [])}
            lines.append(f"| {level} | {d.get('seconds', float('nan')):.0f} | {d.get('passed')} | "
                         f"{vals.get('r_hat', float('nan')):.3f} | {vals.get('ess_bulk', float('nan')):.0f} | "
                         f"{vals.get('ess_tail', float('nan')):.0f} | {vals.get('divergences', float('nan')):.0f} | "
                         f"{vals.get('ebfmi', float('nan')):.2f} |")
        lines += ["", "| job | s | max RSS MB |", "|---|---:|---:|"]
        lines += [f"| {j['job']} | {j['s']:.1f} | {j['max_rss_mb']:.0f} |" for j in m["jobs"]]
        lines.append("")
    if "stallion" in found:
        lines += _stallion_lines(found["stallion"])
    if "bottom_coverage" in found:
        lines += _bottom_coverage_lines(found["bottom_coverage"])
    if "accuracy" in found:
        from benchmarks import accuracy

        lines += accuracy.lines(found["accuracy"])
    if "gradient" in found:
        from benchmarks import gradient

        lines += gradient.lines(found["gradient"])
    if "memory" in found:
        from benchmarks import memory

        lines += ["## Peak memory of the jobs that handle draws x rows (M5's product level; benchmarks/memory.py)",
                  "", *_note(found["memory"]), *memory.lines(found["memory"]), ""]
    if "samplers" in found:
        from benchmarks import samplers

        lines += ["## Sampling choices on one large model (M5 bottom model, a thirtieth of its series; "
                  "benchmarks/samplers.py; 2 cores)", "", *_note(found["samplers"]), *samplers.lines(found["samplers"])]
    from benchmarks import gpu

    if gpu.RECORD.exists():  # measured on a lent GPU machine (benchmarks/gpu.py), not by make bench
        lines += ["## The GPU path: NumPyro on an H200 (M5 bottom model; benchmarks/gpu.py, not part of `make bench`)",
                  "", *gpu.lines(json.loads(gpu.RECORD.read_text()))]
    if "seeds" in found:
        from benchmarks import seeds

        lines += seeds.lines(found["seeds"])
    if "stress" in found:
        from benchmarks import stress

        lines += ["## Stress battery: simulated shapes fitted with defaults only (benchmarks/stress.py; 2 cores)", "",
                  *_note(found["stress"]), *stress.table(found["stress"]["rows"]), ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("case")
    w.add_argument("who", choices=["ours", "baseline"])
    w.add_argument("seed", type=int)
    w.add_argument("--draws", type=int)
    w.add_argument("--sampler")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {CASES}")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS_MD)
    p.add_argument("--fresh", action="store_true", help="forget the cases measured by earlier runs")
    a = p.parse_args(argv)
    if a.cmd == "worker":
        print(json.dumps(worker(a.case, a.who, a.seed, a.draws, a.sampler)))
        return 0
    cases = [c for c in a.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        p.error(f"unknown cases {unknown}; choose from {CASES}")
    raw = WORK / "raw.json"
    # cases not run this time keep the numbers of the last run that measured them (each carries its date)
    found = json.loads(raw.read_text()) if raw.exists() and not a.fresh else {}
    for case in cases:
        print(f"{case} ...", flush=True)
        if case in FITS:
            found[case] = fits_case(case, a.reps)
        elif case == "overhead":
            found[case] = overhead_case(a.reps)
        elif case == "sbc":
            found[case] = sbc_case(a.reps)
        elif case == "compile":
            found[case] = compile_case()
        elif case == "first_impression":
            found[case] = first_impression_case()
        elif case == "m5":
            found[case] = m5_case()
        elif case == "stallion":
            found[case] = stallion_case()
        elif case == "stress":
            found[case] = stress_case()
        elif case == "bottom_coverage":
            found[case] = bottom_coverage_case()
        elif case == "accuracy":
            from benchmarks import accuracy

            found[case] = accuracy.accuracy_case()
        elif case == "memory":
            from benchmarks import memory

            found[case] = memory.case(WORK / "memory")
        elif case == "samplers":
            from benchmarks import m5, samplers

            sales = WORK / "m5" / "sales.parquet"
            if not sales.exists():
                m5.prepare(sales)
            found[case] = samplers.case(sales)
        elif case == "seeds":
            from benchmarks import seeds

            found[case] = seeds.run()
        elif case == "gradient":
            from benchmarks import gradient, m5

            sales = WORK / "m5" / "sales.parquet"
            if not sales.exists():
                m5.prepare(sales)
            found[case] = gradient.gradient_case(sales)
        found[case]["measured"] = time.strftime("%Y-%m-%d %H:%M")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(found, indent=1, default=str))
        write_results(found, a.out, a.reps)
    print(f"wrote {a.out} (raw numbers: {raw})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
