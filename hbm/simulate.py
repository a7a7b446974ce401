"""Simulators that made the bundled example data, from documented true values and fixed seeds.

    python -m hbm.simulate schools data/schools     # scores.csv + true_values.json
    python -m hbm.simulate grouped data/grouped     # grouped.csv + true_values.json

Running them again reproduces the bundled files byte for byte (tests/test_simulate.py checks this).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hbm.io import write_json, write_text

SCHOOLS_TRUTH = {
    "seed": 20261121,
    "schools": 12,
    "students_min": 15,
    "students_max": 40,
    "mu_overall": 68.0,  # mean of the school means (score points)
    "tau": 6.0,  # sd of the school means
    "sigma_sq_alpha": 5.0,  # sigma_j^2 ~ InvGamma(alpha, beta): within-school variance
    "sigma_sq_beta": 400.0,
}

GROUPED_TRUTH = {"seed": 20261122, "groups": ["a", "b", "c"], "sizes": [20, 40, 60], "means": [3.0, 5.0, 7.0],
                 "sds": [1.0, 2.0, 3.0]}


def schools(truth: dict = SCHOOLS_TRUTH) -> tuple[pd.DataFrame, dict]:
    """Test scores: y_ij ~ N(mu_j, sigma_j^2), mu_j ~ N(mu_overall, tau^2), sigma_j^2 ~ InvGamma(alpha, beta)."""
    rng = np.random.default_rng(truth["seed"])
    J = truth["schools"]
    names = [f"school_{j + 1:02d}" for j in range(J)]
    n = rng.integers(truth["students_min"], truth["students_max"] + 1, size=J)
    mu = rng.normal(truth["mu_overall"], truth["tau"], size=J)
    sigma_sq = truth["sigma_sq_beta"] / rng.gamma(truth["sigma_sq_alpha"], 1.0, size=J)
    sigma = np.sqrt(sigma_sq)
    school = np.repeat(np.arange(J), n)
    score = np.round(rng.normal(mu[school], sigma[school]), 1)
    df = pd.DataFrame({"student": np.arange(1, school.size + 1), "school": np.asarray(names)[school], "score": score})
    values = {**truth, "school_names": names, "students": n.tolist(), "school_means": np.round(mu, 4).tolist(),
              "school_sds": np.round(sigma, 4).tolist()}
    return df, values


def grouped(truth: dict = GROUPED_TRUTH) -> tuple[pd.DataFrame, dict]:
    """Three groups of sizes 20/40/60 with means 3/5/7 and sds 1/2/3."""
    rng = np.random.default_rng(truth["seed"])
    parts = [pd.DataFrame({"group": g, "y": np.round(rng.normal(m, s, size=n), 4)})
             for g, n, m, s in zip(truth["groups"], truth["sizes"], truth["means"], truth["sds"])]
    return pd.concat(parts, ignore_index=True), dict(truth)


SIMULATORS = {"schools": (schools, "scores.csv"), "grouped": (grouped, "grouped.csv")}


def write(name: str, folder) -> tuple[Path, Path]:
    simulate, filename = SIMULATORS[name]
    df, truth = simulate()
    folder = Path(folder)
    data_path, truth_path = folder / filename, folder / "true_values.json"
    write_text(df.to_csv(index=False, lineterminator="\n"), data_path)
    write_json(truth, truth_path)
    return data_path, truth_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(SIMULATORS))
    parser.add_argument("folder")
    args = parser.parse_args(argv)
    for p in write(args.name, args.folder):
        print(p)


if __name__ == "__main__":
    main()


