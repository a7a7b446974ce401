# Pooling comparison: each level's model refitted with complete pooling and with no pooling
# (hbm.models.pooling_of), then compared with the partially pooled fit by PSIS-LOO (hbm/pooling.py).
# On when the analysis's checks.pooling_comparison is true (the default).


rule fit_pooling:
    input:
        table=rules.aggregate.output.table,
    output:
        posterior=f"{RESULTS}/{{analysis}}/pooling/{{level}}/{{variant}}.nc",
        diagnostics=f"{RESULTS}/{{analysis}}/pooling/{{level}}/{{variant}}_diagnostics.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/fit_pooling/{{level}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/pooling/fit_{{variant}}_{{level}}.tsv"
    wildcard_constraints:
        variant="|".join(POOLING_VARIANTS),
    conda:
        ENV
    threads: get_threads()
    resources:  # a variant's fit is the size of the level's fit (and resources.fit overrides both)
        mem_mb=get_resources("fit", "mem_mb"),
        runtime=get_resources("fit", "runtime"),
    params:
        spec=get_spec,
        inference=get_inference,
        thresholds=get_fit_thresholds,
        sources=get_sources,
        seed=lambda wildcards: get_seed(f"fit_{wildcards.variant}")(wildcards),
        code=code_fingerprint(
            "pooling",
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "fit",
            "log_likelihood",
            "diagnostics",
            "io",
        ),
    script:
        "../scripts/fit_pooling.py"


rule pooling:
    input:
        partial=rules.fit.output.posterior,
        partial_diagnostics=rules.fit.output.diagnostics,
        complete=f"{RESULTS}/{{analysis}}/pooling/{{level}}/complete.nc",
        complete_diagnostics=f"{RESULTS}/{{analysis}}/pooling/{{level}}/complete_diagnostics.json",
        none=f"{RESULTS}/{{analysis}}/pooling/{{level}}/none.nc",
        none_diagnostics=f"{RESULTS}/{{analysis}}/pooling/{{level}}/none_diagnostics.json",
    output:
        json=f"{RESULTS}/{{analysis}}/pooling/{{level}}/comparison.json",
        plot=report(
            f"{RESULTS}/{{analysis}}/pooling/{{level}}/comparison.png",
            caption="../report/pooling.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/pooling/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/pooling/pooling_{{level}}.tsv"
    conda:
        ENV
    resources:  # PSIS-LOO over draws x observations, like the posterior check (three times, one after another)
        mem_mb=get_resources("posterior_check", "mem_mb"),
        runtime=get_resources("posterior_check", "runtime"),
    params:
        pareto_k=get_setting("checks", "thresholds", "pareto_k"),
        code=code_fingerprint("pooling", "posterior_check", "diagnostics", "io"),
    script:
        "../scripts/pooling.py"
