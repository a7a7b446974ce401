from hbm.pooling import fit_variant
from hbm.smk import run

run(
    snakemake,
    fit_variant,
    snakemake.input.table,
    snakemake.output.posterior,
    snakemake.output.diagnostics,
    spec=snakemake.params.spec,
    variant=snakemake.wildcards.variant,
    inference=snakemake.params.inference,
    thresholds=snakemake.params.thresholds,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
    threads=snakemake.threads,
)
