rule prior_check:
    input:
        table=rules.aggregate.output.table,
    output:
        idata=f"{RESULTS}/{{analysis}}/checks/{{level}}/prior_predictive.nc",
        summary=f"{RESULTS}/{{analysis}}/checks/{{level}}/prior_predictive.json",
        plot=report(
            f"{RESULTS}/{{analysis}}/checks/{{level}}/prior_predictive.png",
            caption="../report/prior_check.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/prior_check/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/prior_check_{{level}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("prior_check", "mem_mb"),
        runtime=get_resources("prior_check", "runtime"),
    params:
        spec=get_spec,
        draws=get_setting("checks", "prior_draws"),
        plausible_range=get_setting("checks", "plausible_range"),
        sources=get_sources,
        seed=get_seed("prior_check"),
        code=code_fingerprint(
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "prior_check",
            "plots",
            "io",
        ),
    script:
        "../scripts/prior_check.py"
