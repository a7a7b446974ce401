rule fit:
    input:
        table=rules.aggregate.output.table,
    output:
        posterior=f"{RESULTS}/{{analysis}}/fits/{{level}}/posterior.nc",
        diagnostics=f"{RESULTS}/{{analysis}}/fits/{{level}}/diagnostics.json",
        parametrization=f"{RESULTS}/{{analysis}}/fits/{{level}}/parametrization.json",
        rank_plot=report(
            f"{RESULTS}/{{analysis}}/fits/{{level}}/rank.png",
            caption="../report/fit.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/fit/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/fit_{{level}}.tsv"
    conda:
        ENV
    threads: get_threads()
    resources:
        mem_mb=get_resources("fit", "mem_mb"),
        runtime=get_resources("fit", "runtime"),
    params:
        spec=get_spec,
        inference=get_inference,
        thresholds=get_fit_thresholds,
        sources=get_sources,
        seed=get_seed("fit"),
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
