rule fit_bottom:
    input:
        observations=rules.ingest.output.observations,
        events=get_events_file,
    output:
        posterior=f"{RESULTS}/{{analysis}}/bottom/posterior.nc",
        diagnostics=f"{RESULTS}/{{analysis}}/bottom/diagnostics.json",
        parametrization=f"{RESULTS}/{{analysis}}/bottom/parametrization.json",
        rank_plot=report(
            f"{RESULTS}/{{analysis}}/bottom/rank.png",
            caption="../report/fit.rst",
            category="{analysis}",
            subcategory="bottom model",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/bottom/fit.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/bottom_fit.tsv"
    # the longest job of an analysis: started as soon as its data are in, so that the short jobs fill the
    # cores around it instead of it running alone at the end
    priority: 10
    conda:
        ENV
    threads: get_threads(get_bottom_inference)
    resources:
        mem_mb=get_resources("fit", "mem_mb", inference=get_bottom_inference),
        runtime=get_resources("fit", "runtime", inference=get_bottom_inference),
    params:
        spec=get_bottom_spec,
        inference=get_bottom_inference,
        thresholds=get_fit_thresholds,
        sources=get_sources,
        seed=get_seed("fit_bottom"),
        code=code_fingerprint(
            "bottom",
            "events",
            "model/builder",
            "model/design",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "fit",
            "diagnostics",
            "plots",
            "io",
        ),
    script:
        "../scripts/fit_bottom.py"


rule forecast_bottom:
    input:
        observations=rules.ingest.output.observations,
        posterior=rules.fit_bottom.output.posterior,
        diagnostics=rules.fit_bottom.output.diagnostics,
        level_scores=if_forecasts(level_files(rules.forecast.output.scores)),
        plan=if_plan(rules.ingest_plan.output.plan),
        events=get_events_file,
    output:
        forecasts=f"{RESULTS}/{{analysis}}/bottom/forecasts.parquet",
        scores=f"{RESULTS}/{{analysis}}/bottom/forecasts.json",
        plot=report(
            f"{RESULTS}/{{analysis}}/bottom/forecasts.png",
            caption="../report/forecast.rst",
            category="{analysis}",
            subcategory="bottom model",
        ),
        components=report(
            f"{RESULTS}/{{analysis}}/bottom/components.png",
            caption="../report/components.rst",
            category="{analysis}",
            subcategory="bottom model",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/bottom/forecast.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/bottom_forecast.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("forecast", "mem_mb", inference=get_bottom_inference),
        runtime=get_resources("forecast", "runtime", inference=get_bottom_inference),
    params:
        spec=get_bottom_spec,
        levels=get_levels,
        horizon=get_setting("forecast", "horizon"),
        on_failure=get_setting("checks", "on_failure"),
        seed=get_seed("forecast_bottom"),
        code=code_fingerprint(
            "bottom",
            "events",
            "model/__init__",
            "model/builder",
            "model/design",
            "forecast",
            "plan",
            "scores",
            "plots",
            "io",
        ),
    script:
        "../scripts/forecast_bottom.py"
