# Simulation-based calibration (not part of the default target):
#   snakemake --cores 2 results/grouped/sbc/summary.json
# One job per simulation (sbc.batch: 1), so --cores N or a cluster spreads them; with sbc.batch k each job
# fits k simulations and compiles the model once. A gather job per level and variant.


rule sbc_simulation:
    input:
        table=rules.aggregate.output.table,
    output:
        records=f"{RESULTS}/{{analysis}}/sbc/{{level}}/{{variant}}/simulations/{{batch}}.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/sbc/{{level}}/{{variant}}/{{batch}}.log",
    wildcard_constraints:
        variant="model|auto|centered|noncentered",
        batch=r"\d+",
    conda:
        ENV
    resources:  # one thread: its chains run one after another, and its simulations too
        mem_mb=get_resources("sbc_simulation", "mem_mb", get_sbc_inference, get_sbc_fits),
        runtime=get_resources("sbc_simulation", "runtime", get_sbc_inference, get_sbc_fits),
    params:
        spec=get_spec,
        inference=get_sbc_inference,
        indices=get_sbc_indices,
        seeds=get_sbc_seeds,
        code=code_fingerprint(
            "sbc",
            "compare",
            "models",
            "model/__init__",
            "model/families",
            "model/priors",
            "parametrization",
            "fit",
            "io",
        ),
    script:
        "../scripts/sbc_simulation.py"


rule sbc:
    input:
        records=sbc_simulations(rules.sbc_simulation.output.records),
    output:
        summary=f"{RESULTS}/{{analysis}}/sbc/{{level}}/{{variant}}/summary.json",
        ranks=report(
            f"{RESULTS}/{{analysis}}/sbc/{{level}}/{{variant}}/ranks.png",
            caption="../report/sbc.rst",
            category="{analysis}",
            subcategory="SBC",
        ),
        ecdf=report(
            f"{RESULTS}/{{analysis}}/sbc/{{level}}/{{variant}}/ecdf.png",
            caption="../report/sbc.rst",
            category="{analysis}",
            subcategory="SBC",
        ),
    log:
        f"{RESULTS}/{{analysis}}/logs/sbc/{{level}}/{{variant}}.log",
    wildcard_constraints:
        variant="model|auto|centered|noncentered",
    conda:
        ENV
    params:
        code=code_fingerprint("sbc", "plots", "io"),
    script:
        "../scripts/sbc.py"


rule sbc_summary:
    input:
        summaries=sbc_summaries(rules.sbc.output.summary),
    output:
        summary=f"{RESULTS}/{{analysis}}/sbc/summary.json",
    log:
        f"{RESULTS}/{{analysis}}/logs/sbc/summary.log",
    conda:
        ENV
    params:
        code=code_fingerprint("sbc", "io"),
    script:
        "../scripts/sbc_summary.py"
