rule ingest:
    input:
        data=get_data_file,
    output:
        observations=f"{RESULTS}/{{analysis}}/data/observations.parquet",
        summary=f"{RESULTS}/{{analysis}}/data/summary.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/ingest.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/ingest.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("ingest", "mem_mb"),
        runtime=get_resources("ingest", "runtime"),
    params:
        columns=get_setting("columns"),
        levels=get_data_levels,
        format=get_setting("data", "format"),
        family=get_setting("model", "family"),
        code=code_fingerprint("ingest", "io"),
    script:
        "../scripts/ingest.py"
