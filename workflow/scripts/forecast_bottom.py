from hbm.bottom import forecast
from hbm.smk import optional_file, run

run(
    snakemake,
    forecast,
    snakemake.input.observations,
    snakemake.input.posterior,
    snakemake.input.diagnostics,
    snakemake.output.forecasts,
    snakemake.output.scores,
    snakemake.output.plot,
    components_path=snakemake.output.components,
    spec=snakemake.params.spec,
    horizon=snakemake.params.horizon,
    on_failure=snakemake.params.on_failure,
    seed=snakemake.params.seed,
    plan_path=optional_file(snakemake.input.plan),
    events_path=optional_file(snakemake.input.events),
    level_scores=dict(zip(snakemake.params.levels, snakemake.input.level_scores)) if snakemake.input.level_scores else None,
)
