from hbm.compare import compare
from hbm.smk import run

run(
    snakemake,
    compare,
    snakemake.output.html,
    snakemake.output.json,
    snakemake.output.plot,
    analysis=snakemake.wildcards.analysis,
    label_a=snakemake.wildcards.a,
    label_b=snakemake.wildcards.b,
    dir_a=snakemake.params.dir_a,
    dir_b=snakemake.params.dir_b,
)
