# Compare two versions of an analysis. A version is "current" (results/<analysis>/) or a label given to
# `hbm regenerate` (results/versions/<label>/<analysis>/), e.g.
#   snakemake --cores 2 results/retail_demand/compare/v1_vs_current.html


rule compare:
    input:
        unpack(lambda wildcards: {f"a_{k}": v for k, v in version_inputs("a")(wildcards).items()}),
        unpack(lambda wildcards: {f"b_{k}": v for k, v in version_inputs("b")(wildcards).items()}),
    output:
        html=report(
            f"{RESULTS}/{{analysis}}/compare/{{a}}_vs_{{b}}.html",
            caption="../report/compare.rst",
            category="{analysis}",
            subcategory="compare",
        ),
        json=f"{RESULTS}/{{analysis}}/compare/{{a}}_vs_{{b}}.json",
        plot=f"{RESULTS}/{{analysis}}/compare/{{a}}_vs_{{b}}.png",
    log:
        f"{RESULTS}/{{analysis}}/logs/compare/{{a}}_vs_{{b}}.log",
    wildcard_constraints:
        a=VERSION_LABEL,
        b=VERSION_LABEL,
    conda:
        ENV
    resources:
        mem_mb=get_resources("compare", "mem_mb"),
        runtime=get_resources("compare", "runtime"),
    params:
        dir_a=lambda wildcards: str(version_dir(RESULTS, wildcards.analysis, wildcards.a)),
        dir_b=lambda wildcards: str(version_dir(RESULTS, wildcards.analysis, wildcards.b)),
        code=code_fingerprint(
            "compare",
            "posterior_check",
            "models",
            "model/families",
            "model/priors",
            "report",
            "io",
            "templates/compare.html.j2",
        ),
    script:
        "../scripts/compare.py"
