# hbm: raw data -> validated Parquet -> a table per level -> prior checks -> fits per level -> diagnostics
# -> posterior checks -> forecasts (log-link models) -> HTML report; optionally one bottom model over every
# series (e.g. product x store) whose forecasts are summed to every level; compare two versions of an analysis.
# Every rule calls one function of the hbm package (see hbm/).
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, workflow.basedir)

from hbm.cache import pytensor_flags  # noqa: E402 (hbm from this checkout)
from hbm.config import load_analyses, quick_analysis, results_folder  # noqa: E402
from hbm.errors import ConfigError  # noqa: E402
from hbm.versions import LABEL  # noqa: E402


configfile: "config/config.yaml"


# The config: validated against its schema, every analysis loaded and checked (hbm.config), quick mode
# applied. Jobs import hbm from this checkout (also in conda environments, which do not install it) and
# share one PyTensor compile cache outside results/, so an unchanged model is not compiled again: all of
# it, the numba cache (<base_compiledir>/numba) too, in .cache/pytensor of the checkout (base_compiledir;
# compiledir alone left the numba cache in ~/.pytensor), with PyTensor's generated source (generated_src/,
# not a new file per compiled Op in /tmp). Cold or warm, the draws are the same (hbm.cache).
# The command line that started the run is recorded in provenance.json (jobs inherit the environment; a
# job's own, nested Snakemake invocation keeps the first one).
validate(config, "workflow/schemas/config.schema.yaml")
os.environ.setdefault("HBM_SNAKEMAKE_COMMAND", shlex.join(["snakemake", *sys.argv[1:]]))
os.environ.update(
    PYTHONPATH=workflow.basedir,
    PYTENSOR_FLAGS=pytensor_flags(os.path.join(workflow.basedir, ".cache", "pytensor")),
)
try:
    ANALYSES = load_analyses(config)
except ConfigError as e:
    raise WorkflowError(str(e)) from None
# Quick mode (`--config quick=true`, for iterating on a config; hbm.config.quick_analysis): its results go
# to <results>/quick/ and its report says "quick mode" at the top, so they are never taken for (or
# overwrite) a full run's.
QUICK = config.get("quick") in (True, "true")  # `--config quick=true` gives the text "true"
if QUICK:
    ANALYSES = {name: quick_analysis(a) for name, a in ANALYSES.items()}
RESULTS = results_folder(config["results"], os.getcwd())  # one spelling of each path (hbm.config)
RESULTS = f"{RESULTS}/quick" if QUICK else RESULTS
VERSION_LABEL = LABEL.pattern.strip("^$")
ENV = "../../environment.yml"  # relative to the rule files


wildcard_constraints:
    analysis=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    level=r"[A-Za-z][A-Za-z0-9_]*",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/prior_check.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/posterior_check.smk"
include: "workflow/rules/forecast.smk"
include: "workflow/rules/bottom.smk"
include: "workflow/rules/pooling.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/sbc.smk"


rule all:
    default_target: True
    input:
        get_all_reports(),
