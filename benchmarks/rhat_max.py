"""How large the largest R-hat of a fit with many parameters is by chance alone.

hbm checks the largest rank-normalized split R-hat over every parameter of a fit against 1.01 (ArviZ's
``rhat``, Vehtari et al. 2021). For one parameter from chains that mix well, R-hat exceeds 1.01 rarely; for
the largest of thousands it is the rule unless the chains are long: its chance spread shrinks with the
effective sample size. This draws P independent parameters whose chains mix perfectly (AR(1) draws with
autocorrelation ``rho``, so that the ESS is known) and reports, over repetitions, the median of the largest
R-hat and how often it exceeds 1.01, for each number of chains and draws asked for.

    .venv/bin/python -m benchmarks.rhat_max --parameters 3100 --draws 1000,2000 --chains 2,4

Measured for M5's product level (3,049 item intercepts): its first attempt with the defaults failed on one
item's R-hat (1.017) with 2 chains of 1,000 draws and every other check passed; see RESULTS.md.
"""

from __future__ import annotations

import argparse

import numpy as np


def largest_rhat(parameters: int, chains: int, draws: int, rho: float, rng: np.random.Generator) -> tuple:
    """The largest R-hat and the median bulk ESS over ``parameters`` independent AR(1) chains."""
    import arviz_stats  # noqa: F401 (registers the azstats accessor)
    import xarray as xr

    e = rng.normal(size=(chains, draws, parameters))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    scale = np.sqrt(1 - rho ** 2)
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + scale * e[:, t]
    da = xr.DataArray(x, dims=("chain", "draw", "parameter"))
    dims = ["chain", "draw"]
    return float(da.azstats.rhat(sample_dims=dims).max()), float(np.median(da.azstats.ess(sample_dims=dims)))


def table(parameters: int, chains: list[int], draws: list[int], rho: float, repetitions: int, seed: int = 0,
          threshold: float = 1.01) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for d in draws:
        for c in chains:
            runs = [largest_rhat(parameters, c, d, rho, rng) for _ in range(repetitions)]
            largest = np.array([r[0] for r in runs])
            rows.append({"parameters": parameters, "chains": c, "draws": d, "rho": rho,
                         "median_ess": float(np.median([r[1] for r in runs])),
                         "median_largest_rhat": float(np.median(largest)),
                         "share_above": float(np.mean(largest > threshold)), "repetitions": repetitions})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parameters", type=int, default=3100)
    p.add_argument("--chains", default="2,4", help="comma-separated")
    p.add_argument("--draws", default="1000,2000", help="kept draws per chain, comma-separated")
    p.add_argument("--rho", type=float, default=0.5, help="lag-1 autocorrelation of every chain")
    p.add_argument("--repetitions", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print("| parameters | chains | draws | median bulk ESS | median largest R-hat | share > 1.01 | repetitions |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in table(a.parameters, [int(c) for c in a.chains.split(",")], [int(d) for d in a.draws.split(",")],
                   a.rho, a.repetitions, a.seed):
        print(f"| {r['parameters']:,} | {r['chains']} | {r['draws']:,} | {r['median_ess']:,.0f} | "
              f"{r['median_largest_rhat']:.4f} | {r['share_above']:.2f} | {r['repetitions']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
