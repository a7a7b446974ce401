"""The one place where PyMC graphs are built.

A level's model is described by plain data (the ``spec`` from :func:`hbm.config.level_spec`) and the
validated observations; :func:`level_data` turns those into arrays and coords, :func:`resolve_priors`
fills in data-scaled default priors, and :func:`build_model` makes the ``pm.Model``. What a family is
(its link, likelihood, auxiliary parameters and their default priors) comes from the registry
:mod:`hbm.model.families`; priors are made by :mod:`hbm.model.priors`.

Identity-link families (normal, studentt), for the groups ``j`` of the fitted level with parent layers
``p1`` (nearest) ... ``pk``:

    y_i      ~ Normal(theta[g_i] + x_i . beta, s_i) | StudentT(nu, theta[g_i] + x_i . beta, s_i)
    theta_j  ~ Normal(theta_p1[parent(j)] + Z_j . gamma, tau)        (each layer likewise, up to mu)
    s_i      = sigma[g_i] (noise group) | sigma (shared) | measurement_sd_i (known)
    x_i      = X_i - mean of X over the fitted rows (the covariates, centred: theta_j is group j's mean at
               the average covariates, and intercepts and slopes do not trade off)

Log-link families (lognormal, gamma, poisson, negative_binomial, hurdle_negative_binomial, hurdle_gamma),
for unit ``j`` in period ``t``:

    y_jt     ~ family(eta_jt, aux)          (the registry's likelihood; e.g. NegBinomial(exp(eta_jt), alpha))
    eta_jt   = theta_j + trend_j * u_t + season_j . F_t + elasticity * lp_jt + promo_lift * promo_jt + x_jt . beta
    u_t      = (t - t_centre) / per                 (t_centre: middle of the fitted periods; slope per ``per``)
    F_t      = [sin(2 pi k t / P), cos(2 pi k t / P)] for k = 1..order (P = the season's period)
    lp_jt    = log(price_jt) - mean_t log(price_jt) (the unit's mean over the fitted periods)

exp(eta) is the mean (poisson, negative_binomial, gamma), the median (lognormal: log y ~ Normal(eta,
sigma)), the mean of the negative binomial before its truncation at zero (hurdle_negative_binomial) or the
mean of the non-zero values (hurdle_gamma). theta (intercept), trend (slope) and season (Fourier
coefficients) are each partially pooled through the same parent layers as the identity-link families'
group means, each with its own sds: e.g. ``trend_j ~ Normal(trend_<p>[parent(j)], trend_tau)``,
``trend_<p> ~ Normal(trend_mu, trend_tau_<p>)``. Time is centred and price is centred per unit, so theta is
the unit's log mean (median, ...) in the middle of the fitted window at its mean log price without promotion
and at the average covariates (``x`` centred as above), and no term is confounded with the intercept.
Elasticity and promotion lift are shared by the level's units, and so are the family's auxiliary parameters: ``alpha`` the negative binomial dispersion (variance
mu + mu^2 / alpha, the prior on ``alpha_inv_sqrt = 1 / sqrt(alpha)``), ``sigma`` the lognormal's sd of
log y, ``shape`` the gamma shape (the prior on the coefficient of variation ``cv = 1 / sqrt(shape)``),
``psi`` the probability of a non-zero value (hurdle families).

Parametrization (:mod:`hbm.parametrization`, ``auto`` by default: decided per effect, layer and group from
the data): non-centered ``theta = loc + tau * theta_offset``, ``theta_offset ~ Normal(0, 1)``; centered
``theta ~ Normal(loc, tau)``; a vector that mixes both has one ``theta_raw`` (each element an effect or an
offset, with the matching prior).
Variable names: ``mu``, ``tau``, ``theta`` (dims = the level's name), ``theta_offset``; a parent layer
``c`` has ``tau_c``, ``theta_c``, ``theta_c_offset`` (dims = ``c``); likewise ``trend_mu``,
``trend_tau``, ``trend``, ``trend_tau_c``, ``trend_c`` and ``season_*`` (extra dim ``fourier``);
``sigma``, ``nu``; ``beta`` (dims ``covariate``); ``gamma`` (dims ``predictor``); ``elasticity``,
``promo_lift``, ``alpha`` (``alpha_inv_sqrt``), ``shape`` (``cv``), ``psi``; the likelihood is ``y`` (dims
``obs_id``).

Pooling variants (``spec["pooling"]``, for the pooling comparison of :mod:`hbm.pooling`; absent means
``partial``, the model above): ``complete``: every unit takes the population values, ``theta_j = mu``
(+ ``Z_j . gamma``), ``trend_j = trend_mu``, ``season_j = season_mu``; no sds, no parent layers.
``none``: each unit's effects have independent priors, those of the population means (mu's prior for
theta, ``trend``'s and ``season``'s for trend and season); no sds, no parent layers, no group-level
predictors (with a free intercept per unit their slopes are not identified). Noise, covariates,
elasticity, promotion lift and the family's auxiliary parameters are as in the partial model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hbm.model import families
from hbm.model.builder import pooled as _pooled
from hbm.model.design import (  # noqa: F401 (the names other modules import from here)
    COVARIATE_DIM,
    FOURIER_DIM,
    LIKELIHOOD,
    OBS_DIM,
    OBSERVED,
    PREDICTOR_DIM,
    Layer,
    fourier_terms,
)
from hbm.model.priors import log_link_effects, log_mean_centre, resolve, rv, sig

POOLING = ("partial", "complete", "none")
COVARIATE_MEANS = "covariate_means"  # LevelData.reference key: each covariate's mean over the fitted rows


@dataclass
class LevelData:
    level: str
    target: str
    y: np.ndarray
    group_idx: np.ndarray
    layers: list[Layer]  # layers[0] is the fitted level, then its parents, nearest first
    X: np.ndarray
    covariates: list[str]
    Z: np.ndarray
    predictors: list[str]
    sd: np.ndarray | None = None
    coords: dict = field(default_factory=dict)
    family: str = "normal"
    period: np.ndarray | None = None  # period index of each observation (log-link families with time)
    u: np.ndarray | None = None  # centred, scaled time of each observation (trend)
    F: np.ndarray | None = None  # Fourier terms of each observation, (obs, 2 * order)
    log_price: np.ndarray | None = None  # log price relative to the unit's mean log price
    promo: np.ndarray | None = None
    reference: dict = field(default_factory=dict)  # what new data of this level must be scaled/centred by
    fitted: "LevelData | None" = None  # new rows (forecasts): the data the model was fitted to
    dropped: list[str] = field(default_factory=list)  # parent columns left out: each unit has one child

    @property
    def groups(self) -> list[str]:
        return self.layers[0].labels

    @property
    def family_def(self) -> families.Family:
        """The family's registry entry (:mod:`hbm.model.families`)."""
        return families.get(self.family)

    @property
    def log_link(self) -> bool:
        """A log-link family: time effects, price, promotion, zero-sum top layer."""
        return self.family_def.log_link


def level_data(df: pd.DataFrame, spec: dict, like: LevelData | None = None) -> LevelData:
    """Arrays and coords for one level from its table (the rows to fit).

    ``like``: the data of a fitted model: new rows (forecasts) get its units, parents and scaling.
    """
    cols, hier, level = spec["columns"], spec["hierarchy"], spec["level"]
    chain = [layer.column for layer in like.layers] if like else [hier["column"], *hier["parents"]]
    codes, labels = [], []
    for i, c in enumerate(chain):
        cat = pd.Categorical(df[c].astype(str), categories=like.layers[i].labels if like else None)
        if like and (cat.codes < 0).any():
            raise ValueError(f"column {c!r}: {df[c][cat.codes < 0].iloc[0]!r} is not a unit of the fitted model")
        codes.append(cat.codes.astype("int64"))
        labels.append([str(x) for x in cat.categories])
    if like:
        layers = like.layers
    else:
        # a parent layer whose every unit has one child adds nothing the layer below does not say: its sd
        # and the child's trade off along a ridge only their priors bound (3 products, one per category:
        # divergences at every attempt of the stress battery's few_units_long). It is left out of the model
        # (``LevelData.dropped``); the child layer takes its place below the next parent up.
        keep = [0] + [i for i in range(1, len(chain)) if len(labels[i]) < len(labels[i - 1])]
        layers = []
        for n, i in enumerate(keep):
            up = None
            if n + 1 < len(keep):
                up = np.zeros(len(labels[i]), dtype="int64")
                up[codes[i]] = codes[keep[n + 1]]
            layers.append(Layer(chain[i], labels[i], up))
    first = pd.Series(np.arange(len(df))).groupby(codes[0]).first().to_numpy()
    Z = df[hier["predictors"]].to_numpy("float64")[first] if hier["predictors"] else np.zeros((len(labels[0]), 0))
    if like is not None:  # new rows may lack some units: the fitted units' predictors stay as they were
        Z = like.Z
    X = df[cols["covariates"]].to_numpy("float64") if cols["covariates"] else np.zeros((len(df), 0))
    # covariates enter centred on their mean over the fitted rows (as brms and rstanarm do): the intercepts
    # are the units' values at the average covariates and not at all-zero covariates, which no row may have
    # (a Monday of M5's day-of-week indicators), so that intercepts and slopes do not trade off. Uncentred,
    # every unit's intercept correlated about -0.47 with each day-of-week slope on M5's store level, and on a
    # sixth of its product level (511 items, target_accept 0.99) the department means reached R-hat 1.028
    # and bulk ESS 167; centred, 1.005 at most on the pooled means, in 23 % less time.
    means = like.reference[COVARIATE_MEANS] if like else (X.mean(axis=0).tolist() if len(X) else [0.0] * X.shape[1])
    X = X - np.asarray(means, dtype="float64")
    sd = df[cols["measurement_sd"]].to_numpy("float64") if cols.get("measurement_sd") else None
    coords = {level: labels[0], OBS_DIM: np.arange(len(df))}
    for layer in layers[1:]:
        coords[layer.column] = layer.labels
    if cols["covariates"]:
        coords[COVARIATE_DIM] = list(cols["covariates"])
    if hier["predictors"]:
        coords[PREDICTOR_DIM] = list(hier["predictors"])
    data = LevelData(
        level=level, target=cols["target"], y=df[cols["target"]].to_numpy("float64"), group_idx=codes[0],
        layers=layers, X=X, covariates=list(cols["covariates"]), Z=Z, predictors=list(hier["predictors"]),
        sd=sd, coords=coords, family=spec["model"]["family"], fitted=(like.fitted or like) if like else None,
        dropped=like.dropped if like else [c for c in chain if c not in {layer.column for layer in layers}],
        reference={COVARIATE_MEANS: list(means)},
    )
    if data.log_link:
        _time_effects(data, df, spec, like)
    return data


def _time_effects(data: LevelData, df: pd.DataFrame, spec: dict, like: LevelData | None) -> None:
    """Trend, seasonality, price and promotion inputs of a log-link model (scaled as ``like`` if given)."""
    from hbm.ingest import PERIOD

    cols, model = spec["columns"], spec["model"]
    ref = dict(like.reference) if like else dict(data.reference)
    if cols["time"]:
        data.period = df[PERIOD].to_numpy("int64")
    if model["trend"]:
        if "t_centre" not in ref:
            ref["t_centre"] = float(data.period.min() + data.period.max()) / 2
        data.u = (data.period - ref["t_centre"]) / model["trend"]["per"]
    if model["seasonality"]:
        data.F, names = fourier_terms(data.period, model["seasonality"]["period"], model["seasonality"]["order"])
        data.coords[FOURIER_DIM] = names
    if cols["price"]:
        logp = np.log(df[cols["price"]].to_numpy("float64"))
        if "mean_log_price" not in ref:
            means = np.bincount(data.group_idx, weights=logp, minlength=len(data.groups))
            ref["mean_log_price"] = (means / np.maximum(np.bincount(data.group_idx, minlength=len(data.groups)), 1)).tolist()
        data.log_price = logp - np.asarray(ref["mean_log_price"])[data.group_idx]
    if cols["promotion"]:
        data.promo = df[cols["promotion"]].to_numpy("float64")
    data.reference = ref


def load_level(table_path, spec: dict) -> LevelData:
    """The data a level's model is fitted to: its table without the held-out periods."""
    from hbm.aggregate import fit_rows
    from hbm.ingest import read_observations

    return level_data(fit_rows(read_observations(table_path)), spec)


def resolve_priors(spec: dict, data: LevelData) -> dict:
    """The priors in force: the config's, and data-scaled defaults for any it leaves out.

    Defaults (weakly informative, on the scale of the data, as in rstanarm's autoscaling):
    mu ~ Normal(mean(y), 2.5 sd(y)); tau, sigma ~ HalfNormal(sd(y));
    beta_k ~ Normal(0, 2.5 sd(y) / sd(x_k)); gamma_m ~ Normal(0, 2.5 sd(y) / sd(z_m)).
    studentt: also the registry's ``nu``. Log-link families: see :func:`_log_link_defaults`.
    """
    given = spec["model"].get("priors", {})
    family = data.family_def
    if family.log_link:
        return resolve(given, _log_link_defaults(data))
    sy = float(np.std(data.y)) if data.y.size > 1 else 0.0
    sy = sy if np.isfinite(sy) and sy > 0 else 1.0
    defaults = {
        "mu": {"dist": "normal", "mu": sig(float(np.mean(data.y))), "sigma": sig(2.5 * sy)},
        "tau": {"dist": "halfnormal", "sigma": sig(sy), "param": "sd"},
        "sigma": {"dist": "halfnormal", "sigma": sig(sy), "param": "sd"},
        "beta": {"dist": "normal", "mu": 0.0, "sigma": _slopes(data.X, 2.5 * sy)},
        "gamma": {"dist": "normal", "mu": 0.0, "sigma": _slopes(data.Z, 2.5 * sy)},
    }
    defaults |= {k: v for k, v in family.default_priors().items() if k not in defaults}  # studentt: nu
    return resolve(given, defaults)


def _slopes(M: np.ndarray, scale: float) -> list[float]:
    s = np.std(M, axis=0) if M.size else np.zeros(0)
    s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
    return [sig(scale / v) for v in s]


def _log_link_defaults(data: LevelData) -> dict:
    """Log-link families, on the log scale: mu ~ Normal(median over units of log(unit mean), 1) (robust: a few
    large units do not pull it, as the log of the overall mean would); tau ~ HalfNormal(1); trend ~
    Normal(0, 0.5) and trend_tau ~ HalfNormal(0.25) (per ``trend.per`` periods); season ~ Normal(0, 0.5),
    season_tau ~ HalfNormal(0.25); elasticity ~ Normal(-1, 1); promo_lift ~ Normal(0, 1); the family's
    auxiliary parameters the registry's defaults (``Family.default_priors``: ``dispersion``, the prior on
    1/sqrt(alpha) or on the gamma's cv, ~ HalfNormal(1); the lognormal's ``sigma`` ~ HalfNormal(1); the
    hurdle's ``hurdle``, the prior on psi, ~ Beta(1, 1)); beta_k ~ Normal(0, 1 / max(2 sd(x_k), range(x_k) /
    2)) and gamma_m likewise: moving a
    covariate by two sds (an indicator from 0 to 1) changes the mean by a factor within e^(+-2) at two prior
    sds, so the prior predictive stays in a range the target can take (2.5 / sd(x), the rstanarm scale, put a
    0/1 indicator's factor near e^(+-15))."""
    return {
        **log_link_effects(log_mean_centre(data.y, data.group_idx, len(data.groups))),
        **data.family_def.default_priors(),
        "beta": {"dist": "normal", "mu": 0.0, "sigma": _log_slopes(data.X)},
        "gamma": {"dist": "normal", "mu": 0.0, "sigma": _log_slopes(data.Z)},
    }


def _log_slopes(M: np.ndarray) -> list[float]:
    """Log-link slopes: 1 / max(2 sd, range / 2) per column (1 where a column does not vary)."""
    if not M.size:
        return []
    spread = np.maximum(2 * np.std(M, axis=0), np.ptp(M, axis=0) / 2)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    return [sig(1.0 / v) for v in spread]


def parametrization(data: LevelData, spec: dict) -> dict:
    """Centered or non-centered per pooled effect, layer and group (:func:`hbm.parametrization.decide`),
    decided on the data the model is fitted to (for new rows: ``data.fitted``)."""
    from hbm.parametrization import decide

    return decide(data.fitted or data, spec)


def flip_effects(centering: dict, effects) -> dict:
    """``centering`` (:func:`parametrization`) with the other parametrization for ``effects``: each layer
    takes the opposite of its majority (the escalation ladder's rung, :func:`hbm.fit.reparametrizer`)."""
    from hbm.model.builder import flip

    if not effects:
        return centering
    flipped = flip({e: {"level": d} for e, d in centering.items()}, effects)
    return {e: by_h["level"] for e, by_h in flipped.items()}


# the pooled effects of a level's model and the prefixes of their variables (theta, theta_offset, tau,
# tau_category, ...; trend_mu, trend_tau, trend_offset, ...; season_...)
EFFECT_PREFIXES = {"intercept": ("theta", "tau", "mu"), "trend": ("trend",), "season": ("season",)}


def effect_of(variable: str) -> str | None:
    """The pooled effect a variable of a level's model belongs to (``tau_category`` -> intercept), or None."""
    base = variable.split("[")[0]
    for effect, prefixes in EFFECT_PREFIXES.items():
        if any(base == p or base.startswith(f"{p}_") for p in prefixes):
            return effect
    return None


def is_sd(variable: str) -> bool:
    """Whether a variable of a level's model is the sd of a pooled layer (``tau``, ``tau_region``, ``trend_tau``)."""
    base = variable.split("[")[0]
    return base == "tau" or base.startswith("tau_") or "_tau" in base


def fitted_flips(idata) -> list[str]:
    """The effects a fit flipped to the other parametrization (its posterior's ``hbm_flipped``)."""
    import json

    return json.loads(idata.posterior.attrs.get("hbm_flipped", "[]"))


def pooling_of(spec: dict) -> str:
    """The spec's pooling variant: ``partial`` (the default), ``complete`` or ``none``."""
    pooling = spec.get("pooling", "partial")
    if pooling not in POOLING:
        raise ValueError(f"pooling {pooling!r} is not one of {list(POOLING)}")
    return pooling


def _unpooled(name: str, data: LevelData, priors: dict, pooling: str, extra_dims=(), shift=None):
    """One effect per unit without partial pooling (parents ignored): ``complete``, every unit takes the
    population value ``<name>_mu`` (``mu`` for theta; ``shift`` adds group-level predictors); ``none``,
    each unit's effect is independent with the population mean's prior (no group-level predictors)."""
    import pymc as pm
    import pytensor.tensor as pt

    loc_prior = priors["mu"] if name == "theta" else priors[name]
    dims = (data.level, *extra_dims) if extra_dims else data.level
    if pooling == "none":
        return rv(name, loc_prior, dims=dims)
    loc = rv("mu" if name == "theta" else f"{name}_mu", loc_prior, dims=extra_dims[0] if extra_dims else None)
    n = len(data.groups)
    loc = pt.ones((n, 1)) * loc[None, :] if extra_dims else pt.ones(n) * loc
    return pm.Deterministic(name, shift(loc) if shift is not None else loc, dims=dims)


def _hierarchy(name: str, data: LevelData, priors: dict, centering: dict | None, parent_idx: dict, extra_dims=(),
               shift=None, pooling: str = "partial"):
    """One effect per unit of the level, pooled through every parent layer up to a population mean.

    ``name`` "theta" uses the priors mu/tau; any other uses ``<name>`` and ``<name>_tau`` and names its
    variables ``<name>_mu``, ``<name>_tau``, ``<name>``, ``<name>_tau_<parent>``, ``<name>_<parent>``.
    ``shift(loc)`` adds group-level predictors at the fitted level. ``centering``: the effect's entry of
    :func:`parametrization` (a ``centered`` list per layer). ``pooling`` other than ``partial``: see
    :func:`_unpooled`.
    """
    if pooling != "partial":
        return _unpooled(name, data, priors, pooling, extra_dims, shift if pooling == "complete" else None)
    mu_name, tau_name = ("mu", "tau") if name == "theta" else (f"{name}_mu", f"{name}_tau")
    loc_prior, tau_prior = (priors["mu"], priors["tau"]) if name == "theta" else (priors[name], priors[f"{name}_tau"])
    loc = rv(mu_name, loc_prior, dims=extra_dims[0] if extra_dims else None)
    for i in range(len(data.layers) - 1, -1, -1):
        layer = data.layers[i]
        suffix = "" if i == 0 else f"_{layer.column}"
        dims = (data.level if i == 0 else layer.column, *extra_dims)
        if i + 1 < len(data.layers):
            loc = loc[parent_idx[i]]
        if i == 0 and shift is not None:
            loc = shift(loc)
        tau = rv(f"{tau_name}{suffix}", tau_prior)
        loc = _pooled(f"{name}{suffix}", loc, tau, dims if extra_dims else dims[0], centering["layers"][i]["centered"],
                      zero_sum=data.log_link and i == len(data.layers) - 1)
    return loc


def build_model(data: LevelData, spec: dict, priors: dict | None = None, observed_as_data: bool = False,
                flipped=()):
    """The ``pm.Model`` of one level (see the module docstring).

    ``flipped``: effects given the other parametrization than the decided one (:func:`flip_effects`; a fit's
    escalation ladder records them in the posterior's ``hbm_flipped`` attribute, which every later model of
    the same fit must use: :func:`fitted_flips`).

    ``observed_as_data``: the observations enter as a Data container named ``y_observed``, so one compiled
    model can be given new observations (simulation-based calibration fits many simulated data sets of
    the same shape: ``pm.set_data`` or nutpie's ``with_data``)."""
    import pymc as pm

    priors = priors or resolve_priors(spec, data)
    model_cfg = spec["model"]
    level = data.level
    pooling = pooling_of(spec)
    centering = flip_effects(parametrization(data, spec), flipped) if pooling == "partial" else {}
    with pm.Model(coords=data.coords) as model:
        observed = pm.Data(OBSERVED, data.y, dims=OBS_DIM) if observed_as_data else data.y
        group_idx = pm.Data("group_idx", data.group_idx, dims=OBS_DIM)
        parent_idx = {i: pm.Data(f"{layer.column}_parent_idx", layer.up, dims=level if i == 0 else layer.column)
                      for i, layer in enumerate(data.layers[:-1])} if pooling == "partial" else {}

        def predictors(loc):
            Z = pm.Data("Z", data.Z, dims=(level, PREDICTOR_DIM))
            gamma = rv("gamma", _vector_prior(priors["gamma"]), dims=PREDICTOR_DIM)
            return loc + pm.math.dot(Z, gamma)

        theta = _hierarchy("theta", data, priors, centering.get("intercept"), parent_idx,
                           shift=predictors if data.predictors else None, pooling=pooling)
        mean = theta[group_idx]
        if data.covariates:
            X = pm.Data("X", data.X, dims=(OBS_DIM, COVARIATE_DIM))
            beta = rv("beta", _vector_prior(priors["beta"]), dims=COVARIATE_DIM)
            mean = mean + pm.math.dot(X, beta)
        family = data.family_def
        if family.log_link:
            mean = mean + _time_terms(data, priors, centering, parent_idx, group_idx, pooling)
            family.likelihood(LIKELIHOOD, mean, observed, priors, dims=OBS_DIM)
            return model
        noise = model_cfg["noise"]
        if noise == "group":
            s = rv("sigma", priors["sigma"], dims=level)[group_idx]
        elif noise == "shared":
            s = rv("sigma", priors["sigma"])
        else:
            s = pm.Data("measurement_sd", data.sd, dims=OBS_DIM)
        family.likelihood(LIKELIHOOD, mean, observed, priors, dims=OBS_DIM, given={"sigma": s})
    return model


def _time_terms(data: LevelData, priors: dict, centering: dict, parent_idx: dict, group_idx, pooling="partial"):
    """Trend, seasonality, price and promotion terms of a log-link model's linear predictor."""
    import pymc as pm

    terms = 0.0
    if data.u is not None:
        trend = _hierarchy("trend", data, priors, centering.get("trend"), parent_idx, pooling=pooling)
        terms = terms + trend[group_idx] * pm.Data("trend_time", data.u, dims=OBS_DIM)
    if data.F is not None:
        season = _hierarchy("season", data, priors, centering.get("season"), parent_idx,
                            extra_dims=(FOURIER_DIM,), pooling=pooling)
        F = pm.Data("fourier_terms", data.F, dims=(OBS_DIM, FOURIER_DIM))
        terms = terms + (season[group_idx] * F).sum(axis=-1)
    if data.log_price is not None:
        elasticity = rv("elasticity", priors["elasticity"])
        terms = terms + elasticity * pm.Data("log_price", data.log_price, dims=OBS_DIM)
    if data.promo is not None:
        lift = rv("promo_lift", priors["promotion"])
        terms = terms + lift * pm.Data("promotion", data.promo, dims=OBS_DIM)
    return terms


def _vector_prior(prior: dict) -> dict:
    return {k: (np.asarray(v, dtype="float64") if isinstance(v, list) else v) for k, v in prior.items()}


def _noise_sigma(family: families.Family, aux: families.Aux) -> bool:
    """The identity-link families' sigma: made by ``model.noise`` (one per group, shared or known), not by
    the family."""
    return not family.log_link and aux.argument == "sigma"


def group_parameters(spec: dict) -> list[str]:
    """Variables with one value per group of the fitted level (shown per group, not as a summary row)."""
    model = spec["model"]
    family = families.get(model["family"])
    names = ["theta"]
    if not family.log_link and model.get("noise") == "group":
        names.append("sigma")
    if family.log_link:
        names += ["trend"] if model.get("trend") else []
        names += ["season"] if model.get("seasonality") else []
    return names


def hyperparameters(spec: dict) -> list[str]:
    """Population-level variables: what a reader of the report looks at first."""
    model, cols, parents = spec["model"], spec["columns"], spec["hierarchy"]["parents"]
    family = families.get(model["family"])
    names = ["mu", "tau"] + [f"tau_{p}" for p in parents]
    if not family.log_link and model.get("noise") == "shared":
        names.append("sigma")
    if family.log_link:
        for effect, on in (("trend", model.get("trend")), ("season", model.get("seasonality"))):
            if on:
                names += [f"{effect}_mu", f"{effect}_tau"] + [f"{effect}_tau_{p}" for p in parents]
        names += ["elasticity"] if cols.get("price") else []
        names += ["promo_lift"] if cols.get("promotion") else []
    names += [a.name for a in family.aux if not _noise_sigma(family, a)]  # alpha, sigma, shape, psi, nu
    if cols["covariates"]:
        names.append("beta")
    if spec["hierarchy"]["predictors"]:
        names.append("gamma")
    return names
