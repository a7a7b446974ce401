from hbm.plan import ingest_plan
from hbm.smk import run

run(
    snakemake,
    ingest_plan,
    snakemake.input.plan,
    snakemake.input.observations,
    snakemake.output.plan,
    columns=snakemake.params.columns,
    units=snakemake.params.units,
    horizon=snakemake.params.horizon,
    holdout=snakemake.params.holdout,
)
