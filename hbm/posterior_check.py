"""Stage 4: posterior predictive checks of one level.

Writes posterior_predictive.nc and .json (Bayesian p-values of mean, sd, min and max; 50 % and 90 %
central interval coverage overall and per group; PSIS-LOO elpd with Pareto k counts; LOO-PIT) and the
plots: posterior predictive, LOO-PIT, shrinkage.

Memory: no array of draws x rows is held whole. The posterior predictive draws are sampled
``PREDICTIVE_CELLS`` draw x row values at a time and written into posterior_predictive.nc as they come
(:func:`predictive_streamed`; each block's test statistics taken on the way, :class:`PValues`); the
pointwise log-likelihood stays in posterior.nc. PSIS-LOO, LOO-PIT and the coverage then read both files
over blocks of observations of ``BLOCK_CELLS`` draw x observation values (PSIS smooths each observation's
weights on its own), which is how both files' HDF5 chunks are laid out.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hbm import diagnostics, plots, provenance
from hbm.io import open_netcdf, read_json, save_figure, write_json, write_netcdf
from hbm.log_likelihood import chunk_shape
from hbm.model import PREDICTIVE_COMPILE
from hbm.models import LIKELIHOOD, build_model, fitted_flips, load_level, resolve_priors
from hbm.seeds import derive_seed

log = logging.getLogger(__name__)

STATISTICS = {"mean": np.mean, "sd": lambda a, axis: np.std(a, axis=axis, ddof=1), "min": np.min, "max": np.max}
BLOCK_CELLS = 2 ** 21        # draw x observation values per block of PSIS-LOO, LOO-PIT and coverage (16 MB of
                             # float64; ArviZ's PSIS and the LOO-PIT hold several arrays of a block's size)
PREDICTIVE_CELLS = 2 ** 25   # draw x row values per call of the posterior predictive sampler (256 MB of float64)
SAMPLE_DIMS = ["chain", "draw"]


def p_values(y_obs: np.ndarray, y_rep: np.ndarray, block: int = 256) -> dict:
    """P(T(y_rep) >= T(y)) for each test statistic; ``y_rep`` is (draws, observations), its statistics
    taken ``block`` draws at a time."""
    t_rep = {name: np.concatenate([f(y_rep[a:a + block], axis=1) for a in range(0, len(y_rep), block)])
             for name, f in STATISTICS.items()}
    return {name: float(np.mean(t_rep[name] >= f(y_obs, axis=0))) for name, f in STATISTICS.items()}


def _shape(y_rep) -> tuple[int, int]:
    """(draws, observations) of ``y_rep``: an array of draws x observations, or a predictive DataArray with
    chain, draw and one observation dimension (read from its file only as :func:`_columns` asks)."""
    if isinstance(y_rep, np.ndarray):
        return y_rep.shape
    if y_rep.dims[:2] != tuple(SAMPLE_DIMS) or y_rep.ndim != 3:
        raise ValueError(f"predictive draws with dims {y_rep.dims}: expected chain, draw and one observation dim")
    return y_rep.sizes["chain"] * y_rep.sizes["draw"], y_rep.sizes[y_rep.dims[-1]]


def _columns(y_rep, a: int, b: int) -> np.ndarray:
    """Observations ``a`` to ``b`` of ``y_rep`` (see :func:`_shape`) as draws x observations (chain-major)."""
    if isinstance(y_rep, np.ndarray):
        return y_rep[:, a:b]
    _shape(y_rep)
    return _draws_by_obs(y_rep.isel({y_rep.dims[-1]: slice(a, b)}))


def _quantiles(y_rep, q, block: int) -> np.ndarray:
    """np.quantile(y_rep, q, axis=0), ``block`` observations (columns) at a time."""
    return np.concatenate([np.quantile(_columns(y_rep, a, a + block), q, axis=0)
                           for a in range(0, _shape(y_rep)[1], block)], axis=1)


def obs_block(draws: int) -> int:
    """Observations per block when each has ``draws`` draws (:data:`BLOCK_CELLS`)."""
    return max(1, BLOCK_CELLS // max(1, draws))


def coverage(y_obs, y_rep, group_idx, labels, widths=(0.5, 0.9), block: int | None = None) -> dict:
    """Share of observations inside their central posterior predictive intervals, overall and per group;
    ``block`` observations at a time (default :func:`obs_block`); ``y_rep`` as in :func:`_shape`."""
    block = block or obs_block(_shape(y_rep)[0])
    out = {}
    for w in widths:
        lo, hi = _quantiles(y_rep, [(1 - w) / 2, (1 + w) / 2], block)
        inside = (y_obs >= lo) & (y_obs <= hi)
        per_group = np.bincount(group_idx, weights=inside, minlength=len(labels)) / np.maximum(
            np.bincount(group_idx, minlength=len(labels)), 1)
        out[f"{int(w * 100)}"] = {"nominal": w, "overall": float(inside.mean()),
                                  "per_group": dict(zip(labels, map(float, per_group)))}
    return out


def relative_efficiency(posterior) -> float:
    """The relative efficiency PSIS-LOO corrects its Pareto k for, as ``arviz.loo`` computes it when it is
    not given one: the mean over every posterior value of its ESS (``method="mean"``) over the number of
    draws; 1 with one chain."""
    import arviz_stats  # noqa: F401 (registers the azstats accessor)

    if posterior.sizes["chain"] == 1:
        return 1.0
    ess = posterior.azstats.ess(method="mean")
    n = posterior.sizes["chain"] * posterior.sizes["draw"]
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n)


def _one_obs_dim(da):
    """``da`` with its observation dimensions stacked into one (in the order of the flattened observations),
    and that dimension's name."""
    obs_dims = [d for d in da.dims if d not in SAMPLE_DIMS]
    if len(obs_dims) == 1:
        return da, obs_dims[0]
    return da.stack(__obs__=obs_dims), "__obs__"


def psis_loo(log_lik, reff: float, pareto_k_threshold: float, block: int | None = None, each=None,
             pointwise: bool = False) -> dict:
    """PSIS-LOO (ArviZ's ``psislw`` and ``loo``, the same numbers as ``arviz.loo``) over ``block``
    observations of ``log_lik`` (a DataArray with chain and draw dimensions; lazily read from the file is
    fine; default :func:`obs_block`) at a time: PSIS smooths each observation's weights on its own, so only
    a block of draws x rows is held at once. ``each(block_slice, log_weights)`` sees every block's smoothed
    log weights (observations x draws, chain-major) as they are computed (:func:`loo_and_pit`). The
    summary: elpd_loo, its standard error, p_loo (ArviZ's ``loo_summary`` of the pointwise values), the
    Pareto k counts; with ``pointwise`` also each observation's elpd and Pareto k (``elpd_i``,
    ``pareto_k_i``: arrays, in the order of the flattened observations)."""
    import arviz_stats  # noqa: F401 (registers the azstats accessor)
    import xarray as xr

    log_lik, dim = _one_obs_dim(log_lik)
    n = log_lik.sizes[dim]
    block = block or obs_block(log_lik.sizes["chain"] * log_lik.sizes["draw"])
    elpd, p_loo, k = np.empty(n), np.empty(n), np.empty(n)
    for start in range(0, n, block):
        s = slice(start, min(start + block, n))
        ll = log_lik.isel({dim: s}).load()
        log_w, k_b = ll.azstats.psislw(r_eff=reff, dim=SAMPLE_DIMS)
        elpd_b, _, p_b = ll.azstats.loo(sample_dims=SAMPLE_DIMS, r_eff=reff, log_weights=log_w, pareto_k=k_b)
        elpd[s], p_loo[s], k[s] = elpd_b.values, p_b.values, k_b.values
        if each is not None:
            each(s, log_w.transpose(dim, *SAMPLE_DIMS).values.reshape(s.stop - s.start, -1))
    total, se, p, _ = xr.DataArray(elpd).azstats.loo_summary(xr.DataArray(p_loo))
    return {
        "elpd_loo": float(total), "se": float(se), "p_loo": float(p),
        "pareto_k": {"good (k < 0.5)": int((k < 0.5).sum()),
                     f"ok (0.5 <= k < {pareto_k_threshold})": int(((k >= 0.5) & (k < pareto_k_threshold)).sum()),
                     f"bad (k >= {pareto_k_threshold})": int((k >= pareto_k_threshold).sum())},
        "max_pareto_k": float(k.max()),
        "passed": bool((k < pareto_k_threshold).all()),
        **({"elpd_i": elpd, "pareto_k_i": k} if pointwise else {}),
    }


def elpd_data(idata):
    """``arviz.loo(idata, pointwise=True)`` as an ArviZ ``ELPDDataLOO`` (what ``arviz.compare`` takes), computed
    by :func:`psis_loo` a block of observations at a time: the ``log_likelihood`` group may be read lazily
    from its file (:func:`hbm.io.open_netcdf`). Same elpd, se, p, pointwise values, Pareto k, ``good_k`` and
    ``warning`` as ``arviz.loo``."""
    import xarray as xr
    from arviz_stats.utils import ELPDDataLOO

    log_lik = idata["log_likelihood"][LIKELIHOOD]
    loo = psis_loo(log_lik, relative_efficiency(idata["posterior"]), 0.7, pointwise=True)
    n_samples = int(log_lik.sizes["chain"] * log_lik.sizes["draw"])
    good_k = min(1 - 1 / np.log10(n_samples), 0.7) if n_samples > 1 else 0.7  # arviz_stats' _warn_pareto_k
    return ELPDDataLOO(elpd=loo["elpd_loo"], se=loo["se"], p=loo["p_loo"], n_samples=n_samples,
                       n_data_points=int(loo["elpd_i"].size), scale="log",
                       warning=bool(np.any(loo["pareto_k_i"] > good_k)), good_k=good_k,
                       elpd_i=xr.DataArray(loo["elpd_i"], dims="obs"),
                       pareto_k=xr.DataArray(loo["pareto_k_i"], dims="obs"))


def loo_summary(idata, pareto_k_threshold: float) -> dict:
    """:func:`psis_loo` of an InferenceData with posterior and log_likelihood groups."""
    return psis_loo(idata["log_likelihood"][LIKELIHOOD], relative_efficiency(idata.posterior), pareto_k_threshold)


def loo_and_pit(log_lik, reff: float, y_rep: np.ndarray, y_obs: np.ndarray, rng: np.random.Generator,
                pareto_k_threshold: float, block: int | None = None) -> tuple[dict, np.ndarray]:
    """:func:`psis_loo` and, in the same pass over blocks of observations, the randomized LOO-PIT of
    every observation (:func:`loo_pit_values`). ``y_rep``: draws x observations (chain-major, as
    :func:`_draws_by_obs`) or the predictive DataArray (:func:`_shape`); ``y_obs``: the flattened
    observations."""
    from scipy.special import logsumexp

    u = rng.uniform(size=y_obs.size)
    pit = np.empty(y_obs.size)

    def each(s, log_w):
        w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
        rep, y = _columns(y_rep, s.start, s.stop).T, y_obs[s].reshape(-1, 1)
        pit[s] = np.sum(w * (rep < y), axis=1) + u[s] * np.sum(w * (rep == y), axis=1)

    loo = psis_loo(log_lik, reff, pareto_k_threshold, block, each)
    return loo, np.clip(pit, 0.0, 1.0)


def _draws_by_obs(y_rep) -> np.ndarray:
    """A predictive DataArray as draws x observations (chain-major draws, flattened observations)."""
    y_rep, dim = _one_obs_dim(y_rep)
    return y_rep.transpose(*SAMPLE_DIMS, dim).values.reshape(-1, y_rep.sizes[dim])


def loo_pit_values(idata, rng: np.random.Generator, block: int | None = None) -> np.ndarray:
    """LOO-PIT of every observation (flattened), randomized where the outcome has ties:

        PIT_i = P_loo(y_rep < y_i) + U_i * P_loo(y_rep = y_i),   U_i ~ Uniform(0, 1) from ``rng``,

    with P_loo the posterior predictive draws weighted by their PSIS-LOO weights (:func:`psis_loo`). For a
    calibrated model these are uniform also for counts; ``P_loo(y_rep <= y_i)`` is not (it piles up near
    1 when a few values take most of the mass), and ArviZ 0.x's loo_pit smoothed integer outcomes,
    flagging well calibrated count models (issue 21: KS 0.186 against 0.03). For continuous outcomes ties
    have probability zero and this is the usual LOO-PIT. Needs the posterior_predictive, observed_data
    and log_likelihood groups; ``block`` observations at a time bound the memory."""
    y_obs = np.asarray(_one_obs_dim(idata["observed_data"][LIKELIHOOD])[0].values).ravel()
    return loo_and_pit(idata["log_likelihood"][LIKELIHOOD], relative_efficiency(idata.posterior),
                       _draws_by_obs(idata["posterior_predictive"][LIKELIHOOD]), y_obs, rng, 0.7, block)[1]


def loo_pit_summary(idata, seed: int = 0, pit: np.ndarray | None = None) -> dict:
    """LOO-PIT values should look uniform; report a KS test and the tails' shares. ``pit``: the values of
    :func:`loo_pit_values` when the caller has them (to plot them too); else they are computed here with
    a Generator seeded by ``seed``."""
    from scipy import stats

    if pit is None:
        pit = loo_pit_values(idata, np.random.default_rng(seed))
    pit = np.asarray(pit, dtype=float).ravel()
    ks = stats.kstest(pit, "uniform")
    return {"ks_statistic": float(ks.statistic), "ks_p_value": float(ks.pvalue),
            "share_below_0.05": float(np.mean(pit < 0.05)), "share_above_0.95": float(np.mean(pit > 0.95))}


def shrinkage_table(data, idata) -> dict:
    post = idata.posterior["theta"]
    # each group's own estimate on theta's scale (log scale for the log-link families)
    raw_n, raw_mean = data.family_def.raw_location(data.y, data.group_idx, len(data.groups))
    return {
        "scale": "log" if data.log_link else "identity",
        "group": data.groups, "n": raw_n.tolist(), "raw_mean": raw_mean.tolist(),
        "posterior_mean": post.mean(("chain", "draw")).values.tolist(),
        "q05": post.quantile(0.05, ("chain", "draw")).values.tolist(),
        "q95": post.quantile(0.95, ("chain", "draw")).values.tolist(),
        # the population mean is the common centre only without parents or group-level predictors
        "mu": float(idata.posterior["mu"].mean()) if len(data.layers) == 1 and not data.predictors else None,
    }


def table_mix(table_path) -> dict | None:
    """How much price and promotion vary within the level's summed unit-periods (:func:`hbm.aggregate.mix`),
    from the level table's metadata."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(table_path).metadata or {}
    return json.loads(meta[b"hbm.mix"]) if b"hbm.mix" in meta else None


def draws_per_call(chains: int, rows: int, cells: int = PREDICTIVE_CELLS) -> int:
    """Draws of every chain per call of the posterior predictive sampler: ``cells`` draw x row values."""
    return max(1, cells // max(1, chains * rows))


def predictive_parts(fitted, model, seed: int, rows: int, cells: int = PREDICTIVE_CELLS):
    """PyMC's posterior predictive draws of ``model`` from the fit ``fitted`` (its posterior, and its
    constant_data: without them PyMC cannot tell that the data are those of the fit and would draw every
    parameter that depends on them from its prior), ``cells`` draw x row values per call: PyMC holds each
    call's draws twice (a list, then the stacked array). Yields ``(start, stop, part)``, ``part`` the
    call's InferenceData (posterior_predictive, observed_data, constant_data) of draws ``start`` to
    ``stop`` of every chain (:func:`draws_per_call` of them); the first call has seed ``seed``, call i a
    seed derived from it and i."""
    import pymc as pm
    import xarray as xr

    posterior = fitted["posterior"].to_dataset()
    others = {g: fitted[g].to_dataset() for g in ("constant_data", "observed_data") if g in fitted.children}
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    per = draws_per_call(chains, rows, cells)
    for i, start in enumerate(range(0, draws, per)):
        if i:
            log.info("posterior predictive: draws %d-%d of %d", start, min(start + per, draws), draws)
        part = posterior if per >= draws else posterior.isel(draw=slice(start, start + per))
        yield start, min(start + per, draws), pm.sample_posterior_predictive(
            xr.DataTree.from_dict({"posterior": part, **others}), model=model,
            random_seed=seed if i == 0 else derive_seed(seed, "posterior predictive", i), progressbar=False,
            compile_kwargs=PREDICTIVE_COMPILE)


def predictive_draws(fitted, model, seed: int, rows: int, cells: int = PREDICTIVE_CELLS):
    """The draws of :func:`predictive_parts` in one InferenceData (posterior_predictive, observed_data,
    constant_data), held whole: for a small level, a test, a plot. The posterior check itself writes them
    to its file as they come (:func:`predictive_streamed`)."""
    import xarray as xr

    posterior = fitted["posterior"]
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    first, values = None, None
    for start, stop, part in predictive_parts(fitted, model, seed, rows, cells):
        if start == 0 and stop == draws:
            return part
        y = part["posterior_predictive"][LIKELIHOOD]
        if first is None:
            first = part
            values = np.empty((chains, draws, *y.shape[2:]), dtype=y.dtype)
        values[:, start:stop] = y.transpose(*SAMPLE_DIMS, ...).values
    y = first["posterior_predictive"][LIKELIHOOD]
    full = xr.DataArray(values, dims=(*SAMPLE_DIMS, *y.dims[2:]),
                        coords={**{d: y.coords[d] for d in y.dims[2:] if d in y.coords},
                                "chain": posterior.chain, "draw": posterior.draw}, attrs=y.attrs)
    group = first["posterior_predictive"].to_dataset()
    first["posterior_predictive"] = xr.DataTree(xr.Dataset({LIKELIHOOD: full}, attrs=group.attrs))
    return first


def predictive_streamed(fitted, model, seed: int, rows: int, on_block=None, cells: int = PREDICTIVE_CELLS):
    """The draws of :func:`predictive_parts` as a :class:`hbm.io.Streamed` group ``posterior_predictive``
    for :func:`hbm.io.write_netcdf`, which writes each call's draws as they come (none held whole).
    ``on_block(values)`` sees each call's draws (chains x draws x observations) first. Dims, coordinates
    and attributes as PyMC's group has them (its observed data's, with sample_dims chain and draw)."""
    from hbm.io import Streamed

    posterior, obs = fitted["posterior"], fitted["observed_data"][LIKELIHOOD]
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    chunks = chunk_shape(chains, draws, rows, draws_per_call(chains, rows, cells))

    def blocks():
        for start, stop, part in predictive_parts(fitted, model, seed, rows, cells):
            values = part["posterior_predictive"][LIKELIHOOD].transpose(*SAMPLE_DIMS, ...).values
            if on_block is not None:
                on_block(values)
            for chain in range(chains):
                yield chain, slice(start, stop), values[chain]

    attrs = {k: v for k, v in fitted["observed_data"].attrs.items() if not k.startswith("hbm_")}
    return Streamed.per_draw("posterior_predictive", obs, posterior, attrs, blocks, chunks,
                             str(model[LIKELIHOOD].dtype))


class PValues:
    """:func:`p_values` from blocks of draws (``add`` each, then ``result``): each draw's statistics are
    taken as its block comes, so the draws are never held whole."""

    def __init__(self, y_obs: np.ndarray):
        self.y_obs, self.t_rep = y_obs, {name: [] for name in STATISTICS}

    def add(self, values: np.ndarray) -> None:
        rep = values.reshape(-1, self.y_obs.size)
        for name, f in STATISTICS.items():
            self.t_rep[name].append(f(rep, axis=1))

    def result(self) -> dict:
        return {name: float(np.mean(np.concatenate(self.t_rep[name]) >= f(self.y_obs, axis=0)))
                for name, f in STATISTICS.items()}


def _summarize(idata_path, fitted, posterior, data, stats, spec, seed, pareto_k, table_path):
    """The posterior check's summary, posterior predictive figure, LOO-PIT values and shrinkage table, the
    predictive draws read back from ``idata_path`` a block of observations at a time."""
    with open_netcdf(idata_path, lazy=("posterior_predictive",)) as written:
        y_rep = written["posterior_predictive"][LIKELIHOOD]
        log.info("level %s: PSIS-LOO and LOO-PIT over %d observations", spec["level"], data.y.size)
        # randomized LOO-PIT (ties of discrete outcomes spread uniformly), seeded from the job's seed
        loo, pit = loo_and_pit(fitted["log_likelihood"][LIKELIHOOD], relative_efficiency(posterior), y_rep,
                               data.y, np.random.default_rng([seed, 1]), pareto_k)
        shrink = shrinkage_table(data, fitted)
        summary = {
            "level": spec["level"], "seed": seed,
            "p_values": stats.result(),
            "coverage": coverage(data.y, y_rep, data.group_idx, data.groups),
            "loo": loo,
            "loo_pit": loo_pit_summary(None, pit=pit),
            "shrinkage": shrink,
            "mix": table_mix(table_path),
        }
        ppc_figure = plots.predictive(written, "posterior", title=f"Posterior predictive check: {spec['level']}",
                                      log1p=data.family_def.plot_scale == "log1p")
    return summary, ppc_figure, pit, shrink


def posterior_check(table_path, posterior_path, diagnostics_path, idata_path, summary_path,
                    ppc_plot_path, loo_pit_plot_path, shrinkage_plot_path, *, spec: dict, seed: int,
                    pareto_k: float, on_failure: str, sources: dict | None = None) -> dict:
    import xarray as xr

    diagnostics.require_passed(read_json(diagnostics_path), on_failure, str(diagnostics_path))
    data = load_level(table_path, spec)
    stamp = {**provenance.netcdf_attrs(sources), "hbm_level": spec["level"], "hbm_seed": seed}
    with open_netcdf(posterior_path, lazy=("log_likelihood",)) as fitted:
        posterior = fitted.posterior.to_dataset()
        model = build_model(data, spec, resolve_priors(spec, data), flipped=fitted_flips(fitted))
        log.info("level %s: posterior predictive draws, seed %d, written to %s as they come", spec["level"],
                 seed, idata_path)
        stats = PValues(data.y)
        streamed = predictive_streamed(fitted, model, seed, rows=data.y.size, on_block=stats.add)
        streamed.attrs.update(stamp)
        pp = xr.DataTree.from_dict({
            g: xr.Dataset(fitted[g].to_dataset().data_vars, coords=fitted[g].to_dataset().coords,
                          attrs={k: v for k, v in fitted[g].attrs.items() if not k.startswith("hbm_")})
            for g in ("observed_data", "constant_data") if g in fitted.children})
        provenance.stamp(pp, stamp)
        write_netcdf(pp, idata_path, streamed=[streamed])
        try:
            summary, ppc_figure, pit, shrink = _summarize(idata_path, fitted, posterior, data, stats, spec, seed,
                                                          pareto_k, table_path)
        except BaseException:
            Path(idata_path).unlink(missing_ok=True)  # no predictive draws without their summary
            raise
    log.info("level %s: elpd_loo %.1f (se %.1f), max Pareto k %.2f, 90%% coverage %.2f", spec["level"],
             summary["loo"]["elpd_loo"], summary["loo"]["se"], summary["loo"]["max_pareto_k"],
             summary["coverage"]["90"]["overall"])
    write_json(summary, summary_path)
    save_figure(ppc_figure, ppc_plot_path)
    save_figure(plots.loo_pit(pit, title=f"LOO-PIT: {spec['level']}"), loo_pit_plot_path)
    save_figure(plots.shrinkage(shrink["raw_mean"], shrink["n"], shrink["posterior_mean"], shrink["q05"],
                                shrink["q95"], shrink["group"], spec["level"], shrink["mu"], shrink["scale"]),
                shrinkage_plot_path)
    return summary
