from hbm.sbc import simulate_and_fit
from hbm.smk import run

run(
    snakemake,
    simulate_and_fit,
    snakemake.input.table,
    snakemake.output.record,
    spec=snakemake.params.spec,
    inference=snakemake.params.inference,
    seed=snakemake.params.seed,
    index=int(snakemake.wildcards.index),
    parametrization=snakemake.wildcards.variant,
)
