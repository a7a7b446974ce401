from hbm.smk import run
from hbm.validate import validate

run(
    snakemake,
    validate,
    snakemake.input.posterior,
    snakemake.output.summary,
    level=snakemake.wildcards.level,
    reference=snakemake.params.reference,
    parameters=snakemake.params.parameters,
    reference_posterior_path=snakemake.input.reference[0] if snakemake.params.reference == "long_run" else None,
)
