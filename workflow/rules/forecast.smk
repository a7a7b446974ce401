rule forecast:
    input:
        table=rules.aggregate.output.table,
        posterior=rules.fit.output.posterior,
        diagnostics=rules.fit.output.diagnostics,
        plan=if_plan(rules.ingest_plan.output.plan),
    output:
        forecasts=f"{RESULTS}/{{analysis}}/forecasts/{{level}}.parquet",
        scores=f"{RESULTS}/{{analysis}}/forecasts/{{level}}.json",
        plot=report(
            f"{RESULTS}/{{analysis}}/forecasts/{{level}}.png",
            caption="../report/forecast.rst",
            category="{analysis}",
            subcategory="{level}",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/forecast/{{level}}.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/forecast_{{level}}.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("forecast", "mem_mb"),
        runtime=get_resources("forecast", "runtime"),
    params:
        spec=get_spec,
        horizon=get_setting("forecast", "horizon"),
        plot_units=get_setting("forecast", "plot_units"),
        on_failure=get_setting("checks", "on_failure"),
        seed=get_seed("forecast"),
        code=code_fingerprint(
            "forecast",
            "plan",
            "scores",
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "aggregate",
            "plots",
            "io",
        ),
    script:
        "../scripts/forecast.py"


rule coherence:
    input:
        forecasts=level_files(rules.forecast.output.forecasts),
    output:
        coherence=f"{RESULTS}/{{analysis}}/checks/forecast_coherence.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/coherence.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/coherence.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("coherence", "mem_mb"),
        runtime=get_resources("coherence", "runtime"),
    params:
        levels=get_levels,
        specs=get_data_specs,
        code=code_fingerprint("forecast", "io"),
    script:
        "../scripts/coherence.py"
