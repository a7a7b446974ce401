# Validation against a reference posterior (analyses with validation.reference; part of their report).


rule long_run:
    input:
        table=rules.aggregate.output.table,
    output:
        posterior=f"{RESULTS}/{{analysis}}/validation/{{level}}/long_run.nc",
        diagnostics=f"{RESULTS}/{{analysis}}/validation/{{level}}/long_run_diagnostics.json",
        rank_plot=f"{RESULTS}/{{analysis}}/validation/{{level}}/long_run_rank.png",
    log:
        f"{RESULTS}/{{analysis}}/logs/long_run/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/long_run_{{level}}.tsv"
    conda:
        ENV
    threads: get_threads(get_long_run_inference)
    resources:
        mem_mb=get_resources("long_run", "mem_mb", get_long_run_inference),
        runtime=get_resources("long_run", "runtime", get_long_run_inference),
    params:
        spec=get_spec,
        inference=get_long_run_inference,
        thresholds=get_fit_thresholds,
        sources=get_sources,
        seed=get_seed("long_run"),
        code=code_fingerprint(
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "fit",
            "log_likelihood",
            "diagnostics",
            "plots",
            "io",
        ),
    script:
        "../scripts/fit.py"


rule validate:
    input:
        posterior=rules.fit.output.posterior,
        reference=get_reference,
    output:
        summary=f"{RESULTS}/{{analysis}}/validation/{{level}}/reference.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/validate/{{level}}.log",
    conda:
        ENV
    params:
        reference=get_setting("validation", "reference"),
        parameters=get_setting("validation", "parameters"),
        code=code_fingerprint("validate", "compare", "io"),
    script:
        "../scripts/validate.py"


rule recovery:
    input:
        unpack(recovery_posteriors),
        truth=get_setting("recovery", "truth"),
    output:
        summary=f"{RESULTS}/{{analysis}}/validation/recovery.json",
        plot=report(
            f"{RESULTS}/{{analysis}}/validation/recovery.png",
            caption="../report/recovery.rst",
            category="{analysis}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/recovery.log",
    conda:
        ENV
    params:
        levels=get_setting("recovery", "levels"),
        prob=get_setting("recovery", "prob"),
        code=code_fingerprint("validate", "compare", "io"),
    script:
        "../scripts/recovery.py"
