import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from hbm.config import level_inference, level_spec, load_analyses
from hbm.errors import ConfigError
from hbm.provenance import code_fingerprint
from hbm.seeds import derive_seed
from hbm.versions import CURRENT, LABEL, version_dir

validate(config, "../schemas/config.schema.yaml")

# Jobs import hbm from this checkout (also in conda environments, which do not install it) and share
# one PyTensor compile cache outside results/, so an unchanged model is not compiled again.
# The command line that started the run is recorded in provenance.json (jobs inherit the environment;
# a job's own, nested Snakemake invocation keeps the first one).
os.environ.setdefault("HBM_SNAKEMAKE_COMMAND", shlex.join(["snakemake", *sys.argv[1:]]))
os.environ.update(
    PYTHONPATH=workflow.basedir,
    PYTENSOR_FLAGS=f"compiledir={os.path.join(workflow.basedir, '.cache', 'pytensor')}",
)

try:
    ANALYSES = load_analyses(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None

RESULTS = config["results"]
VERSION_LABEL = LABEL.pattern.strip("^$")
ENV = "../../environment.yml"


wildcard_constraints:
    analysis=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    level=r"[A-Za-z][A-Za-z0-9_]*",


def get_analysis(wildcards):
    return ANALYSES[wildcards.analysis]


def get_data_file(wildcards):
    return get_analysis(wildcards)["data"]["path"]


def get_sources(wildcards):
    """The analysis's config and data files, whose content and sha256 go into NetCDF attributes."""
    a = get_analysis(wildcards)
    return {"config_file": a["config_file"], "data_file": a["data"]["path"]}


def get_spec(wildcards):
    return level_spec(get_analysis(wildcards), wildcards.level)


def get_inference(wildcards):
    return level_inference(get_analysis(wildcards), wildcards.level)


def get_specs(wildcards):
    """The spec of every level of the analysis, keyed by level."""
    return {level: level_spec(get_analysis(wildcards), level) for level in get_levels(wildcards)}


def get_seed(stage):
    """The job's seed: derived from the analysis's seed, its name, the level and the stage."""

    def seed(wildcards):
        base = get_analysis(wildcards)["inference"]["seed"]
        return derive_seed(base, wildcards.analysis, wildcards.get("level", ""), stage)

    return seed


def get_setting(*keys):
    """A value of the analysis config, e.g. get_setting("checks", "prior_draws")."""

    def value(wildcards):
        v = get_analysis(wildcards)
        for k in keys:
            v = v[k]
        return v

    return value


def get_fit_thresholds(wildcards):
    """The convergence thresholds (not pareto_k, which only posterior_check uses: editing it must not refit)."""
    t = get_analysis(wildcards)["checks"]["thresholds"]
    return {k: v for k, v in t.items() if k != "pareto_k"}


def get_levels(wildcards):
    return list(get_analysis(wildcards)["levels"])


def level_files(pattern):
    """One path per level of the analysis, from a pattern with {analysis} and {level}."""

    def files(wildcards):
        return expand(pattern, analysis=wildcards.analysis, level=get_levels(wildcards))

    return files


def forecasts(wildcards):
    """Whether the analysis forecasts (a count family with a horizon or a holdout)."""
    f = get_analysis(wildcards)["forecast"]
    return f["horizon"] > 0 or f["holdout"] > 0


def if_forecasts(files):
    """``files`` (a function of wildcards) for analyses that forecast, else nothing."""

    def inputs(wildcards):
        return files(wildcards) if forecasts(wildcards) else []

    return inputs


def get_all_reports():
    return expand(f"{RESULTS}/{{analysis}}/report.html", analysis=list(ANALYSES))


def version_inputs(key):
    """The report and provenance of version ``wildcards[key]`` (built by this DAG only for "current")."""

    def files(wildcards):
        label = wildcards[key]
        folder = version_dir(RESULTS, wildcards.analysis, label)
        if label != CURRENT and not os.path.isfile(os.path.join(folder, "provenance.json")):
            raise WorkflowError(
                f"version {label!r} of {wildcards.analysis} has no results in {folder}/: make them first with "
                f"`hbm regenerate <config file> --label {label}` (or --rev {label} for a git revision)"
            )
        return {"report": os.path.join(folder, "report.html"), "provenance": os.path.join(folder, "provenance.json")}

    return files
