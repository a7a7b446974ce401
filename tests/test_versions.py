"""Versions of an analysis. End to end (slow: three small workflow runs): two versions of one analysis
under git, the older regenerated from its git revision into its own folder with identical numbers, a
comparison of the two, an archive that verifies, and reruns that follow code changes. Fast: labels,
refusals and code extraction."""

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, load_config, snakemake
from test_workflow import _draws_sha256, planned_jobs

from hbm.errors import ConfigError
from hbm.versions import check_label, extract_code, label_for, regenerate, version_dir

POSTERIOR = "fits/group/posterior.nc"


def git(wd, *args):
    subprocess.run(["git", "-C", str(wd), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def without_volatile(html: str) -> str:
    """The report minus what may differ between identical runs: timestamps, timings and the provenance
    section (which names the config file's path and the command line)."""
    html = html.split('<h2 id="provenance">')[0]
    return re.sub(r'<span class="[^"]*volatile[^"]*">.*?</span>', "", html)


def numbers(folder) -> dict:
    """Every number a version's report is made from, minus timings."""
    diag = json.loads((folder / "fits/group/diagnostics.json").read_text())
    diag.pop("seconds")
    for attempt in diag["attempts"]:  # each attempt's wall time: a timing, not a result
        attempt.pop("seconds")
    return {
        "draws": _draws_sha256(folder / POSTERIOR),
        "diagnostics": diag,
        "prior": json.loads((folder / "checks/group/prior_predictive.json").read_text()),
        "posterior": json.loads((folder / "checks/group/posterior_predictive.json").read_text()),
        "report": without_volatile((folder / "report.html").read_text()),
    }


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """A git repository with tags v1 and v2 of the grouped analysis; results/grouped holds v2's results,
    results/versions/v1/grouped the regenerated v1. Returns (workdir, numbers of the original v1 run)."""
    wd = tmp_path_factory.mktemp("versions")
    cfg = load_config("grouped")
    cfg.pop("validation", None)  # its long reference run is tested in test_validate.py
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["inference"].update(draws=300, tune=300, chains=2, max_attempts=1)
    # the pooling comparison's two extra fits per run are tested in test_workflow.py; versions need only one fit
    cfg["checks"].update(prior_draws=50, on_failure="flag", pooling_comparison=False)
    (wd / "data").mkdir()
    shutil.copy(ROOT / "data/grouped/grouped.csv", wd / "data/grouped.csv")
    (wd / "config/analyses").mkdir(parents=True)
    (wd / "config/config.yaml").write_text(yaml.safe_dump({"analyses": ["config/analyses/grouped.yaml"]}))
    path = wd / "config/analyses/grouped.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    git(wd, "init", "-q")
    git(wd, "add", "config", "data")
    git(wd, "commit", "-q", "-m", "v1")
    git(wd, "tag", "v1")
    snakemake(wd)
    v1 = numbers(wd / "results/grouped")

    cfg["model"]["priors"]["tau"] = {"dist": "halfnormal", "sigma": 1}  # v2: a tighter prior on the group sd
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    git(wd, "commit", "-q", "-am", "v2: tau ~ HalfNormal(1)")
    git(wd, "tag", "v2")
    snakemake(wd)

    proc = subprocess.run([sys.executable, "-m", "hbm", "regenerate", "config/analyses/grouped.yaml", "--rev", "v1",
                           "--directory", str(wd), "--cores", "2"], capture_output=True, text=True, cwd=wd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == str(wd / "results/versions/v1/grouped/report.html")
    return wd, v1


@pytest.mark.slow
def test_regenerated_version_has_the_original_numbers_bit_for_bit(versions):
    wd, v1 = versions
    again = numbers(wd / "results/versions/v1/grouped")
    assert again["draws"] == v1["draws"]
    assert again["diagnostics"] == v1["diagnostics"]
    assert again["prior"] == v1["prior"] and again["posterior"] == v1["posterior"]
    assert again["report"] == v1["report"]
    # the current results are v2's, untouched by the regeneration, and differ from v1's
    assert numbers(wd / "results/grouped")["draws"] != v1["draws"]
    copy = wd / "results/versions/v1/grouped.yaml"
    assert copy.read_text() == subprocess.run(["git", "-C", str(wd), "show", "v1:config/analyses/grouped.yaml"],
                                              capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_netcdf_attributes_carry_config_data_and_code(versions):
    import arviz as az

    wd, _ = versions
    post = az.from_netcdf(wd / "results/versions/v1/grouped" / POSTERIOR)
    attrs = post.posterior.attrs
    config = wd / "results/versions/v1/grouped.yaml"
    assert attrs["hbm_config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert attrs["hbm_config_text"] == config.read_text()
    assert attrs["hbm_data_sha256"] == hashlib.sha256((wd / "data/grouped.csv").read_bytes()).hexdigest()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert attrs["hbm_git_commit"] == head.stdout.strip() and attrs["hbm_git_dirty"] in ("true", "false")
    else:  # a checkout without git metadata
        assert attrs["hbm_git_commit"] == "unknown" and attrs["hbm_git_dirty"] == "unknown"
    assert json.loads(attrs["hbm_packages"])["pymc"] == importlib.metadata.version("pymc")
    assert post.sample_stats.attrs["hbm_config_sha256"] == attrs["hbm_config_sha256"]
    ppc = az.from_netcdf(wd / "results/versions/v1/grouped/checks/group/posterior_predictive.nc")
    assert ppc.posterior_predictive.attrs["hbm_data_sha256"] == attrs["hbm_data_sha256"]


@pytest.mark.slow
def test_compare_shows_the_config_diff_and_the_posterior_shift(versions):
    wd, _ = versions
    snakemake(wd, "results/grouped/compare/v1_vs_current.html")
    out = json.loads((wd / "results/grouped/compare/v1_vs_current.json").read_text())
    changed = [d["text"] for d in out["config_diff"] if d["kind"] in "+-"]
    assert changed == ["-      sigma: 10", "+      sigma: 1"]
    assert out["same_data"] and not out["same_config"] and out["same_code"]
    (level,) = out["levels"]
    assert level["level"] == "group" and level["elpd"]["paired"]
    assert level["elpd"]["delta"] == pytest.approx(level["elpd"]["elpd_b"] - level["elpd"]["elpd_a"])
    assert 0 < level["elpd"]["se"] < level["elpd"]["se_a"]  # paired: far below either elpd's own se
    params = {r["parameter"]: r for r in level["shift"]}
    assert {"mu", "tau", "theta[a]", "theta[b]", "theta[c]", "sigma[a]"} <= set(params)
    tau = params["tau"]
    assert tau["shift"] == pytest.approx((tau["mean_b"] - tau["mean_a"]) / tau["sd_a"])
    assert tau["mean_b"] < tau["mean_a"]  # the tighter prior pulls the group sd down
    html = (wd / "results/grouped/compare/v1_vs_current.html").read_text()
    assert "grouped: v1 vs current" in html and "+      sigma: 1" in html
    assert (wd / "results/grouped/compare/v1_vs_current.png").stat().st_size > 1000


@pytest.mark.slow
def test_compare_with_a_version_never_made_names_the_fix(versions):
    wd, _ = versions
    proc = snakemake(wd, "results/grouped/compare/v9_vs_current.html", check=False)
    assert proc.returncode != 0
    assert "version 'v9' of grouped has no results in results/versions/v9/grouped/" in proc.stderr
    assert "hbm regenerate" in proc.stderr


@pytest.mark.slow
def test_archive_verifies_and_a_changed_file_is_named(versions, tmp_path):
    import io
    import tarfile

    wd, _ = versions

    def hbm(*args):
        return subprocess.run([sys.executable, "-m", "hbm", *args], capture_output=True, text=True, cwd=wd)

    made = hbm("archive", "grouped")
    assert made.returncode == 0, made.stderr
    archive = wd / made.stdout.strip()
    assert archive.parent == wd / "results/archives" and archive.name.startswith("grouped-")
    ok = hbm("verify", str(archive), "--data", "data/grouped.csv")
    assert ok.returncode == 0, ok.stderr
    assert "files match the manifest; data matches" in ok.stdout
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        assert f"{top}/results/grouped/report.html" in names and f"{top}/requirements.lock" in names
        assert f"{top}/config/grouped.yaml" in names and f"{top}/data.sha256" in names
    # the same results archive to the same bytes
    again = hbm("archive", "grouped", "--output", str(tmp_path / "again.tar.gz"))
    assert again.returncode == 0 and (tmp_path / "again.tar.gz").read_bytes() == archive.read_bytes()
    # tamper with one result inside a copy of the archive
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name.endswith("fits/group/diagnostics.json"):
                data = data.replace(b'"passed": false', b'"passed": true').replace(b"1", b"2", 1)
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    failed = hbm("verify", str(bad))
    assert failed.returncode == 1
    assert "results/grouped/fits/group/diagnostics.json: checksum differs from MANIFEST.sha256" in failed.stderr
    other_data = tmp_path / "other.csv"
    other_data.write_text("group,y\na,1\n")
    wrong = hbm("verify", str(archive), "--data", str(other_data))
    assert wrong.returncode == 1 and "these are not the data that made the archived results" in wrong.stderr


@pytest.mark.slow
def test_a_code_change_reruns_only_the_rules_that_run_that_code(versions, tmp_path):
    """A copy of the workflow and hbm: unchanged, nothing to do; models.py edited, the model's jobs rerun;
    report.py edited, only the report."""
    wd, _ = versions
    code = tmp_path / "code"
    code.mkdir()
    for part in ("Snakefile", "workflow", "hbm"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, code / part)
    dry = ("--snakefile", str(code / "Snakefile"), "-n")
    assert planned_jobs(snakemake(wd, *dry)) == {}
    with open(code / "hbm/report.py", "a") as f:
        f.write("\n# a comment\n")
    assert planned_jobs(snakemake(wd, *dry)) == {"report": 1, "all": 1}
    with open(code / "hbm/models.py", "a") as f:
        f.write("\n# a comment\n")
    assert planned_jobs(snakemake(wd, *dry)) == {"prior_check": 1, "fit": 1, "posterior_check": 1, "report": 1,
                                                 "all": 1}


def test_labels_are_safe_folder_names_that_split_on_vs():
    assert label_for("name: x\n", "v1") == "v1"
    assert label_for("name: x\n", "HEAD~2") == "HEAD-2"
    assert label_for("name: x\n", "release/2026_11") == "release-2026-11"
    assert label_for("name: x\n") == hashlib.sha256(b"name: x\n").hexdigest()[:12]
    assert str(version_dir("results", "radon", "current")) == "results/radon"
    assert str(version_dir("results", "radon", "v1")) == "results/versions/v1/radon"
    for bad in ("current", "a_b", "../x", ".hidden", ""):
        with pytest.raises(ConfigError, match="version label"):
            check_label(bad)


def test_regenerate_refuses_before_running_anything(tmp_path):
    with pytest.raises(ConfigError, match="--with-code needs --rev"):
        regenerate("config.yaml", with_code=True, directory=tmp_path)
    with pytest.raises(ConfigError, match="old.yaml: no such config file"):
        regenerate("old.yaml", directory=tmp_path)
    (tmp_path / "old.yaml").write_text("name: demo\n")
    (tmp_path / "results/versions/v1").mkdir(parents=True)
    (tmp_path / "results/versions/v1/old.yaml").write_text("name: demo\nseed: 2\n")
    with pytest.raises(ConfigError, match="version 'v1' of demo already holds a different config"):
        regenerate("old.yaml", label="v1", directory=tmp_path)
    assert (tmp_path / "results/versions/v1/old.yaml").read_text() == "name: demo\nseed: 2\n"
    with pytest.raises(ConfigError, match="cannot read config.yaml at git revision 'nope'"):
        regenerate("config.yaml", rev="nope", directory=tmp_path)


def test_extract_code_gives_the_workflow_and_package_at_a_revision(tmp_path):
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("the checkout is not a git repository")
    snakefile = extract_code(ROOT, "HEAD", tmp_path)
    head = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD:hbm/models.py"], capture_output=True, text=True)
    assert snakefile.is_file() and (tmp_path / "workflow/rules/fit.smk").is_file()
    assert (tmp_path / "hbm/models.py").read_text() == head.stdout
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    from hbm.provenance import git_state

    assert git_state(tmp_path) == {"commit": commit.strip(), "dirty": False}
