rule aggregate:
    input:
        observations=rules.ingest.output.observations,
    output:
        table=f"{RESULTS}/{{analysis}}/data/levels/{{level}}.parquet",
    log:
        f"{RESULTS}/{{analysis}}/logs/aggregate/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/aggregate_{{level}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("aggregate", "mem_mb"),
        runtime=get_resources("aggregate", "runtime"),
    params:
        spec=get_data_spec,
        holdout=get_setting("forecast", "holdout"),
        code=code_fingerprint("aggregate", "ingest", "config", "io"),
    script:
        "../scripts/aggregate.py"
