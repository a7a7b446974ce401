from hbm.prior_check import prior_check
from hbm.smk import run

run(
    snakemake,
    prior_check,
    snakemake.input.table,
    snakemake.output.idata,
    snakemake.output.summary,
    snakemake.output.plot,
    spec=snakemake.params.spec,
    draws=snakemake.params.draws,
    plausible_range=snakemake.params.plausible_range,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
)
