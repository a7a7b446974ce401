from hbm.report import report
from hbm.smk import run

inp = snakemake.input
keys = ["prior_json", "prior_png", "posterior", "diagnostics", "rank_png", "ppc_json", "ppc_png",
        "loo_pit_png", "shrinkage_png"]
if inp.forecast_json:
    keys += ["forecast_json", "forecast_png"]
if inp.pooling_json:
    keys += ["pooling_json", "pooling_png"]
# the order of the report rule's `bottom` input
BOTTOM_KEYS = ["posterior", "diagnostics", "parametrization", "rank_png", "forecast_json", "forecast_png",
               "components_png"]
level_files = {
    level: {key: inp[key][i] for key in keys} for i, level in enumerate(snakemake.params.levels)
}
run(
    snakemake,
    report,
    snakemake.output.html,
    snakemake.output.provenance,
    analysis=snakemake.params.analysis,
    specs=snakemake.params.specs,
    level_files=level_files,
    summary_path=inp.summary,
    coherence_path=inp.coherence[0] if inp.coherence else None,
    validation_paths=list(inp.validation),
    recovery_paths=(inp.recovery_json[0], inp.recovery_png[0]) if inp.recovery_json else None,
    benchmarks=inp.benchmarks,
    seed=snakemake.params.seed,
    bottom_spec=snakemake.params.bottom_spec,
    bottom_files=dict(zip(BOTTOM_KEYS, inp.bottom)) if inp.bottom else None,
)
