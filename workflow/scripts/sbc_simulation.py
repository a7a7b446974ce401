from hbm.sbc import simulate_and_fit
from hbm.smk import run

run(
    snakemake,
    simulate_and_fit,
    snakemake.input.table,
    snakemake.output.records,
    spec=snakemake.params.spec,
    inference=snakemake.params.inference,
    seeds=snakemake.params.seeds,
    indices=snakemake.params.indices,
    parametrization=snakemake.wildcards.variant,
)
