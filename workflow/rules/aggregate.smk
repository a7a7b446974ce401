rule aggregate:
    input:
        observations=rules.ingest.output.observations,
    output:
        table=f"{RESULTS}/{{analysis}}/data/levels/{{level}}.parquet",
    params:
        spec=get_spec,
        holdout=get_setting("forecast", "holdout"),
        code=code_fingerprint("aggregate", "ingest", "config", "io"),
    resources:
        mem_mb=get_resources("aggregate", "mem_mb"),
        runtime=get_resources("aggregate", "runtime"),
    log:
        f"{RESULTS}/{{analysis}}/logs/aggregate/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/aggregate_{{level}}.tsv"
    conda:
        ENV
    script:
        "../scripts/aggregate.py"
