from hbm.posterior_check import posterior_check
from hbm.smk import run

run(
    snakemake,
    posterior_check,
    snakemake.input.table,
    snakemake.input.posterior,
    snakemake.input.diagnostics,
    snakemake.output.idata,
    snakemake.output.summary,
    snakemake.output.ppc_plot,
    snakemake.output.loo_pit_plot,
    snakemake.output.shrinkage_plot,
    spec=snakemake.params.spec,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
    pareto_k=snakemake.params.pareto_k,
    on_failure=snakemake.params.on_failure,
)
