"""The cost of one log-density gradient of the bottom model per row, against the arithmetic it needs.

M5's bottom level (30,490 item x store series, 28 days, 853,720 rows; ``benchmarks/m5.py`` prepares the long
table from ``../shared/data/m5``) as a negative binomial bottom model: an intercept pooled along item (item ->
dept -> cat) and store (store -> state), and a weekly season (3 Fourier pairs) per store. Three ways to get
the log density and its gradient at the same point, each timed as the median of repeated calls on one core:

- ``plain``: the model with the observed ``y`` (``pm.NegativeBinomial``), compiled by PyTensor's numba
  backend (what nutpie runs when the fast likelihood is not used);
- ``fast``: hbm's sampling model, the likelihood as one Potential (:meth:`hbm.model.families.Family.fast_loglik`),
  same backend;
- ``limit``: the arithmetic alone, one fused numba loop over the rows: gather the linear predictor from the
  unit effects, one exp and one log per row, the likelihood's sum and its gradient scattered back into the
  unit effects. What any implementation must at least do; the other two are reported as multiples of it.

Also checks that the three agree on the log-likelihood's value and gradient (the limit's by its own formula).
The result is the ``gradient`` case of ``make bench`` (benchmarks/RESULTS.md): ns per row per gradient.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEASON = {"name": "weekly", "period": 7, "order": 3}


def m5_spec() -> dict:
    return {
        "analysis": "m5_gradient", "level": "bottom", "holdout": 0,
        "columns": {"target": "units", "time": "date", "covariates": []},
        "model": {"family": "negative_binomial", "trend": None, "seasonality": None, "parametrization": "auto",
                  "priors": {}},
        "bottom": {"series": ["item_id", "store_id"],
                   "hierarchies": {"item": ["item_id", "dept_id", "cat_id"], "store": ["store_id", "state_id"]},
                   "effects": {"intercept": ["item", "store"], "weekly": "store"}, "seasonalities": [SEASON]},
    }


def m5_design(sales: Path, series: int | None = None, every: int = 1):
    """The bottom model's design of M5's long table (the first ``series`` series, or all; of those, every
    ``every``-th)."""
    import pandas as pd

    from hbm import bottom
    from hbm.ingest import PERIOD
    from hbm.model.design import design

    df = pd.read_parquet(sales)
    if series is not None:
        keep = df[["item_id", "store_id"]].drop_duplicates().iloc[:series]
        df = df.merge(keep, on=["item_id", "store_id"])
    if every > 1:
        keep = df[["item_id", "store_id"]].drop_duplicates().iloc[::every]
        df = df.merge(keep, on=["item_id", "store_id"])
    days = sorted(df["date"].unique())
    df[PERIOD] = df["date"].map({d: i for i, d in enumerate(days)})
    spec = m5_spec()
    return design(bottom.table(df, spec), spec), spec


def _median_call(fn, arg, reps: int, min_s: float = 2.0) -> float:
    fn(arg)  # warm
    times = []
    t_end = time.perf_counter() + min_s
    while len(times) < reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
        if len(times) >= 20 * reps:
            break
    return float(np.median(times))


def model_gradient(model):
    """(point as one flat vector, f(vector) -> (logp, gradient)) compiled with PyTensor's numba backend."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.pytensorf import join_nonshared_inputs

    point = model.initial_point()
    logp = model.logp()
    grad = pt.grad(logp, model.value_vars)
    [logp, grad_flat], flat = join_nonshared_inputs(point, [logp, pt.concatenate([g.ravel() for g in grad])],
                                                    model.value_vars)
    fn = pytensor.function([flat], [logp, grad_flat], mode="NUMBA")
    x0 = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars]).astype("float64")
    return x0, fn


def limit_kernel():
    """The fused loop: value and gradient (wrt the per-row linear predictor's parts) of sum over rows of
    y eta - (alpha + y) log(alpha + exp(eta)), with eta = a_item[i] + a_store[s] + F[r] . b[s]."""
    import numba

    @numba.njit(cache=False, fastmath=False)
    def kernel(y, item, store, F, a_item, a_store, b, alpha, g_item, g_store, g_b):
        g_item[:] = 0.0
        g_store[:] = 0.0
        g_b[:] = 0.0
        total = 0.0
        k = F.shape[1]
        for r in range(y.shape[0]):
            s = store[r]
            eta = a_item[item[r]] + a_store[s]
            for j in range(k):
                eta += F[r, j] * b[s, j]
            mu = np.exp(eta)
            total += y[r] * eta - (alpha + y[r]) * np.log(alpha + mu)
            d = y[r] - (alpha + y[r]) * mu / (alpha + mu)
            g_item[item[r]] += d
            g_store[s] += d
            for j in range(k):
                g_b[s, j] += d * F[r, j]
        return total

    return kernel


def measure(sales: Path, series: int | None = None, reps: int = 20) -> dict:
    """ns per row per gradient of ``plain``, ``fast`` and ``limit`` on the first ``series`` series (or all)."""
    from hbm.model.builder import build

    data, spec = m5_design(sales, series)
    rows = int(data.y.size)
    out = {"rows": rows, "series": len(data.series), "distinct_counts": int(np.unique(data.y).size)}
    for who, fast in (("plain", False), ("fast", True)):
        t0 = time.perf_counter()
        model = build(data, spec, fast=fast)
        x0, fn = model_gradient(model)
        compile_s = time.perf_counter() - t0
        s = _median_call(fn, x0, reps)
        out[who] = {"ns_per_row": s / rows * 1e9, "ms": s * 1e3, "compile_s": compile_s, "parameters": int(x0.size)}
        print(f"  gradient {who}: {s * 1e3:.2f} ms per call, {s / rows * 1e9:.1f} ns per row "
              f"({x0.size} parameters, compile {compile_s:.0f} s)", flush=True)
    # the arithmetic limit at a random point
    rng = np.random.default_rng(0)
    item, store = data.unit_of["item"][data.series_idx], data.unit_of["store"][data.series_idx]
    F = np.ascontiguousarray(data.effects["weekly"].x)
    a_item = rng.normal(0, 0.5, size=item.max() + 1)
    a_store = rng.normal(0, 0.5, size=store.max() + 1)
    b = rng.normal(0, 0.2, size=(store.max() + 1, F.shape[1]))
    y = data.y.astype("float64")
    g = (np.empty_like(a_item), np.empty_like(a_store), np.empty_like(b))
    kernel = limit_kernel()
    args = (y, item.astype("int64"), store.astype("int64"), F, a_item, a_store, b, 2.0, *g)
    total = kernel(*args)
    s = _median_call(lambda a: kernel(*a), args, reps)
    # the same value by the plain formula (numpy, no fusion): a check of the kernel
    eta = a_item[item] + a_store[store] + (F * b[store]).sum(axis=1)
    direct = float(np.sum(y * eta - (2.0 + y) * np.log(2.0 + np.exp(eta))))
    out["limit"] = {"ns_per_row": s / rows * 1e9, "ms": s * 1e3, "agrees": bool(np.isclose(total, direct, rtol=1e-9))}
    print(f"  gradient limit: {s * 1e3:.2f} ms per call, {s / rows * 1e9:.1f} ns per row", flush=True)
    for who in ("plain", "fast"):
        out[who]["ratio_to_limit"] = out[who]["ns_per_row"] / out["limit"]["ns_per_row"]
    return out


def gradient_case(sales: Path) -> dict:
    """The M5 bottom level in full and a tenth of its series (how the cost scales)."""
    import os
    import platform

    return {"case": "gradient", "threads": os.environ.get("NUMBA_NUM_THREADS", "default"),
            "cpu": platform.processor() or platform.machine(),
            "tenth": measure(sales, series=3049), "full": measure(sales)}


def lines(m: dict) -> list[str]:
    """The RESULTS.md section."""
    out = ["## Cost of one gradient per row (M5 bottom level; benchmarks/gradient.py; one core)", "",
           "Negative binomial bottom model over M5's item x store series (intercept pooled along item -> dept -> cat "
           "and store -> state, a weekly season per store), log density and gradient at one point, median of "
           "repeated calls. `plain`: the observed `pm.NegativeBinomial`; `fast`: hbm's sampling model (one "
           "Potential: lgamma over distinct counts, linear terms as dot products); `limit`: one fused numba loop "
           "doing only the arithmetic (gather, exp, log, scatter of the gradient). Both PyTensor graphs compiled "
           "with its numba backend (what nutpie runs).", "",
           "| data | rows | distinct counts | who | ms per gradient | ns per row | x limit | compile s |",
           "|---|---:|---:|---|---:|---:|---:|---:|"]
    for key, label in (("tenth", "3,049 series"), ("full", "30,490 series")):
        d = m.get(key)
        if not d:
            continue
        for who in ("plain", "fast", "limit"):
            w = d[who]
            ratio = f"{w['ratio_to_limit']:.1f}" if "ratio_to_limit" in w else "1"
            comp = f"{w['compile_s']:.0f}" if "compile_s" in w else ""
            out.append(f"| {label} | {d['rows']:,} | {d['distinct_counts']} | {who} | {w['ms']:.2f} | "
                       f"{w['ns_per_row']:.1f} | {ratio} | {comp} |")
    out += ["", "The issue's target: <= 20 ns per row per chain. `limit` agrees with the direct formula: "
            + str(all(m[k]["limit"]["agrees"] for k in ("tenth", "full") if k in m)) + ".", ""]
    return out
