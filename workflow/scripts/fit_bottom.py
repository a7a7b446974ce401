from hbm.bottom import fit
from hbm.smk import optional_file, run

run(
    snakemake,
    fit,
    snakemake.input.observations,
    snakemake.output.posterior,
    snakemake.output.diagnostics,
    snakemake.output.parametrization,
    snakemake.output.rank_plot,
    spec=snakemake.params.spec,
    inference=snakemake.params.inference,
    thresholds=snakemake.params.thresholds,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
    threads=snakemake.threads,
    events_path=optional_file(snakemake.input.events),
)
