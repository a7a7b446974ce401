"""Validation against a reference posterior: z scores, sd ratios and name mapping with known answers."""

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from hbm.errors import ConfigError
from hbm.validate import compare, expand_mapping, reference_from_csv


def ours():
    return pd.DataFrame({"mean": [4.5, 3.5, 6.0, 5.0], "sd": [3.3, 3.2, 5.6, 4.6], "mcse": [0.03, 0.04, 0.05, 0.05]},
                        index=["mu", "tau", "theta[A]", "theta[B]"])


def test_vectors_map_in_order_to_one_based_reference_names():
    m = expand_mapping({"mu": "mu_alpha", "theta": "alpha", "tau": "sigma_alpha"}, ours())
    assert m == {"mu": "mu_alpha", "theta[A]": "alpha[1]", "theta[B]": "alpha[2]", "tau": "sigma_alpha"}
    with pytest.raises(ConfigError, match="key 'validation.parameters': the model has no parameter 'gamma'"):
        expand_mapping({"gamma": "beta"}, ours())


def test_z_uses_both_mcse_and_the_sd_must_be_within_ten_percent():
    ref = pd.DataFrame({"mean": [4.41, 3.0], "sd": [3.31, 3.6], "mcse": [0.04, 0.03]}, index=["mu", "tau"])
    rows = {r["parameter"]: r for r in compare(ours(), ref, {"mu": "mu", "tau": "tau"})}
    assert rows["mu"]["z"] == pytest.approx((4.5 - 4.41) / np.hypot(0.03, 0.04))
    assert rows["mu"]["passed"]  # z = 1.8, sd ratio 0.997
    assert rows["tau"]["z"] == pytest.approx(0.5 / 0.05) and not rows["tau"]["passed"]  # z = 10


def test_an_sd_outside_ten_percent_passes_only_within_its_monte_carlo_error():
    ref = pd.DataFrame({"mean": [4.5], "sd": [3.75], "mcse": [0.04]}, index=["mu"])  # ours 3.3: ratio 0.88
    assert not compare(ours(), ref, {"mu": "mu"})[0]["passed"]  # no mcse_sd anywhere: the 10 % rule alone
    noisy = ours().assign(mcse_sd=0.2)  # a heavy-tailed posterior: its sd is uncertain by 6 %
    row = compare(noisy, ref.assign(mcse_sd=0.05), {"mu": "mu"})[0]
    assert row["sd_z"] == pytest.approx((3.3 - 3.75) / np.hypot(0.2, 0.05)) and row["passed"]
    precise = ours().assign(mcse_sd=0.02)
    assert not compare(precise, ref.assign(mcse_sd=0.02), {"mu": "mu"})[0]["passed"]  # 16 mcse apart


def test_reference_csvs_of_the_bundled_examples_read_with_their_mcse():
    eight = reference_from_csv(ROOT / "data/eight_schools/reference_posterior.csv")
    assert eight.loc["mu", "mean"] == pytest.approx(4.41, abs=0.01) and eight.loc["mu", "mcse"] > 0
    radon = reference_from_csv(ROOT / "data/radon/reference_posterior.csv")
    row = radon.loc["mu_alpha"]
    assert row["mcse"] == pytest.approx(row["sd"] / np.sqrt(7759.54))


@pytest.mark.slow
def test_bundled_examples_match_their_reference_posteriors(tmp_path):
    """The validation target on the bundled eight schools (posteriordb's reference), radon (a long-run
    reference of posteriordb's radon_mn) and grouped (its own long run), at their configured settings."""
    import json
    import shutil

    from conftest import snakemake

    for part in ("config", "data"):
        shutil.copytree(ROOT / part, tmp_path / part)
    names = {"eight_schools": "school", "radon": "county", "grouped": "group"}
    analyses = ",".join(f"config/analyses/{a}.yaml" for a in names)
    targets = [f"results/{a}/validation/{level}/reference.json" for a, level in names.items()]
    snakemake(tmp_path, *targets, "--config", f"analyses=[{analyses}]")
    for target in targets:
        out = json.loads((tmp_path / target).read_text())
        assert out["passed"], [(r["parameter"], r["z"], r["sd_ratio"]) for r in out["parameters"] if not r["passed"]]
        assert out["max_abs_z"] < 4
        for r in out["parameters"]:  # each sd within 10 % of the reference's, or within its Monte Carlo error
            assert abs(r["sd_ratio"] - 1) <= 0.1 or abs(r["sd_z"]) < 4, r
            print(target, r["parameter"], round(r["sd_ratio"], 3), r["sd_z"])
    eight = json.loads((tmp_path / "results/eight_schools/validation/school/reference.json").read_text())
    assert [r["reference_parameter"] for r in eight["parameters"]] == ["mu", "tau"] + [f"theta[{i}]" for i in
                                                                                       range(1, 9)]


def test_recovery_puts_each_true_value_against_its_interval():
    import arviz as az

    from hbm.validate import recovery_rows

    rng = np.random.default_rng(4)
    idata = az.from_dict({"posterior": {"mu": rng.normal(0, 1, (2, 2000)), "theta": rng.normal(5, 1, (2, 2000, 2))}},
                         coords={"group": ["a", "b"]}, dims={"theta": ["group"]})
    rows = {r["parameter"]: r for r in recovery_rows(idata, {"m": 0.5, "t": [5.2, 9.0]}, {"mu": "m", "theta": "t"})}
    assert rows["mu"]["inside"] and rows["mu"]["lower"] == pytest.approx(-1.645, abs=0.1)
    assert rows["theta[a]"]["inside"] and not rows["theta[b]"]["inside"]
    assert rows["theta[b]"]["upper"] == pytest.approx(5 + 1.645, abs=0.1)
    with pytest.raises(ConfigError, match="theta has 2 elements, 't3' has 3 values"):
        recovery_rows(idata, {"t3": [1, 2, 3]}, {"theta": "t3"})
