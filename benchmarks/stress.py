"""Stress battery: simulated shapes that break one parametrization or the other, each fitted with hbm's
defaults only (automatic parametrization, default priors and sampler settings, the escalation ladder).

    .venv/bin/python -m benchmarks.bench --cases stress        # all shapes, 1 seed -> benchmarks/RESULTS.md
    .venv/bin/python -m benchmarks.stress --shapes few_big,many_single --seeds 1,2

Every shape is drawn with the project's simulators (:mod:`hbm.simulate`: ``schools`` for normal groups,
``retail`` for counts) with its own sizes; the table reports, per shape, whether the first attempt passed
every diagnostic, whether the fit passed after escalation, the attempts used, and the share of true group
values inside their 90 % posterior intervals (about 0.9 when the inference is right). ``tests/test_stress.py``
runs small versions of some shapes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hbm import simulate

THRESHOLDS = {"r_hat": 1.01, "ess_per_chain": 100, "divergences": 0, "ebfmi": 0.3}
INFERENCE = {"sampler": "nutpie", "chains": 4, "draws": 1000, "tune": 1000, "target_accept": 0.9, "max_attempts": 3}

# name -> (simulator, overrides of its truth, what it stresses)
SHAPES = {
    "few_big": ("schools", {"schools": 3, "students_min": 200, "students_max": 200, "tau": 6.0},
                "3 groups x 200 values, wide spread: centered is right"),
    "many_single": ("schools", {"schools": 300, "students_min": 1, "students_max": 1, "tau": 2.0, "noise": "known"},
                    "300 groups x 1 value with a known sd (as eight schools), spread below the noise: non-centered is right"),
    "many_big": ("schools", {"schools": 300, "students_min": 20, "students_max": 20, "tau": 6.0},
                 "300 groups x 20 values"),
    "unbalanced": ("schools", {"schools": 40, "students_min": 1, "students_max": 200, "tau": 4.0},
                   "40 groups of 1 to 200 values: a mixed vector"),
    "tau_tiny": ("schools", {"schools": 20, "students_min": 10, "students_max": 10, "tau": 0.2},
                 "tau tiny next to the noise (sd ~ 20)"),
    "tau_large": ("schools", {"schools": 20, "students_min": 5, "students_max": 5, "tau": 40.0,
                              "sigma_sq_beta": 40.0}, "tau large next to the noise"),
    "counts_single_digits": ("retail", {"products": 24, "stores": 2, "regions": 2, "categories": 3, "base_units": 1.0,
                                        "weeks": 78}, "counts in the single digits"),
    "counts_thousands": ("retail", {"products": 12, "stores": 4, "categories": 3, "base_units": 800.0,
                                    "weeks": 78}, "counts in the thousands"),
    "half_zeros": ("retail", {"products": 24, "stores": 2, "regions": 2, "categories": 3, "base_units": 0.3, "weeks": 78},
                   "about half the counts are zero"),
    "parents_3": ("retail", {"products": 30, "stores": 3, "categories": 3, "weeks": 78},
                  "3 parents (categories) of 10 products each"),
    "parents_30": ("retail", {"products": 60, "stores": 3, "categories": 30, "weeks": 78},
                   "30 parents of 2 products each"),
    "few_units_long": ("retail", {"products": 3, "stores": 3, "categories": 3, "weeks": 156},
                       "3 products (one per category), 3 years"),
}


def _normal_case(overrides: dict, seed: int):
    from hbm.models import level_data

    overrides = dict(overrides)
    # one value per group cannot inform its own sd: such data come with a known measurement sd (as the
    # eight schools' standard errors), here the simulator's true sd of the group
    noise = overrides.pop("noise", "group")
    truth = {**simulate.SCHOOLS_TRUTH, **overrides, "seed": seed}
    df, values = simulate.schools(truth)
    if noise == "known":
        df["sd"] = np.asarray(values["school_sds"])[df["school"].str.slice(7).astype(int).to_numpy() - 1]
    spec = {"analysis": "stress", "level": "school",
            "columns": {"target": "score", "time": None, "covariates": [],
                        "measurement_sd": "sd" if noise == "known" else None},
            "hierarchy": {"column": "school", "parents": [], "predictors": []},
            "model": {"family": "normal", "noise": noise, "parametrization": "auto", "priors": {}}}
    data = level_data(df, spec)
    return data, spec, {"theta": _by_label(values["school_names"], values["school_means"], data.groups)}


def _by_label(names: list[str], truth: list[float], labels: list[str]) -> np.ndarray:
    """The simulator's per-group truth, in the order of ``labels`` (the model's groups)."""
    lookup = dict(zip(names, truth))
    return np.array([lookup[lab] for lab in labels], dtype="float64")


def _retail_case(overrides: dict, seed: int):
    from hbm.aggregate import fit_rows, level_table
    from hbm.config import level_spec, validate_analysis
    from hbm.ingest import validate_table

    # chain-wide prices and promotions: the product level's elasticity and lift are then the truth's (with
    # prices set per store they describe a mix, which the battery does not measure)
    truth = {**simulate.RETAIL_TRUTH, "by_store": False, **overrides, "seed": seed}
    if "season_mu" in truth:
        truth["season_mu"] = truth["season_mu"][: 2 * truth["fourier_order"]]
    df, values = simulate.retail(truth)
    raw = {"name": "stress", "data": {"path": "sim.csv"},
           "columns": {"target": "units", "time": "week", "price": "price", "promotion": "promo",
                       "series_start": "data"},
           # the store level makes (week, product, store) the key; only the product level is fitted
           "levels": {"product": {"column": "product", "parents": ["category"]},
                      "store": {"column": "store", "parents": ["region"]}},
           "model": {"family": "negative_binomial", "trend": {"per": 52.18},
                     "seasonality": {"period": 52.18, "order": 2}}}
    cfg = validate_analysis(raw, "stress.yaml")
    spec = level_spec(cfg, "product")
    obs = validate_table(df.astype(str), "sim.csv", cfg["columns"], cfg["levels"], "negative_binomial")
    from hbm.models import level_data

    data = level_data(fit_rows(level_table(obs, spec, holdout=0)), spec)
    trend = dict(zip([f"prod_{p + 1:02d}" for p in range(truth["products"])], values["trend"]))
    return data, spec, {"trend": np.array([trend[g] for g in data.groups]),
                        "elasticity": np.array([truth["elasticity"]])}


def run_shape(name: str, seed: int = 1, inference: dict | None = None, cores: int = 2,
              sizes: dict | None = None) -> dict:
    """Simulate shape ``name`` with ``seed``, fit it with defaults, and score the fit. ``sizes`` overrides
    the shape's simulator settings (the tests run smaller versions)."""
    from hbm.fit import first_settings, reparametrizer, sample_until_passing
    from hbm.models import build_model, parametrization, resolve_priors
    from hbm.parametrization import summary

    simulator, overrides, what = SHAPES[name]
    overrides = {**overrides, **(sizes or {})}
    data, spec, truth = (_normal_case if simulator == "schools" else _retail_case)(overrides, seed)
    t0 = time.perf_counter()
    raw = parametrization(data, spec)
    decision = summary(raw, data)
    priors = resolve_priors(spec, data)
    model = build_model(data, spec, priors)
    settings, _ = first_settings({**INFERENCE, **(inference or {})}, data, spec)  # as the fit job does
    reparametrize, flipped = reparametrizer(data, spec, priors, raw)  # the fit job's ladder, model rung included
    idata, diag = sample_until_passing(model, settings, seed, THRESHOLDS, cores=cores, reparametrize=reparametrize)
    inside, total = 0, 0
    for var, true in truth.items():
        draws = idata.posterior[var]
        lo = np.atleast_1d(draws.quantile(0.05, ("chain", "draw")).values)
        hi = np.atleast_1d(draws.quantile(0.95, ("chain", "draw")).values)
        inside += int(np.sum((lo <= true) & (true <= hi)))
        total += int(np.size(true))
    return {
        "shape": name, "what": what, "seed": seed, "rows": int(data.y.size), "groups": len(data.groups),
        "first_attempt_passed": bool(diag["attempts"][0]["passed"]), "passed": bool(diag["passed"]),
        "attempts": len(diag["attempts"]), "failures": diag["attempts"][-1]["failures"], "flipped": list(flipped),
        "coverage_90": inside / max(total, 1), "truths": total,
        "parametrization": {e: [f"{r['layer']} {r['centered']}/{r['groups']}" for r in d["layers"]]
                            for e, d in decision.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def table(rows: list[dict]) -> list[str]:
    lines = ["| shape | what | seed | rows | groups | centered (effect: layer c/n) | 1st attempt | passed | attempts | "
             "90 % coverage | s |", "|---|---|---:|---:|---:|---|---|---|---:|---:|---:|"]
    for r in rows:
        par = "; ".join(f"{e}: {', '.join(v)}" for e, v in r["parametrization"].items())
        lines.append(f"| {r['shape']} | {r['what']} | {r['seed']} | {r['rows']:,} | {r['groups']} | {par} | "
                     f"{'yes' if r['first_attempt_passed'] else 'no'} | "
                     f"{'yes' if r['passed'] else 'NO: ' + '; '.join(r['failures'])} | {r['attempts']}"
                     f"{' (flipped: ' + ', '.join(r['flipped']) + ')' if r.get('flipped') else ''} | "
                     f"{r['coverage_90']:.2f} ({r['truths']}) | {r['seconds']:.0f} |")
    n = len(rows)
    first = sum(r["first_attempt_passed"] for r in rows)
    final = sum(r["passed"] for r in rows)
    cov = np.average([r["coverage_90"] for r in rows], weights=[r["truths"] for r in rows]) if rows else float("nan")
    lines += ["", f"Passed every diagnostic: {final} of {n} after escalation ({100 * final / max(n, 1):.0f} %), "
                  f"{first} of {n} at the first attempt ({100 * first / max(n, 1):.0f} %); 90 % intervals held "
                  f"the truth {100 * cov:.0f} % of the time over all true values."]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", default=",".join(SHAPES))
    p.add_argument("--seeds", default="1")
    p.add_argument("--out", default=None, help="JSON file for the rows")
    a = p.parse_args(argv)
    rows = []
    for name in a.shapes.split(","):
        for seed in map(int, a.seeds.split(",")):
            r = run_shape(name, seed)
            print(json.dumps(r), flush=True)
            rows.append(r)
    print("\n".join(table(rows)))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
