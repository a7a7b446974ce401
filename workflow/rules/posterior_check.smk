rule posterior_check:
    input:
        table=rules.aggregate.output.table,
        posterior=rules.fit.output.posterior,
        diagnostics=rules.fit.output.diagnostics,
    output:
        idata=f"{RESULTS}/{{analysis}}/checks/{{level}}/posterior_predictive.nc",
        summary=f"{RESULTS}/{{analysis}}/checks/{{level}}/posterior_predictive.json",
        ppc_plot=report(
            f"{RESULTS}/{{analysis}}/checks/{{level}}/posterior_predictive.png",
            caption="../report/posterior_check.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
        loo_pit_plot=report(
            f"{RESULTS}/{{analysis}}/checks/{{level}}/loo_pit.png",
            caption="../report/loo_pit.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
        shrinkage_plot=report(
            f"{RESULTS}/{{analysis}}/checks/{{level}}/shrinkage.png",
            caption="../report/shrinkage.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/posterior_check/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/posterior_check_{{level}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("posterior_check", "mem_mb"),
        runtime=get_resources("posterior_check", "runtime"),
    params:
        spec=get_spec,
        sources=get_sources,
        seed=get_seed("posterior_check"),
        pareto_k=get_setting("checks", "thresholds", "pareto_k"),
        on_failure=get_setting("checks", "on_failure"),
        code=code_fingerprint(
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "posterior_check",
            "diagnostics",
            "plots",
            "io",
        ),
    script:
        "../scripts/posterior_check.py"
