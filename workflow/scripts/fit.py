from hbm.fit import fit
from hbm.smk import run

run(
    snakemake,
    fit,
    snakemake.input.table,
    snakemake.output.posterior,
    snakemake.output.diagnostics,
    snakemake.output.rank_plot,
    spec=snakemake.params.spec,
    inference=snakemake.params.inference,
    thresholds=snakemake.params.thresholds,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
    threads=snakemake.threads,
    parametrization_path=snakemake.output.get("parametrization"),
)
