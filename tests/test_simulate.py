import json

import numpy as np
import pandas as pd

from hbm import simulate

from conftest import ROOT


def test_bundled_files_are_reproduced_byte_for_byte(tmp_path):
    for name, (_, filename) in simulate.SIMULATORS.items():
        data, truth = simulate.write(name, tmp_path / name)
        assert data.read_bytes() == (ROOT / "data" / name / filename).read_bytes(), name
        assert truth.read_bytes() == (ROOT / "data" / name / "true_values.json").read_bytes(), name


def test_grouped_matches_its_description():
    df = pd.read_csv(ROOT / "data/grouped/grouped.csv")
    assert df.groupby("group").size().tolist() == [20, 40, 60]
    means = df.groupby("group")["y"].mean().to_numpy()
    assert np.all(np.abs(means - [3, 5, 7]) < 3 * np.array([1, 2, 3]) / np.sqrt([20, 40, 60]))


def test_schools_truth_is_consistent_with_data():
    truth = json.loads((ROOT / "data/schools/true_values.json").read_text())
    df = pd.read_csv(ROOT / "data/schools/scores.csv")
    sizes = df.groupby("school").size()
    assert sizes.tolist() == truth["students"]
    assert sizes.min() >= truth["students_min"] and sizes.max() <= truth["students_max"]
    means = df.groupby("school")["score"].mean().to_numpy()
    se = np.array(truth["school_sds"]) / np.sqrt(sizes.to_numpy())
    assert np.all(np.abs(means - truth["school_means"]) < 4 * se)
