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


rule ingest_plan:
    input:
        plan=get_plan_file,
        observations=rules.ingest.output.observations,
    output:
        plan=f"{RESULTS}/{{analysis}}/data/plan.parquet",
    log:
        f"{RESULTS}/{{analysis}}/logs/ingest_plan.log",
    conda:
        ENV
    resources:
        mem_mb=get_resources("ingest", "mem_mb"),
        runtime=get_resources("ingest", "runtime"),
    params:
        columns=get_setting("columns"),
        units=get_plan_units,
        horizon=get_setting("forecast", "horizon"),
        holdout=get_setting("forecast", "holdout"),
        code=code_fingerprint("plan", "ingest", "io"),
    script:
        "../scripts/ingest_plan.py"
