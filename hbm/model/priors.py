"""Priors as objects that round-trip to and from the config.

A prior in a config (``model.priors.<name>``) is a mapping: ``dist`` (normal, studentt, halfnormal,
halfcauchy, halfstudentt, exponential, invgamma, gamma, beta), the distribution's parameters, and for sd
priors ``param: sd | variance`` (``variance``: the prior is on the square, e.g. an inverse-gamma on a
variance). ``Prior.from_dict(d).to_dict() == d`` and ``Prior.create(name, dims)`` makes the variable in
the current ``pm.Model``. ``source`` (config | default) says where a resolved prior came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PARAMETERS = {
    "normal": ("mu", "sigma"),
    "studentt": ("nu", "mu", "sigma"),
    "halfnormal": ("sigma",),
    "halfcauchy": ("beta",),
    "halfstudentt": ("nu", "sigma"),
    "exponential": ("lam",),
    "invgamma": ("alpha", "beta"),
    "gamma": ("alpha", "beta"),
    "beta": ("alpha", "beta"),
}


def sig(x: float) -> float:
    """``x`` to 4 significant digits (default priors are written to JSON and the report)."""
    return float(f"{x:.4g}")


@dataclass
class Prior:
    dist: str
    params: dict = field(default_factory=dict)
    param: str = "sd"  # sd | variance (scale priors only)
    source: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Prior":
        if d["dist"] not in PARAMETERS:
            raise ValueError(f"prior distribution {d['dist']!r} is not one of {sorted(PARAMETERS)}")
        missing = [p for p in PARAMETERS[d["dist"]] if p not in d]
        if missing:
            raise ValueError(f"prior {d['dist']!r} needs {missing}")
        return cls(d["dist"], {p: d[p] for p in PARAMETERS[d["dist"]]}, d.get("param", "sd"), d.get("source"))

    def to_dict(self) -> dict:
        out = {"dist": self.dist, **self.params}
        if self.param != "sd" or self.dist.startswith("half") or self.dist in ("exponential", "invgamma"):
            out["param"] = self.param
        if self.source:
            out["source"] = self.source
        return out

    def create(self, name: str, dims=None):
        """The random variable ``name`` in the current model (``param: variance``: ``<name>_sq`` and
        ``name = sqrt(<name>_sq)``)."""
        import pymc as pm

        if self.param == "variance":
            var = Prior(self.dist, self.params).create(f"{name}_sq", dims)
            return pm.Deterministic(name, pm.math.sqrt(var), dims=dims)
        p = {k: (np.asarray(v, dtype="float64") if isinstance(v, list) else v) for k, v in self.params.items()}
        table = {
            "normal": lambda: pm.Normal(name, mu=p["mu"], sigma=p["sigma"], dims=dims),
            "studentt": lambda: pm.StudentT(name, nu=p["nu"], mu=p["mu"], sigma=p["sigma"], dims=dims),
            "halfnormal": lambda: pm.HalfNormal(name, sigma=p["sigma"], dims=dims),
            "halfcauchy": lambda: pm.HalfCauchy(name, beta=p["beta"], dims=dims),
            "halfstudentt": lambda: pm.HalfStudentT(name, nu=p["nu"], sigma=p["sigma"], dims=dims),
            "exponential": lambda: pm.Exponential(name, lam=p["lam"], dims=dims),
            "invgamma": lambda: pm.InverseGamma(name, alpha=p["alpha"], beta=p["beta"], dims=dims),
            "gamma": lambda: pm.Gamma(name, alpha=p["alpha"], beta=p["beta"], dims=dims),
            "beta": lambda: pm.Beta(name, alpha=p["alpha"], beta=p["beta"], dims=dims),
        }
        return table[self.dist]()


def rv(name: str, prior: dict, dims=None):
    """The random variable ``name`` for a prior given as a config mapping."""
    return Prior.from_dict(prior).create(name, dims)


def resolve(given: dict, defaults: dict) -> dict:
    """The priors in force: the config's where given, else the defaults; each says its ``source``."""
    out = {}
    for name, default in defaults.items():
        prior = dict(given[name]) if name in given else dict(default)
        prior["source"] = "config" if name in given else "default"
        out[name] = prior
    return out


def log_mean_centre(y: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    """The median over groups of log(group mean), each mean at least 0.1: the centre of a log-link
    intercept's default prior (robust: a few large units do not pull it, as the log of the overall mean would)."""
    y = np.asarray(y, dtype="float64")
    n = np.bincount(groups, minlength=n_groups) if y.size else np.zeros(n_groups)
    sums = np.bincount(groups, weights=y, minlength=n_groups) if y.size else np.zeros(n_groups)
    means = sums[n > 0] / n[n > 0]
    return float(np.median(np.log(np.maximum(means, 0.1)))) if means.size else 0.0


def log_link_effects(centre: float) -> dict:
    """Default priors of the log-link effects, shared by the per-level and the bottom models: mu ~
    Normal(centre, 1), tau ~ HalfNormal(1); trend ~ Normal(0, 0.5), trend_tau ~ HalfNormal(0.25) (per
    ``trend.per`` periods); season ~ Normal(0, 0.5), season_tau ~ HalfNormal(0.25); elasticity ~ Normal(-1,
    1); promotion ~ Normal(0, 1)."""
    return {
        "mu": {"dist": "normal", "mu": sig(centre), "sigma": 1.0},
        "tau": {"dist": "halfnormal", "sigma": 1.0, "param": "sd"},
        "trend": {"dist": "normal", "mu": 0.0, "sigma": 0.5},
        "trend_tau": {"dist": "halfnormal", "sigma": 0.25, "param": "sd"},
        "season": {"dist": "normal", "mu": 0.0, "sigma": 0.5},
        "season_tau": {"dist": "halfnormal", "sigma": 0.25, "param": "sd"},
        "elasticity": {"dist": "normal", "mu": -1.0, "sigma": 1.0},
        "promotion": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
    }
