from hbm.ingest import ingest
from hbm.smk import run

run(
    snakemake,
    ingest,
    snakemake.input.data,
    snakemake.output.observations,
    snakemake.output.summary,
    columns=snakemake.params.columns,
    levels=snakemake.params.levels,
    fmt=snakemake.params.format,
    family=snakemake.params.family,
)
