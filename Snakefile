# hbm: raw data -> validated Parquet -> a table per level -> prior checks -> fits per level -> diagnostics
# -> posterior checks -> forecasts (log-link models) -> HTML report; optionally one bottom model over every
# series (e.g. product x store) whose forecasts are summed to every level; compare two versions of an analysis.
# Every rule calls one function of the hbm package (see hbm/).
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)


configfile: "config/config.yaml"


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
