"""The one place where PyMC graphs are built.

A level's model is described by plain data (the ``spec`` from :func:`hbm.config.level_spec`) and the
validated observations; :func:`level_data` turns those into arrays and coords, :func:`resolve_priors`
fills in data-scaled default priors, and :func:`build_model` makes the ``pm.Model``.

Normal family, for the groups ``j`` of the fitted level with parent layers ``p1`` (nearest) ... ``pk``:

    y_i      ~ Normal(theta[g_i] + X_i . beta, s_i)
    theta_j  ~ Normal(theta_p1[parent(j)] + Z_j . gamma, tau)        (each layer likewise, up to mu)
    s_i      = sigma[g_i] (noise group) | sigma (shared) | measurement_sd_i (known)

Non-centered (the default): ``theta = loc + tau * theta_offset``, ``theta_offset ~ Normal(0, 1)``.
Variable names: ``mu``, ``tau``, ``theta`` (dims = the level's name), ``theta_offset``; a parent layer
``c`` has ``tau_c``, ``theta_c``, ``theta_c_offset`` (dims = ``c``); ``sigma``; ``beta`` (dims
``covariate``); ``gamma`` (dims ``predictor``); the likelihood is ``y`` (dims ``obs_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OBS_DIM = "obs_id"
COVARIATE_DIM = "covariate"
PREDICTOR_DIM = "predictor"
LIKELIHOOD = "y"


@dataclass
class Layer:
    """One layer of the hierarchy: its column, group labels and, for each group, its parent's index."""

    column: str
    labels: list[str]
    up: np.ndarray | None = None  # index into the next layer up; None for the top layer (below mu)


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

    @property
    def groups(self) -> list[str]:
        return self.layers[0].labels


def level_data(df: pd.DataFrame, spec: dict) -> LevelData:
    """Arrays and coords for one level from the validated observations."""
    cols, hier, level = spec["columns"], spec["hierarchy"], spec["level"]
    chain = [hier["column"], *hier["parents"]]
    codes, labels = [], []
    for c in chain:
        cat = pd.Categorical(df[c].astype(str))
        codes.append(cat.codes.astype("int64"))
        labels.append([str(x) for x in cat.categories])
    layers = []
    for i, c in enumerate(chain):
        up = None
        if i + 1 < len(chain):
            up = np.zeros(len(labels[i]), dtype="int64")
            up[codes[i]] = codes[i + 1]
        layers.append(Layer(c, labels[i], up))
    first = pd.Series(np.arange(len(df))).groupby(codes[0]).first().to_numpy()
    Z = df[hier["predictors"]].to_numpy("float64")[first] if hier["predictors"] else np.zeros((len(labels[0]), 0))
    X = df[cols["covariates"]].to_numpy("float64") if cols["covariates"] else np.zeros((len(df), 0))
    sd = df[cols["measurement_sd"]].to_numpy("float64") if cols.get("measurement_sd") else None
    coords = {level: labels[0], OBS_DIM: np.arange(len(df))}
    for layer in layers[1:]:
        coords[layer.column] = layer.labels
    if cols["covariates"]:
        coords[COVARIATE_DIM] = list(cols["covariates"])
    if hier["predictors"]:
        coords[PREDICTOR_DIM] = list(hier["predictors"])
    return LevelData(
        level=level, target=cols["target"], y=df[cols["target"]].to_numpy("float64"), group_idx=codes[0],
        layers=layers, X=X, covariates=list(cols["covariates"]), Z=Z, predictors=list(hier["predictors"]),
        sd=sd, coords=coords,
    )


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def resolve_priors(spec: dict, data: LevelData) -> dict:
    """The priors in force: the config's, and data-scaled defaults for any it leaves out.

    Defaults (weakly informative, on the scale of the data, as in rstanarm's autoscaling):
    mu ~ Normal(mean(y), 2.5 sd(y)); tau, sigma ~ HalfNormal(sd(y));
    beta_k ~ Normal(0, 2.5 sd(y) / sd(x_k)); gamma_m ~ Normal(0, 2.5 sd(y) / sd(z_m)).
    """
    given = spec["model"].get("priors", {})
    sy = float(np.std(data.y)) if data.y.size > 1 else 0.0
    sy = sy if np.isfinite(sy) and sy > 0 else 1.0

    def slopes(M):
        s = np.std(M, axis=0) if M.size else np.zeros(0)
        s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
        return [_sig(2.5 * sy / v) for v in s]

    defaults = {
        "mu": {"dist": "normal", "mu": _sig(float(np.mean(data.y))), "sigma": _sig(2.5 * sy)},
        "tau": {"dist": "halfnormal", "sigma": _sig(sy), "param": "sd"},
        "sigma": {"dist": "halfnormal", "sigma": _sig(sy), "param": "sd"},
        "beta": {"dist": "normal", "mu": 0.0, "sigma": slopes(data.X)},
        "gamma": {"dist": "normal", "mu": 0.0, "sigma": slopes(data.Z)},
    }
    out = {}
    for name, default in defaults.items():
        prior = dict(given[name]) if name in given else default
        prior["source"] = "config" if name in given else "default"
        out[name] = prior
    return out


def _rv(name: str, prior: dict, dims=None):
    """A random variable for ``prior``; a prior with ``param: variance`` makes ``<name>_sq`` and ``name = sqrt``."""
    import pymc as pm

    p = prior
    if p.get("param") == "variance":
        var = _rv(f"{name}_sq", {**p, "param": "sd"}, dims)
        return pm.Deterministic(name, pm.math.sqrt(var), dims=dims)
    table = {
        "normal": lambda: pm.Normal(name, mu=p["mu"], sigma=p["sigma"], dims=dims),
        "studentt": lambda: pm.StudentT(name, nu=p["nu"], mu=p["mu"], sigma=p["sigma"], dims=dims),
        "halfnormal": lambda: pm.HalfNormal(name, sigma=p["sigma"], dims=dims),
        "halfcauchy": lambda: pm.HalfCauchy(name, beta=p["beta"], dims=dims),
        "halfstudentt": lambda: pm.HalfStudentT(name, nu=p["nu"], sigma=p["sigma"], dims=dims),
        "exponential": lambda: pm.Exponential(name, lam=p["lam"], dims=dims),
        "invgamma": lambda: pm.InverseGamma(name, alpha=p["alpha"], beta=p["beta"], dims=dims),
    }
    return table[p["dist"]]()


def _pooled(name: str, loc, tau, dims: str, centered: bool):
    """Group effects partially pooled around ``loc`` with sd ``tau``."""
    import pymc as pm

    if centered:
        return pm.Normal(name, mu=loc, sigma=tau, dims=dims)
    offset = pm.Normal(f"{name}_offset", mu=0.0, sigma=1.0, dims=dims)
    return pm.Deterministic(name, loc + tau * offset, dims=dims)


def build_model(data: LevelData, spec: dict, priors: dict | None = None):
    """The ``pm.Model`` of one level (see the module docstring)."""
    import pymc as pm

    priors = priors or resolve_priors(spec, data)
    model_cfg = spec["model"]
    centered = model_cfg["parametrization"] == "centered"
    level = data.level
    with pm.Model(coords=data.coords) as model:
        group_idx = pm.Data("group_idx", data.group_idx, dims=OBS_DIM)
        loc = _rv("mu", priors["mu"])
        # Top layer first: each layer's groups are pooled around their parent's effect.
        for i in range(len(data.layers) - 1, -1, -1):
            layer = data.layers[i]
            suffix = "" if i == 0 else f"_{layer.column}"
            dims = level if i == 0 else layer.column
            if i + 1 < len(data.layers):
                loc = loc[pm.Data(f"{layer.column}_parent_idx", layer.up, dims=dims)]
            if i == 0 and data.predictors:
                Z = pm.Data("Z", data.Z, dims=(level, PREDICTOR_DIM))
                gamma = _rv("gamma", _vector_prior(priors["gamma"]), dims=PREDICTOR_DIM)
                loc = loc + pm.math.dot(Z, gamma)
            tau = _rv(f"tau{suffix}", priors["tau"])
            loc = _pooled(f"theta{suffix}", loc, tau, dims, centered)
        mean = loc[group_idx]
        if data.covariates:
            X = pm.Data("X", data.X, dims=(OBS_DIM, COVARIATE_DIM))
            beta = _rv("beta", _vector_prior(priors["beta"]), dims=COVARIATE_DIM)
            mean = mean + pm.math.dot(X, beta)
        noise = model_cfg["noise"]
        if noise == "group":
            s = _rv("sigma", priors["sigma"], dims=level)[group_idx]
        elif noise == "shared":
            s = _rv("sigma", priors["sigma"])
        else:
            s = pm.Data("measurement_sd", data.sd, dims=OBS_DIM)
        pm.Normal(LIKELIHOOD, mu=mean, sigma=s, observed=data.y, dims=OBS_DIM)
    return model


def _vector_prior(prior: dict) -> dict:
    return {k: (np.asarray(v, dtype="float64") if isinstance(v, list) else v) for k, v in prior.items()}


def group_parameters(spec: dict) -> list[str]:
    """Variables with one value per group of the fitted level (shown per group, not as a summary row)."""
    names = ["theta"]
    if spec["model"]["noise"] == "group":
        names.append("sigma")
    return names


def hyperparameters(spec: dict) -> list[str]:
    """Population-level variables: what a reader of the report looks at first."""
    names = ["mu", "tau"] + [f"tau_{p}" for p in spec["hierarchy"]["parents"]]
    if spec["model"]["noise"] == "shared":
        names.append("sigma")
    if spec["columns"]["covariates"]:
        names.append("beta")
    if spec["hierarchy"]["predictors"]:
        names.append("gamma")
    return names
