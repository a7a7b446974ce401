import copy
import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hbm import cache

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

# PyTensor's generated source in the compile cache, not a new file per compiled Op in the system's temporary
# folder, which PyTensor never cleans (what hbm.cache.install does for a sampling process, here for every test)
cache.keep_generated_src()


def load_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / "analyses" / f"{name}.yaml").read_text())


@pytest.fixture
def analysis_cfg():
    """A fresh copy of a bundled analysis config (as written, before defaults)."""
    return lambda name: copy.deepcopy(load_config(name))


def make_spec(level="group", column="group", target="y", noise="group", parametrization="noncentered",
              parents=(), predictors=(), covariates=(), measurement_sd=None, priors=None):
    return {
        "analysis": "test", "level": level,
        "columns": {"target": target, "time": None, "covariates": list(covariates), "measurement_sd": measurement_sd},
        "hierarchy": {"column": column, "parents": list(parents), "predictors": list(predictors)},
        "model": {"family": "normal", "noise": noise, "parametrization": parametrization, "priors": priors or {}},
    }


@pytest.fixture
def spec():
    return make_spec


def snakemake(workdir: Path, *args, check=True) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` (which holds config/config.yaml and the data)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture
def workdir(tmp_path):
    """An isolated working directory with one analysis (grouped, tiny sampler settings)."""

    def make(analysis: dict, data_src: Path | None = None, data_name: str | None = None) -> Path:
        if data_src is not None:
            dest = tmp_path / "data" / (data_name or data_src.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(data_src, dest)
        (tmp_path / "config" / "analyses").mkdir(parents=True, exist_ok=True)
        path = tmp_path / "config" / "analyses" / f"{analysis['name']}.yaml"
        path.write_text(yaml.safe_dump(analysis, sort_keys=False))
        (tmp_path / "config" / "config.yaml").write_text(
            yaml.safe_dump({"analyses": [f"config/analyses/{analysis['name']}.yaml"]})
        )
        return tmp_path

    return make


# HTML payloads as group names and description: the session's tiny grouped run (``grouped_run``) is also
# the report-safety check's (tests/test_report_safety.py)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PLAIN = "plain $1 & $2"                       # ordinary, but with '$' (mathtext) and '&'
DESCRIPTION = "<script>alert(2)</script>"     # config: the analysis description
GROUP_NAMES = {"a": SCRIPT, "b": IMG, "c": PLAIN}


@pytest.fixture(scope="session")
def grouped_run(tmp_path_factory):
    """The bundled grouped analysis run once for the session on tiny settings (2 chains x (300 + 300), a
    short "long" validation run, the pooling comparison): its groups renamed to HTML payloads
    (``GROUP_NAMES``) and a payload as its description. Used by tests/test_workflow.py and
    tests/test_report_safety.py; a test that edits its config restores it."""
    wd = tmp_path_factory.mktemp("grouped_run")
    rows = list(csv.reader(io.StringIO((ROOT / "data/grouped/grouped.csv").read_text())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([rows[0]] + [[GROUP_NAMES[g], y] for g, y in rows[1:]])
    (wd / "data").mkdir()
    (wd / "data" / "grouped.csv").write_text(out.getvalue())
    cfg = load_config("grouped")
    cfg["description"] = DESCRIPTION
    cfg["validation"]["long_run"] = {"draws": 1000, "tune": 500}  # a short "long" run: the report's section
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["inference"].update(draws=300, tune=300, chains=2, max_attempts=1)
    cfg["checks"].update(prior_draws=50, on_failure="flag")  # tiny settings may miss the ESS bar
    (wd / "config" / "analyses").mkdir(parents=True)
    (wd / "config" / "analyses" / "grouped.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump({"analyses": ["config/analyses/grouped.yaml"]}))
    snakemake(wd)
    return wd
