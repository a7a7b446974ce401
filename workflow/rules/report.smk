rule report:
    input:
        config_file=get_setting("config_file"),
        summary=rules.ingest.output.summary,
        prior_json=level_files(rules.prior_check.output.summary),
        prior_png=level_files(rules.prior_check.output.plot),
        posterior=level_files(rules.fit.output.posterior),
        diagnostics=level_files(rules.fit.output.diagnostics),
        rank_png=level_files(rules.fit.output.rank_plot),
        ppc_json=level_files(rules.posterior_check.output.summary),
        ppc_png=level_files(rules.posterior_check.output.ppc_plot),
        loo_pit_png=level_files(rules.posterior_check.output.loo_pit_plot),
        shrinkage_png=level_files(rules.posterior_check.output.shrinkage_plot),
        forecast_json=if_forecasts(level_files(rules.forecast.output.scores)),
        forecast_png=if_forecasts(level_files(rules.forecast.output.plot)),
        coherence=if_forecasts(lambda wildcards: expand(rules.coherence.output.coherence, **wildcards)),
        bottom=if_bottom(
            [
                rules.fit_bottom.output.posterior,
                rules.fit_bottom.output.diagnostics,
                rules.fit_bottom.output.parametrization,
                rules.fit_bottom.output.rank_plot,
                rules.forecast_bottom.output.scores,
                rules.forecast_bottom.output.plot,
                rules.forecast_bottom.output.components,
            ]
        ),
        validation=validation_files(rules.validate.output.summary),
        recovery_json=recovery_files(rules.recovery.output.summary),
        recovery_png=recovery_files(rules.recovery.output.plot),
        pooling_json=if_pooling(level_files(rules.pooling.output.json)),
        pooling_png=if_pooling(level_files(rules.pooling.output.plot)),
        benchmarks=lambda wildcards: [
            *expand(rules.ingest.benchmark, analysis=wildcards.analysis),
            *level_files(rules.aggregate.benchmark)(wildcards),
            *level_files(rules.prior_check.benchmark)(wildcards),
            *level_files(rules.fit.benchmark)(wildcards),
            *level_files(rules.posterior_check.benchmark)(wildcards),
            *if_forecasts(level_files(rules.forecast.benchmark))(wildcards),
            *if_pooling(
                lambda wc: expand(
                    rules.fit_pooling.benchmark, analysis=wc.analysis, level=get_levels(wc), variant=POOLING_VARIANTS
                )
            )(wildcards),
            *if_pooling(level_files(rules.pooling.benchmark))(wildcards),
            *if_bottom([rules.fit_bottom.benchmark, rules.forecast_bottom.benchmark])(wildcards),
        ],
    output:
        html=report(
            f"{RESULTS}/{{analysis}}/report.html",
            caption="../report/report.rst",
            category="{analysis}",
        ),
        provenance=f"{RESULTS}/{{analysis}}/provenance.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/report.log",
    benchmark:
        f"{RESULTS}/{{analysis}}/benchmarks/report.tsv"
    conda:
        ENV
    resources:
        mem_mb=get_resources("report", "mem_mb"),
        runtime=get_resources("report", "runtime"),
    params:
        analysis=lambda wildcards: {k: v for k, v in get_analysis(wildcards).items() if k != "resources"},  # resources change no result
        levels=get_levels,
        specs=get_specs,
        seed=get_setting("inference", "seed"),
        bottom_spec=lambda wildcards: get_bottom_spec(wildcards) if get_analysis(wildcards).get("bottom") else None,
        code=code_fingerprint(
            "report",
            "provenance",
            "models",
            "model/families",
            "model/priors",
            "forecast",
            "io",
            "templates/report.html.j2",
        ),
    script:
        "../scripts/report.py"
