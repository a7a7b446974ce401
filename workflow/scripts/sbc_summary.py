from hbm.sbc import collect
from hbm.smk import run

run(snakemake, collect, snakemake.input.summaries, snakemake.output.summary)
