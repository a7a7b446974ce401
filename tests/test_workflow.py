"""The whole Snakemake workflow on tiny settings, in an isolated working directory (marked slow)."""

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
from html.parser import HTMLParser

import pytest
import yaml

from conftest import GROUP_NAMES, ROOT, snakemake

pytestmark = pytest.mark.slow


def tiny_grouped(analysis_cfg):
    cfg = analysis_cfg("grouped")
    cfg.pop("validation", None)  # its long reference run is tested in test_validate.py
    cfg["data"]["path"] = "data/grouped.csv"
    cfg["inference"].update(draws=300, tune=300, chains=2, max_attempts=1)
    cfg["checks"]["prior_draws"] = 50
    cfg["checks"]["on_failure"] = "flag"  # tiny settings may miss the ESS bar; the run must still finish
    return cfg


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self._in_h = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_h = tag in ("h1", "h2")

    def handle_data(self, data):
        if self._in_h and data.strip():
            self.headings.append(data.strip())

    def handle_endtag(self, tag):
        self._in_h = False


def planned_jobs(proc) -> dict:
    """Job counts from a dry run's 'Job stats' table."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", block, re.M) if m.group(1) != "total"}


@pytest.fixture(scope="module")
def finished_run(grouped_run):
    """The session's tiny grouped run (conftest.grouped_run: its groups are named with HTML payloads)."""
    return grouped_run


@contextlib.contextmanager
def edited(path, edit):
    """The YAML config at ``path`` changed by ``edit(cfg)`` within the block, then restored: its text and its
    modification time (the shared run's outputs stay newer than the config, so nothing is left to rerun)."""
    original, stat = path.read_text(), path.stat()
    cfg = yaml.safe_load(original)
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_every_output_exists_and_parses(finished_run):
    import arviz as az
    import pyarrow.parquet as pq

    res = finished_run / "results" / "grouped"
    assert pq.read_table(res / "data/observations.parquet").num_rows == 120
    post = az.from_netcdf(res / "fits/group/posterior.nc")
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"):
        assert group in post.children
    assert set(post.posterior["group"].values) == set(GROUP_NAMES.values())
    assert post.posterior.sizes["draw"] == 300 and post.posterior.sizes["chain"] == 2
    assert json.loads(post.posterior.attrs["hbm_spec"])["level"] == "group"
    diag = json.loads((res / "fits/group/diagnostics.json").read_text())
    assert {c["name"] for c in diag["checks"]} == {"r_hat", "ess_bulk", "ess_tail", "divergences", "ebfmi"}
    ppc = json.loads((res / "checks/group/posterior_predictive.json").read_text())
    assert set(ppc["p_values"]) == {"mean", "sd", "min", "max"}
    assert set(ppc["coverage"]["90"]["per_group"]) == set(GROUP_NAMES.values())
    assert 0.75 < ppc["coverage"]["90"]["overall"] <= 1.0
    assert ppc["loo"]["pareto_k"] and sum(ppc["loo"]["pareto_k"].values()) == 120
    prior = json.loads((res / "checks/group/prior_predictive.json").read_text())
    assert 0 < prior["share_in_plausible_range"] <= 1
    for png in ["checks/group/prior_predictive.png", "checks/group/posterior_predictive.png",
                "checks/group/loo_pit.png", "checks/group/shrinkage.png", "fits/group/rank.png"]:
        assert (res / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_report_is_self_contained_with_provenance(finished_run):
    res = finished_run / "results" / "grouped"
    html = (res / "report.html").read_text()
    page = _Page()
    page.feed(html)
    # prior, rank, shrinkage, posterior predictive, LOO-PIT and the pooling comparison
    assert len(page.images) == 6 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert html.count("<h3>Pooling comparison</h3>") == 1
    assert "grouped" in page.headings and "Provenance" in page.headings
    assert "Validation against reference posteriors" in page.headings
    validation = json.loads((res / "validation/group/reference.json").read_text())
    assert validation["reference"] == "long run of the same model" and len(validation["parameters"]) == 8
    for r in validation["parameters"]:
        assert r["z"] == pytest.approx((r["mean"] - r["reference_mean"]) / (r["mcse"] ** 2 + r["reference_mcse"] ** 2)
                                       ** 0.5)
    assert "Level: group" in " ".join(page.headings)
    prov = json.loads((res / "provenance.json").read_text())
    config_file = finished_run / "config/analyses/grouped.yaml"
    assert prov["config_sha256"] == hashlib.sha256(config_file.read_bytes()).hexdigest()
    assert prov["data_sha256"] == hashlib.sha256((finished_run / "data/grouped.csv").read_bytes()).hexdigest()
    assert prov["config_sha256"] in html and prov["packages"]["pymc"] == importlib.metadata.version("pymc")
    assert {r["job"] for r in prov["rules"]} >= {"ingest", "fit_group", "prior_check_group", "posterior_check_group"}
    assert prov["snakemake_command"].startswith("snakemake --snakefile") and "--cores 2" in prov["snakemake_command"]
    diag = json.loads((res / "fits/group/diagnostics.json").read_text())
    assert prov["job_seeds"]["fit_group"] == diag["seed"] and set(prov["job_seeds"]) == {
        "prior_check_group", "fit_group", "posterior_check_group", "fit_complete_group", "fit_none_group"}


def test_rerun_has_nothing_to_do_and_draws_rerun_only_the_fit_chain(finished_run):
    assert planned_jobs(snakemake(finished_run, "-n")) == {}
    with edited(finished_run / "config/analyses/grouped.yaml", lambda cfg: cfg["inference"].update(draws=301)):
        jobs = planned_jobs(snakemake(finished_run, "-n"))
        # the same results folder written as an absolute path: the same records, the same reruns
        absolute = planned_jobs(snakemake(finished_run, "-n", "--config", f"results={finished_run / 'results'}"))
    assert jobs == {"fit": 1, "fit_pooling": 2, "posterior_check": 1, "pooling": 1, "validate": 1, "report": 1,
                    "all": 1}
    assert absolute == jobs


def test_cluster_resources_rerun_no_fit_or_check(finished_run):
    """Resources (hbm/resources.py) reach no params: editing them reruns no stage; only what takes the
    config file itself as input (the report, which records its text) is redone."""
    resources = {"fit": {"mem_mb": 9000, "runtime": 300}, "ingest": {"mem_mb": 3000}, "report": {"runtime": 20}}
    with edited(finished_run / "config/analyses/grouped.yaml", lambda cfg: cfg.update(resources=resources)):
        proc = snakemake(finished_run, "-n")
    jobs = planned_jobs(proc)
    assert jobs.get("report") == 1 and not {"ingest", "aggregate", "prior_check", "fit", "posterior_check"} & set(jobs)
    assert "params have changed" not in proc.stdout + proc.stderr
    assert planned_jobs(snakemake(finished_run, "-n")) == {}  # restored: the shared run is up to date again


def test_schema_error_stops_before_any_job(workdir, analysis_cfg):
    cfg = tiny_grouped(analysis_cfg)
    cfg["inference"]["chains"] = "four"
    wd = workdir(cfg, ROOT / "data/grouped/grouped.csv")
    proc = snakemake(wd, check=False)
    assert proc.returncode != 0
    assert "config/analyses/grouped.yaml: key 'inference.chains': 'four' is not of type 'integer'" in proc.stderr
    assert not (wd / "results").exists()


def test_bad_data_stops_at_ingest_with_a_clear_message(workdir, analysis_cfg, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("group,y\na,1.0\nb,oops\n")
    cfg = tiny_grouped(analysis_cfg)
    cfg["data"]["path"] = "data/grouped.csv"
    wd = workdir(cfg, bad, "grouped.csv")
    proc = snakemake(wd, check=False)
    assert proc.returncode != 0
    assert "data/grouped.csv, column 'y', row 2: must be a finite number (value 'oops')" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (wd / "results/grouped/data/observations.parquet").exists()


def _draws_sha256(posterior_nc) -> str:
    """sha256 of every posterior variable's draws (names, shapes and bytes), independent of file attrs."""
    import arviz as az

    post = az.from_netcdf(posterior_nc).posterior
    h = hashlib.sha256()
    for name in sorted(post.data_vars):
        values = post[name].values
        h.update(name.encode())
        h.update(str(values.shape).encode())
        h.update(values.tobytes())
    return h.hexdigest()


def test_draws_are_bit_identical_with_one_or_two_cores(finished_run, tmp_path):
    """Same config and data, --cores 1 in a fresh directory: the posterior draws hash the same."""
    import shutil

    for part in ("config", "data"):
        shutil.copytree(finished_run / part, tmp_path / part)
    snakemake(tmp_path, "--cores", "1", "results/grouped/fits/group/posterior.nc")
    one = _draws_sha256(tmp_path / "results/grouped/fits/group/posterior.nc")
    two = _draws_sha256(finished_run / "results/grouped/fits/group/posterior.nc")
    assert one == two


def test_pooling_comparison_of_the_three_variants(finished_run):
    """Complete and no pooling refitted besides the partial fit and compared by PSIS-LOO (hbm/pooling.py)."""
    import arviz as az

    res = finished_run / "results" / "grouped"
    out = json.loads((res / "pooling/group/comparison.json").read_text())
    assert out["level"] == "group" and out["method"] == "stacking" and out["observations"] == 120
    rows = {r["variant"]: r for r in out["variants"]}
    assert set(rows) == {"partial", "complete", "none"} and out["best"] == out["variants"][0]["variant"]
    assert sum(r["weight"] for r in rows.values()) == pytest.approx(1.0)
    assert all(sum(r["pareto_k"].values()) == 120 for r in rows.values())
    assert rows["complete"]["elpd_diff"] > 2 * rows["complete"]["dse"]  # means 3/5/7: one mean for all loses
    partial = json.loads((res / "fits/group/diagnostics.json").read_text())
    assert rows["partial"]["diagnostics"]["seed"] == partial["seed"]
    assert len({r["diagnostics"]["seed"] for r in rows.values()}) == 3
    for variant, absent in (("complete", {"tau", "theta_offset"}), ("none", {"mu", "tau"})):
        idata = az.from_netcdf(res / f"pooling/group/{variant}.nc")
        assert "log_likelihood" in idata.children and not absent & set(idata.posterior.data_vars)
        assert json.loads(idata.posterior.attrs["hbm_spec"])["pooling"] == variant
        assert idata.posterior.sizes["draw"] == 300 and idata.posterior.sizes["chain"] == 2
    complete = az.from_netcdf(res / "pooling/group/complete.nc").posterior
    assert float(abs(complete["theta"] - complete["mu"]).max()) == 0.0
    assert (res / "pooling/group/comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

