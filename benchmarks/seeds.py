"""Every bundled analysis fitted with other inference seeds, defaults only (project issue 16).

    make bench CASES=seeds                                   # seeds 1..5, every bundled analysis
    .venv/bin/python -m benchmarks.seeds --seeds 1,2 --analyses grouped,radon   # a part, printed

Each bundled analysis of ``config/config.yaml`` is run by the workflow with its config as shipped except
``inference.seed``; only the fit jobs (every level's fit and the bottom model's) and the jobs they need,
each seed in its own results folder. Per analysis, fit and seed: whether the fit passed every check, the
attempts the escalation ladder used, the divergences of the first and of the kept attempt, and the kept
attempt's max R-hat and min bulk ESS. A fit that passes only after escalation counts as passing, and the
table says how many needed it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "results" / "benchmarks" / "seeds"
SEEDS = (1, 2, 3, 4, 5)


def bundled() -> list[Path]:
    """The analyses ``make run`` runs (config/config.yaml)."""
    main = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return [ROOT / p for p in main["analyses"]]


def fit_targets(cfg: dict, results: Path) -> dict[str, Path]:
    """fit name -> its diagnostics.json: one per level, and ``bottom`` where the analysis has a bottom model."""
    out = {level: results / cfg["name"] / "fits" / level / "diagnostics.json" for level in cfg.get("levels", {})}
    if cfg.get("bottom"):
        out["bottom"] = results / cfg["name"] / "bottom" / "diagnostics.json"
    return out


def _check(d: dict, name: str):
    return next((c["value"] for c in d.get("checks", []) if c["name"] == name), None)


def _first_divergences(d: dict) -> int | None:
    """Divergences of the first attempt: its own record, else (one attempt) the kept one's."""
    attempts = d.get("attempts") or []
    if len(attempts) <= 1:
        return _check(d, "divergences")
    for failure in attempts[0].get("failures", []):
        if failure.startswith("divergent transitions"):
            return int(failure.split()[2])
    return 0


def row(analysis: str, fit: str, seed: int, d: dict | None) -> dict:
    if d is None:
        return {"analysis": analysis, "fit": fit, "seed": seed, "ran": False}
    attempts = d.get("attempts") or [{}]
    return {"analysis": analysis, "fit": fit, "seed": seed, "ran": True, "passed": bool(d["passed"]),
            "attempts": len(attempts), "first_passed": bool(attempts[0].get("passed", d["passed"])),
            "divergences_first": _first_divergences(d), "divergences": _check(d, "divergences"),
            "r_hat": _check(d, "r_hat"), "ess_bulk": _check(d, "ess_bulk"), "seconds": d.get("seconds"),
            "failures": [c["label"] for c in d.get("checks", []) if not c["passed"]]}


def run(seeds=SEEDS, analyses: list[str] | None = None, work: Path = WORK) -> dict:
    """Fit every bundled analysis (or those named) with each seed; returns ``{"rows": [...], ...}``."""
    rows, wall = [], {}
    configs = [p for p in bundled() if analyses is None or p.stem in analyses]
    for seed in seeds:
        results, folder = work / f"seed_{seed}" / "results", work / f"seed_{seed}" / "config"
        folder.mkdir(parents=True, exist_ok=True)
        paths, targets, names = [], [], {}  # the configs' own paths are relative to the checkout (cwd)
        for path in configs:
            cfg = yaml.safe_load(path.read_text())
            cfg.setdefault("inference", {})["seed"] = seed
            out = folder / path.name
            text = yaml.safe_dump(cfg, sort_keys=False)
            if not out.exists() or out.read_text() != text:  # unchanged configs keep their finished fits
                out.write_text(text)
            paths.append(str(out))
            names[cfg["name"]] = fit_targets(cfg, results)
            targets += [str(t) for t in names[cfg["name"]].values()]
        t0 = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), *targets, "--cores", "2",
                               "--keep-going", "--config", f"analyses=[{','.join(paths)}]", f"results={results}"],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ})
        wall[seed] = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
        for name, fits in names.items():
            for fit, diag in fits.items():
                d = json.loads(diag.read_text()) if diag.exists() else None
                rows.append(row(name, fit, seed, d))
                r = rows[-1]
                print(f"  seed {seed} {name}/{fit}: " + (
                    f"{'passed' if r['passed'] else 'FAILED'} in {r['attempts']} attempt(s), "
                    f"divergences {r['divergences_first']} -> {r['divergences']}" if r["ran"] else "did not run"),
                    flush=True)
    return {"seeds": list(seeds), "rows": rows, "workflow_s": wall}


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def lines(m: dict) -> list[str]:
    """The table for benchmarks/RESULTS.md."""
    rows = m["rows"]
    out = ["## Bundled analyses on other seeds: defaults only (benchmarks/seeds.py; 2 cores)", "",
           f"Every bundled analysis (config/config.yaml) as shipped, `inference.seed` in {m['seeds']}; only the fit "
           "jobs. Divergences: first attempt -> kept attempt.", "",
           "| analysis | fit | seed | passed | attempts | divergences | max R-hat | min bulk ESS | s | failed checks |",
           "|---|---|---:|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        if not r["ran"]:
            out.append(f"| {r['analysis']} | {r['fit']} | {r['seed']} | did not run | | | | | | |")
            continue
        out.append(f"| {r['analysis']} | {r['fit']} | {r['seed']} | {'yes' if r['passed'] else '**NO**'} | "
                   f"{r['attempts']} | {_fmt(r['divergences_first'], '.0f')} -> {_fmt(r['divergences'], '.0f')} | "
                   f"{_fmt(r['r_hat'], '.3f')} | {_fmt(r['ess_bulk'], '.0f')} | {_fmt(r['seconds'], '.0f')} | "
                   f"{', '.join(r['failures']) or '-'} |")
    ran = [r for r in rows if r["ran"]]
    passed = sum(r["passed"] for r in ran)
    first = sum(r["first_passed"] for r in ran)
    zero = sum(r["divergences"] == 0 for r in ran)
    out += ["", f"Fits passing every check: {passed} of {len(rows)} after escalation, {first} at the first attempt; "
            f"{zero} of {len(rows)} kept fits with 0 divergences. Workflow time per seed: "
            + ", ".join(f"{s}: {w:.0f} s" for s, w in m["workflow_s"].items()) + ".", ""]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--analyses", help="comma-separated names of bundled analyses (default: every one)")
    a = p.parse_args(argv)
    m = run([int(s) for s in a.seeds.split(",")], a.analyses.split(",") if a.analyses else None)
    print("\n".join(lines(m)))
    return 0 if all(r.get("passed") for r in m["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
