"""Stage 3: MCMC for one hierarchy level -> posterior.nc (InferenceData) + diagnostics.json + rank plot."""

from __future__ import annotations

import logging
import time

from hbm import diagnostics, plots, provenance
from hbm.io import save_figure, write_json, write_netcdf
from hbm.models import build_model, hyperparameters, load_level, resolve_priors

log = logging.getLogger(__name__)


def sample(model, inference: dict, seed: int, cores: int = 1, log_likelihood: bool = True):
    """NUTS with the configured sampler; returns posterior, sample_stats, observed_data, constant_data and
    (unless ``log_likelihood`` is False, as for simulation-based calibration) log_likelihood."""
    import pymc as pm

    sampler = inference["sampler"]
    kwargs = dict(
        draws=inference["draws"], tune=inference["tune"], chains=inference["chains"],
        cores=max(1, min(cores, inference["chains"])), target_accept=inference["target_accept"],
        random_seed=seed, progressbar=False, model=model, compute_convergence_checks=False,
    )
    t0 = time.perf_counter()
    # The sampler is always named: PyMC 6 picks nutpie when no nuts_sampler is given.
    if sampler == "pymc":
        idata = pm.sample(**kwargs, nuts_sampler="pymc", idata_kwargs={"log_likelihood": log_likelihood})
    else:
        idata = pm.sample(**kwargs, nuts_sampler=sampler)
    total = time.perf_counter() - t0
    sampling = float(idata.posterior.attrs.get("sampling_time", total))
    log.info("%s: compiled in %.1f s, sampled in %.1f s", sampler, total - sampling, sampling)
    for group in [g for g in idata.children if g.startswith("warmup_")]:
        del idata[group]
    transformed = [v for v in idata.posterior.data_vars if str(v).endswith("__")]  # nutpie keeps them
    if transformed:
        idata["posterior"] = idata.posterior.to_dataset().drop_vars(transformed)
    if log_likelihood and "log_likelihood" not in idata.children:
        pm.compute_log_likelihood(idata, model=model, progressbar=False)
    if "observed_data" not in idata.children or "constant_data" not in idata.children:
        from pymc.backends.arviz import DataTreeConverter

        conv = DataTreeConverter(trace=None, model=model)
        for group, data in (("observed_data", conv.observed_data_to_xarray()),
                            ("constant_data", conv.constant_data_to_xarray())):
            if group not in idata.children and data is not None:
                idata[group] = data
    return idata


def stamp(idata, spec: dict, priors: dict, sources: dict | None = None, **extra) -> None:
    """Record in every group's attrs what made this result (read back by reports and comparisons):
    the provenance of :func:`hbm.provenance.netcdf_attrs` plus the level's spec, priors and sampler settings."""
    import json

    attrs = {
        **provenance.netcdf_attrs(sources),
        "hbm_analysis": spec["analysis"],
        "hbm_level": spec["level"],
        "hbm_spec": json.dumps(spec, sort_keys=True),
        "hbm_priors": json.dumps(priors, sort_keys=True, default=lambda a: a.tolist()),
        **{f"hbm_{k}": (v if isinstance(v, (int, float, str)) else json.dumps(v, sort_keys=True)) for k, v in extra.items()},
    }
    provenance.stamp(idata, attrs)


def fit(table_path, posterior_path, diagnostics_path, rank_plot_path, *, spec: dict, inference: dict,
        thresholds: dict, seed: int, threads: int = 1, sources: dict | None = None) -> dict:
    """Fit one level and write its InferenceData, diagnostics and rank plot. Returns the diagnostics.

    ``sources`` ({"config_file", "data_file"}) puts the config's content and sha256 and the data's sha256
    into the NetCDF attributes."""
    data = load_level(table_path, spec)
    priors = resolve_priors(spec, data)
    t0 = time.perf_counter()
    model = build_model(data, spec, priors)
    log.info(
        "level %s: %d observations in %d groups; sampling %d chains x (%d tune + %d draws) with %s, seed %d",
        spec["level"], data.y.size, len(data.groups), inference["chains"], inference["tune"],
        inference["draws"], inference["sampler"], seed,
    )
    idata = sample(model, inference, seed, cores=threads)
    seconds = time.perf_counter() - t0
    diag = diagnostics.compute(idata, thresholds)
    diag.update(level=spec["level"], sampler=inference["sampler"], seed=seed, seconds=round(seconds, 2),
                tune=inference["tune"], target_accept=inference["target_accept"])
    for line in diagnostics.failures(diag) or ["all diagnostics passed"]:
        log.info("level %s: %s", spec["level"], line)
    stamp(idata, spec, priors, sources, inference=inference, seed=seed)
    write_netcdf(idata, posterior_path)
    write_json(diag, diagnostics_path)
    save_figure(plots.rank(idata, hyperparameters(spec)), rank_plot_path)
    log.info("level %s: fitted in %.1f s", spec["level"], seconds)
    return diag
