from hbm.sbc import summarize
from hbm.smk import run

w = snakemake.wildcards
run(
    snakemake,
    summarize,
    snakemake.input.records,
    snakemake.output.summary,
    snakemake.output.ranks,
    snakemake.output.ecdf,
    title=f"{w.analysis}, level {w.level}, {w.variant}",
)
