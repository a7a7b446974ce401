"""Input functions and parameter helpers of the rules (the config is loaded in the Snakefile)."""

import os

from snakemake.exceptions import WorkflowError

from hbm.config import bottom_inference, bottom_spec, data_levels, level_data_spec, level_inference, level_spec
from hbm.pooling import VARIANTS as POOLING_VARIANTS
from hbm.provenance import code_fingerprint
from hbm.resources import fit_threads, job_resources, table_rows
from hbm.seeds import derive_seed
from hbm.versions import CURRENT, version_dir


def get_analysis(wildcards):
    return ANALYSES[wildcards.analysis]


def get_data_file(wildcards):
    return get_analysis(wildcards)["data"]["path"]


def get_sources(wildcards):
    """The analysis's config and data files, whose content and sha256 go into NetCDF attributes. Paths
    only: the job reads the files when it runs, so their content never enters params, and an edit of the
    config reruns only the jobs whose own params it changes (not every job that records the config)."""
    a = get_analysis(wildcards)
    return {"config_file": a["config_file"], "data_file": a["data"]["path"]}


def get_spec(wildcards):
    """What the level's model jobs depend on: column roles, the level's hierarchy, model, priors and
    parametrization (its own, not other levels'), holdout."""
    return level_spec(get_analysis(wildcards), wildcards.level)


def get_data_spec(wildcards):
    """What the level's table depends on (the spec without priors and parametrization)."""
    return level_data_spec(get_analysis(wildcards), wildcards.level)


def get_data_levels(wildcards):
    """What ingest needs of the levels: their columns (not their priors or sampler settings)."""
    return data_levels(get_analysis(wildcards))


def get_inference(wildcards):
    return level_inference(get_analysis(wildcards), wildcards.level)


def get_specs(wildcards):
    """The spec of every level of the analysis, keyed by level."""
    return {level: level_spec(get_analysis(wildcards), level) for level in get_levels(wildcards)}


def get_data_specs(wildcards):
    """The data spec of every level of the analysis, keyed by level."""
    return {level: level_data_spec(get_analysis(wildcards), level) for level in get_levels(wildcards)}


def get_seed(stage):
    """The job's seed: derived from the analysis's seed, its name, the level and the stage."""

    def seed(wildcards):
        base = get_analysis(wildcards)["inference"]["seed"]
        return derive_seed(base, wildcards.analysis, wildcards.get("level", ""), stage)

    return seed


def get_setting(*keys):
    """A value of the analysis config, e.g. get_setting("checks", "prior_draws")."""

    def value(wildcards):
        v = get_analysis(wildcards)
        for k in keys:
            v = v[k]
        return v

    return value


def get_fit_thresholds(wildcards):
    """The convergence thresholds (not pareto_k, which only posterior_check uses: editing it must not refit)."""
    t = get_analysis(wildcards)["checks"]["thresholds"]
    return {k: v for k, v in t.items() if k != "pareto_k"}


def get_levels(wildcards):
    return list(get_analysis(wildcards)["levels"])


def level_files(pattern):
    """One path per level of the analysis, from a pattern with {analysis} and {level}."""

    def files(wildcards):
        return expand(pattern, analysis=wildcards.analysis, level=get_levels(wildcards))

    return files


def forecasts(wildcards):
    """Whether the analysis forecasts (a count family with a horizon or a holdout)."""
    f = get_analysis(wildcards)["forecast"]
    return f["horizon"] > 0 or f["holdout"] > 0


def if_forecasts(files):
    """``files`` (a function of wildcards) for analyses that forecast, else nothing."""

    def inputs(wildcards):
        return files(wildcards) if forecasts(wildcards) else []

    return inputs


def _job_resources(stage, wildcards, input, threads, attempt, get_inference_of=None, get_fits=None):
    """mem_mb and runtime of one job (hbm/resources.py): estimated from the rows of the job's table and
    the sampler settings, or the analysis's ``resources.<stage>``. Snakemake evaluates this again just
    before a job starts, when its input exists: the level's table then gives the exact row count
    (before: the raw data file's). Never in ``params:``: resources change no result."""
    a = ANALYSES.get(wildcards.analysis)
    if a is None:  # compare of an analysis that is not in this run's config
        defaults = {"inference": {"chains": 4, "draws": 1000, "tune": 1000}, "checks": {"prior_draws": 500}}
        return job_resources(stage, defaults, rows=0, attempt=attempt)
    raw = table_rows(a["data"]["path"]) or 0
    files = dict(input.items())
    if stage in ("report", "compare"):
        levels = list(a["levels"])
        rows = sum(table_rows(f"{RESULTS}/{wildcards.analysis}/data/levels/{lv}.parquet") or raw for lv in levels)
        inference = max((level_inference(a, lv) for lv in levels), key=lambda i: i["chains"] * i["draws"])
    else:
        table = files.get("table") or files.get("observations")
        rows = (table_rows(table) if isinstance(table, str) else None) or raw
        level = wildcards.get("level")
        inference = level_inference(a, level) if level in a["levels"] else a["inference"]
        if get_inference_of is not None:  # long_run and sbc_simulation: their own sampler sizes
            inference = get_inference_of(wildcards)
    fits = get_fits(wildcards) if get_fits is not None else 1
    return job_resources(stage, a, rows=rows, inference=inference, threads=threads, attempt=attempt, fits=fits)


def get_resources(stage, key, inference=None, fits=None):
    """A resource (``mem_mb`` or ``runtime`` in minutes) of the jobs of ``stage`` (a rule's name).
    Functions of wildcards: ``inference`` gives the sampler settings where they are not the level's,
    ``fits`` the number of data sets one job fits one after another (default 1)."""

    def value(wildcards, input, threads, attempt):
        return _job_resources(stage, wildcards, input, threads, attempt, inference, fits)[key]

    return value


def get_threads(inference=None):
    """Threads of a job that samples one model (hbm.resources.fit_threads): its chains, or 1 for a small
    fit, from the rows of its table (input ``table`` or ``observations``; before that exists, the raw data's)
    and its sampler settings (``inference``, a function of wildcards; default the level's)."""

    def threads(wildcards, input):
        settings = (inference or get_inference)(wildcards)
        files = dict(input.items())
        table = files.get("table") or files.get("observations")
        rows = (table_rows(table) if isinstance(table, str) else None) or table_rows(
            get_analysis(wildcards)["data"]["path"]
        )
        return fit_threads(rows or 0, settings["chains"], settings["draws"], settings["tune"])

    return threads


def pooling_compared(wildcards):
    """Whether the analysis compares complete, no and partial pooling (checks.pooling_comparison)."""
    return get_analysis(wildcards)["checks"]["pooling_comparison"]


def if_pooling(files):
    """``files`` (a function of wildcards) for analyses with the pooling comparison, else nothing."""

    def inputs(wildcards):
        return files(wildcards) if pooling_compared(wildcards) else []

    return inputs


def get_bottom_spec(wildcards):
    """What the bottom model's jobs depend on (hbm.config.bottom_spec): not the levels' settings."""
    return bottom_spec(get_analysis(wildcards))


def get_bottom_inference(wildcards):
    return bottom_inference(get_analysis(wildcards))


def get_events_file(wildcards):
    """The bottom model's events file (``bottom.events``), or nothing."""
    path = (get_analysis(wildcards).get("bottom") or {}).get("events")
    return [path] if path else []


def get_plan_file(wildcards):
    return get_analysis(wildcards)["forecast"]["plan"]


def get_plan_units(wildcards):
    """The units the forecasts are made for: each level's column, and the bottom model's series (the joined
    values of its series columns, named as hbm.bottom.SERIES)."""
    a = get_analysis(wildcards)
    units = {lv["column"]: [lv["column"]] for lv in a["levels"].values()}
    if a.get("bottom"):
        units["_series"] = list(a["bottom"]["series"])
    return units


def if_plan(files):
    """``files`` for analyses with a forecast plan (``forecast.plan``), else nothing."""

    def inputs(wildcards):
        if not get_analysis(wildcards)["forecast"].get("plan"):
            return []
        return expand(files, **wildcards)

    return inputs


def if_bottom(files):
    """``files`` (a function of wildcards, or a list of patterns) for analyses with a bottom model, else nothing."""

    def inputs(wildcards):
        if not get_analysis(wildcards).get("bottom"):
            return []
        return files(wildcards) if callable(files) else expand(files, **wildcards)

    return inputs


def get_all_reports():
    return expand(f"{RESULTS}/{{analysis}}/report.html", analysis=list(ANALYSES))


def version_inputs(key):
    """The report and provenance of version ``wildcards[key]`` (built by this DAG only for "current")."""

    def files(wildcards):
        label = wildcards[key]
        folder = version_dir(RESULTS, wildcards.analysis, label)
        if label != CURRENT and not os.path.isfile(os.path.join(folder, "provenance.json")):
            raise WorkflowError(
                f"version {label!r} of {wildcards.analysis} has no results in {folder}/: make them first with "
                f"`hbm regenerate <config file> --label {label}` (or --rev {label} for a git revision)"
            )
        return {"report": os.path.join(folder, "report.html"), "provenance": os.path.join(folder, "provenance.json")}

    return files


def get_sbc_inference(wildcards):
    """Sampler settings of one SBC simulation's fit: the level's sampler and target_accept, SBC's sizes."""
    sbc = get_analysis(wildcards)["sbc"]
    return {**get_inference(wildcards), **{k: sbc[k] for k in ("chains", "draws", "tune")}}


def get_sbc_indices(wildcards):
    """The simulations of one SBC job: batch b holds b * sbc.batch ... up to sbc.simulations - 1."""
    sbc = get_analysis(wildcards)["sbc"]
    first = int(wildcards.batch) * sbc["batch"]
    return list(range(first, min(first + sbc["batch"], sbc["simulations"])))


def get_sbc_fits(wildcards):
    """How many simulations one SBC job fits (its resources grow with them)."""
    return len(get_sbc_indices(wildcards))


def get_sbc_seeds(wildcards):
    """One seed per simulation, from its index (not its batch): results do not depend on sbc.batch."""
    base = get_analysis(wildcards)["inference"]["seed"]
    return [
        derive_seed(base, wildcards.analysis, wildcards.level, f"sbc_{wildcards.variant}", i)
        for i in get_sbc_indices(wildcards)
    ]


def sbc_simulations(pattern):
    """Every SBC job's file of one level and variant (ceil(simulations / batch) of them)."""

    def files(wildcards):
        sbc = get_analysis(wildcards)["sbc"]
        return expand(pattern, batch=range(-(-sbc["simulations"] // sbc["batch"])), allow_missing=True, **wildcards)

    return files


def sbc_summaries(pattern):
    """The summary of every level and SBC variant of the analysis."""

    def files(wildcards):
        a = get_analysis(wildcards)
        return expand(
            pattern, analysis=wildcards.analysis, level=list(a["levels"]), variant=a["sbc"]["parametrizations"]
        )

    return files


def validated_levels(wildcards):
    """The levels the analysis validates against a reference (none without validation.reference)."""
    v = get_analysis(wildcards)["validation"]
    if not v.get("reference"):
        return []
    return v["levels"] or get_levels(wildcards)


def validation_files(pattern):
    def files(wildcards):
        return expand(pattern, analysis=wildcards.analysis, level=validated_levels(wildcards))

    return files


def get_long_run_inference(wildcards):
    """The level's sampler settings, made longer and more careful (validation.long_run)."""
    return {**get_inference(wildcards), **get_analysis(wildcards)["validation"]["long_run"]}


def get_reference(wildcards):
    """The reference: the long run's posterior when the model is its own reference, else the CSV (an
    input, so that a changed reference reruns the comparison)."""
    reference = get_analysis(wildcards)["validation"]["reference"]
    if reference == "long_run":
        return expand(rules.long_run.output.posterior, **wildcards)
    return [reference]


def recovery_posteriors(wildcards):
    """The posterior of every level the analysis checks against its simulator's true values (``bottom``:
    the bottom model's)."""
    a = get_analysis(wildcards)
    r = a["recovery"]
    if not r.get("truth"):
        return {}
    return {
        level: expand(
            rules.fit_bottom.output.posterior if level == "bottom" and a.get("bottom") else rules.fit.output.posterior,
            analysis=wildcards.analysis,
            level=level,
        )[0]
        for level in r["levels"]
    }


def recovery_files(pattern):
    """The analysis's recovery output (for simulated examples with recovery.truth), else nothing."""

    def inputs(wildcards):
        if not get_analysis(wildcards)["recovery"].get("truth"):
            return []
        return expand(pattern, analysis=wildcards.analysis)

    return inputs
