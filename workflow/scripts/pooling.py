from hbm.pooling import VARIANTS, compare_pooling
from hbm.smk import run

inp = snakemake.input
run(
    snakemake,
    compare_pooling,
    inp.partial,
    inp.partial_diagnostics,
    {v: inp[v] for v in VARIANTS},
    {v: inp[f"{v}_diagnostics"] for v in VARIANTS},
    snakemake.output.json,
    snakemake.output.plot,
    level=snakemake.wildcards.level,
    pareto_k=snakemake.params.pareto_k,
)
