from hbm.forecast import write_coherence
from hbm.smk import run

run(
    snakemake,
    write_coherence,
    snakemake.output.coherence,
    forecast_paths=dict(zip(snakemake.params.levels, snakemake.input.forecasts)),
    specs=snakemake.params.specs,
)
