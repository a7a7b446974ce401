from hbm.forecast import forecast
from hbm.smk import optional_file, run

run(
    snakemake,
    forecast,
    snakemake.input.table,
    snakemake.input.posterior,
    snakemake.input.diagnostics,
    snakemake.output.forecasts,
    snakemake.output.scores,
    snakemake.output.plot,
    spec=snakemake.params.spec,
    horizon=snakemake.params.horizon,
    plot_units=snakemake.params.plot_units,
    on_failure=snakemake.params.on_failure,
    seed=snakemake.params.seed,
    plan_path=optional_file(snakemake.input.plan),
)
