from hbm.aggregate import aggregate
from hbm.smk import run

run(
    snakemake,
    aggregate,
    snakemake.input.observations,
    snakemake.output.table,
    spec=snakemake.params.spec,
    holdout=snakemake.params.holdout,
)
