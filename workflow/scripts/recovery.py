from hbm.smk import run
from hbm.validate import recovery

levels = snakemake.params.levels
run(
    snakemake,
    recovery,
    {level: snakemake.input[level] for level in levels},
    snakemake.input.truth,
    snakemake.output.summary,
    snakemake.output.plot,
    mapping=levels,
    prob=snakemake.params.prob,
)
