"""The likelihood families as data: one registry entry per family.

An entry says everything the rest of hbm needs to know about a family, so that adding one is one entry
here plus its tests:

- ``link``: ``identity`` (the linear predictor is the mean) or ``log`` (it is the log of the mean; for
  ``lognormal`` the log of the median, for ``hurdle_gamma`` the log of the mean of the non-zero values, for
  ``hurdle_negative_binomial`` the log of the mean of the negative binomial before its truncation at zero);
  time effects, price, promotion and forecasts need the log link;
- ``discrete``: integer outcomes (simulated counts that overflow are negative; LOO-PIT is randomized where
  outcomes tie, which also covers the point mass at zero of ``hurdle_gamma``);
- ``plot_scale``: ``log1p`` for the log-link families (predictive checks plot ECDFs of log(1 + y), whose
  tails span orders of magnitude), else ``linear``;
- ``support``: what the target must be, checked at ingest (:meth:`Family.invalid`, whose message names
  the requirement);
- ``aux``: the auxiliary parameters, each with the variable that is sampled, the config key of its prior
  (``model.priors.<key>``), its default prior and the parameter the likelihood gets;
- ``aggregate``: how a level sums its rows per (unit, period) (``sum``) or keeps them (``None``);
- :meth:`Family.likelihood` builds the observed variable in the current ``pm.Model`` (its pointwise
  log-likelihood is PyMC's, stored as ``log_likelihood/y``);
- :meth:`Family.working`: the working response and weight of one IRLS step (the Fisher information of
  the linear predictor per observation), for the automatic parametrization's quick per-unit fits.

Families: normal, studentt (identity link); lognormal, gamma (positive continuous demand); poisson,
negative_binomial (counts); hurdle_negative_binomial (intermittent counts: a zero with probability
1 - psi, else a zero-truncated negative binomial) and hurdle_gamma (continuous demand with zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hbm.model.priors import rv


@dataclass(frozen=True)
class Aux:
    """An auxiliary parameter: ``variable`` is sampled with the prior ``model.priors.<prior>``; the
    likelihood gets ``transform(variable)`` as its ``argument``, also stored as ``name`` when it differs."""

    name: str
    prior: str
    default: dict
    variable: str
    argument: str
    transform: str = "identity"  # identity | inv_square (1 / v^2)


SUPPORT_TEXT = {
    "real": "a finite number",
    "positive": "a finite number above 0",
    "nonnegative": "a finite number of at least 0",
    "count": "a whole number of at least 0",
}

DISPERSION = Aux("alpha", "dispersion", {"dist": "halfnormal", "sigma": 1.0, "param": "sd"},
                 "alpha_inv_sqrt", "alpha", "inv_square")


@dataclass(frozen=True)
class Family:
    name: str
    link: str
    discrete: bool
    support: str
    aux: tuple[Aux, ...] = ()
    aggregate: str | None = "sum"
    hurdle: bool = False
    description: str = ""

    @property
    def log_link(self) -> bool:
        return self.link == "log"

    @property
    def plot_scale(self) -> str:
        return "log1p" if self.log_link else "linear"

    @property
    def requirement(self) -> str:
        return SUPPORT_TEXT[self.support]

    def invalid(self, values: np.ndarray) -> np.ndarray:
        """True where a target value is outside the family's support (missing values are not checked here)."""
        v = np.asarray(values, dtype="float64")
        bad = ~np.isfinite(v)
        if self.support == "positive":
            bad |= ~(v > 0)
        elif self.support in ("nonnegative", "count"):
            bad |= ~(v >= 0)
        if self.support == "count":
            bad |= np.isfinite(v) & (v != np.round(v))
        return bad

    def raw_location(self, y: np.ndarray, group_idx: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
        """Each group's rows and its own estimate of its intercept, on the scale of theta, from its raw
        values alone (the shrinkage table): the mean (identity link); the log of the mean, floored at half
        an observation (log link; hurdle families: of the non-zero values, floored at 0.5 / rows); the mean
        of log y (lognormal, whose theta is the log median)."""
        y = np.asarray(y, dtype="float64")
        n = np.bincount(group_idx, minlength=groups)
        if self.name == "lognormal":
            return n, np.bincount(group_idx, weights=np.log(y), minlength=groups) / np.maximum(n, 1)
        keep = y > 0 if self.hurdle else np.ones(y.shape, dtype=bool)
        m = np.bincount(group_idx[keep], minlength=groups)
        mean = np.bincount(group_idx[keep], weights=y[keep], minlength=groups) / np.maximum(m, 1)
        if self.link == "identity":
            return n, mean
        return n, np.log(np.maximum(mean, 0.5 / np.maximum(n, 1)))

    def default_priors(self) -> dict:
        return {a.prior: dict(a.default) for a in self.aux}

    def mean(self, eta):
        return eta if self.link == "identity" else _exp(eta)

    def aux_variables(self, priors: dict, given: dict | None = None) -> dict:
        """The auxiliary parameters in the current model, by ``argument`` (``given`` ones as they are)."""
        import pymc as pm

        # plain Python numbers as float64: PyTensor types a float such as 2.5 that float32 holds exactly as
        # float32, and log(2.5) would then be computed in single precision
        args = {k: np.float64(v) if isinstance(v, (int, float)) else v for k, v in (given or {}).items()}
        for a in self.aux:
            if a.argument in args:
                continue
            v = rv(a.variable, priors[a.prior])
            if a.transform == "inv_square":
                v = pm.Deterministic(a.name, 1.0 / v**2)
            args[a.argument] = v
        return args

    @property
    def has_fast_loglik(self) -> bool:
        return self.name in ("poisson", "negative_binomial")

    def fast_loglik(self, name: str, eta, y: np.ndarray, priors: dict, per_unit: dict | None = None):
        """The total log-likelihood of ``y`` as one ``pm.Potential`` named ``name``, for sampling: the same
        value and gradient as the observed variable of :meth:`likelihood`, at a fraction of the cost per row
        (Poisson and negative binomial). Per row it needs one exp, one log and a few multiply-adds:

            log NB(y | mu, alpha) = lgamma(y + alpha) - lgamma(alpha) - lgamma(y + 1)
                                    + alpha log alpha + y eta - (alpha + y) log(alpha + exp(eta))

        and the sum over rows of ``lgamma(y + alpha)`` is a sum over the distinct values of y weighted by
        their frequency (a few hundred values in a million rows of retail counts); ``lgamma(y + 1)`` is a
        constant. Poisson: ``y eta - exp(eta) - lgamma(y + 1)``. Pointwise log-likelihoods, predictions and
        LOO use :meth:`likelihood`, whose free variables are the same.

        ``per_unit``: ``{"alpha": (alpha per unit, each row's unit)}`` for an alpha that varies by unit
        (``bottom.dispersion``): then ``lgamma(y + alpha) - lgamma(alpha)`` is summed over the distinct
        (unit, y) pairs with y > 0 (it is 0 at y = 0) weighted by their frequency, ``alpha log alpha`` over
        the units weighted by their rows, and only the last term is per row."""
        import pymc as pm
        import pytensor.tensor as pt
        from scipy.special import gammaln

        y = np.asarray(y, dtype="float64")
        const = -float(gammaln(y + 1).sum())
        linear = pt.dot(pt.as_tensor(y), eta)
        if self.name == "poisson":
            return pm.Potential(name, linear - pt.exp(eta).sum() + const)
        if per_unit:
            alpha, unit = per_unit["alpha"]
            unit = np.asarray(unit, dtype="int64")
            positive = y > 0
            pairs, counts = np.unique(np.stack([unit[positive], y[positive]]), axis=1, return_counts=True)
            at_pair = alpha[pt.as_tensor(pairs[0].astype("int32"))]
            present, rows = np.unique(unit, return_counts=True)
            at_unit = alpha[pt.as_tensor(present.astype("int32"))]
            at_row = alpha[pt.as_tensor(unit.astype("int32"))]
            total = (pt.dot(pt.as_tensor(counts.astype("float64")),
                            pt.gammaln(pt.as_tensor(pairs[1]) + at_pair) - pt.gammaln(at_pair))
                     + pt.dot(pt.as_tensor(rows.astype("float64")), at_unit * pt.log(at_unit))
                     + linear - pt.dot(pt.as_tensor(y) + at_row, pt.log(at_row + pt.exp(eta))) + const)
            return pm.Potential(name, total)
        alpha = self.aux_variables(priors)["alpha"]
        values, counts = np.unique(y, return_counts=True)
        total = (pt.dot(pt.as_tensor(counts.astype("float64")), pt.gammaln(pt.as_tensor(values) + alpha))
                 - y.size * (pt.gammaln(alpha) - alpha * pt.log(alpha))
                 + linear - pt.dot(pt.as_tensor(y) + alpha, pt.log(alpha + pt.exp(eta))) + const)
        return pm.Potential(name, total)

    def likelihood(self, name: str, eta, observed, priors: dict, dims=None, given: dict | None = None):
        """The observed variable ``name`` with linear predictor ``eta``; ``priors`` maps each aux's
        ``prior`` key to a prior; ``given``: aux values already built (by ``argument``), e.g. a psi per unit."""
        import pymc as pm

        args = self.aux_variables(priors, given)
        mu = self.mean(eta)
        kw = {"observed": observed, "dims": dims}
        match self.name:
            case "normal":
                return pm.Normal(name, mu=mu, sigma=args["sigma"], **kw)
            case "studentt":
                return pm.StudentT(name, nu=args["nu"], mu=mu, sigma=args["sigma"], **kw)
            case "lognormal":
                return pm.LogNormal(name, mu=eta, sigma=args["sigma"], **kw)
            case "gamma":
                return pm.Gamma(name, alpha=args["shape"], beta=args["shape"] / mu, **kw)
            case "poisson":
                return pm.Poisson(name, mu=mu, **kw)
            case "negative_binomial":
                return pm.NegativeBinomial(name, mu=mu, alpha=args["alpha"], **kw)
            case "hurdle_negative_binomial":
                return pm.HurdleNegativeBinomial(name, psi=args["psi"], mu=mu, alpha=args["alpha"], **kw)
            case "hurdle_gamma":
                return pm.HurdleGamma(name, psi=args["psi"], alpha=args["shape"], beta=args["shape"] / mu, **kw)
        raise ValueError(f"family {self.name!r} has no likelihood")

    def working(self, y: np.ndarray, eta: np.ndarray, aux: dict) -> tuple[np.ndarray, np.ndarray]:
        """Working response and weight of an IRLS step at ``eta`` (the weight is the Fisher information
        on eta per observation); ``aux``: moment estimates from :meth:`moments`."""
        y = np.asarray(y, dtype="float64")
        if self.link == "identity":
            return y, np.full_like(y, 1.0 / aux.get("sigma2", 1.0))
        if self.name == "lognormal":
            return np.log(np.maximum(y, 1e-12)), np.full_like(y, 1.0 / aux.get("sigma2", 1.0))
        mu = np.exp(np.clip(eta, -30, 30))
        z = eta + (y - mu) / np.maximum(mu, 1e-12)
        if self.support in ("positive", "nonnegative"):  # gamma: information = shape per (non-zero) row
            w = np.full_like(y, aux.get("shape", 1.0))
        else:
            w = mu / (1.0 + mu * aux.get("inv_alpha", 0.0))
        if self.hurdle:  # the zeros inform the hurdle, not the mean of the non-zero part
            w = np.where(y > 0, w, 0.0)
        return z, w

    def moments(self, y: np.ndarray, eta: np.ndarray) -> dict:
        """Moment estimates of the auxiliary parameters at ``eta`` (for :meth:`working`)."""
        y = np.asarray(y, dtype="float64")
        if self.link == "identity":
            return {"sigma2": float(max(np.var(y - eta), 1e-12))}
        if self.name == "lognormal":
            return {"sigma2": float(max(np.var(np.log(np.maximum(y, 1e-12)) - eta), 1e-6))}
        mu = np.exp(np.clip(eta, -30, 30))
        pos = y > 0 if self.hurdle else np.ones(y.shape, dtype=bool)
        if not pos.any():
            return {}
        if self.support in ("positive", "nonnegative"):
            cv2 = np.mean((y[pos] - mu[pos]) ** 2 / np.maximum(mu[pos], 1e-12) ** 2)
            return {"shape": float(1.0 / np.clip(cv2, 1e-4, 1e4))}
        if any(a.name == "alpha" for a in self.aux):
            num = np.sum((y[pos] - mu[pos]) ** 2 - mu[pos])
            return {"inv_alpha": float(np.clip(num / max(np.sum(mu[pos] ** 2), 1e-12), 1e-4, 1e3))}
        return {}


def _exp(eta):
    import pytensor.tensor as pt

    return pt.exp(eta)


SIGMA_LOG = Aux("sigma", "sigma", {"dist": "halfnormal", "sigma": 1.0, "param": "sd"}, "sigma", "sigma")
SHAPE = Aux("shape", "dispersion", {"dist": "halfnormal", "sigma": 1.0, "param": "sd"}, "cv", "shape", "inv_square")
PSI = Aux("psi", "hurdle", {"dist": "beta", "alpha": 1.0, "beta": 1.0}, "psi", "psi")

FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("normal", "identity", False, "real",
           (Aux("sigma", "sigma", {"dist": "halfnormal", "sigma": 1.0, "param": "sd"}, "sigma", "sigma"),),
           aggregate=None, description="y ~ Normal(eta, sigma)"),
    Family("studentt", "identity", False, "real",
           (Aux("sigma", "sigma", {"dist": "halfnormal", "sigma": 1.0, "param": "sd"}, "sigma", "sigma"),
            Aux("nu", "nu", {"dist": "gamma", "alpha": 2.0, "beta": 0.1}, "nu", "nu")),
           aggregate=None, description="y ~ StudentT(nu, eta, sigma): outliers"),
    Family("lognormal", "log", False, "positive", (SIGMA_LOG,),
           description="log y ~ Normal(eta, sigma): positive continuous demand, eta the log median"),
    Family("gamma", "log", False, "positive", (SHAPE,),
           description="y ~ Gamma(mean exp(eta), coefficient of variation cv): positive continuous demand"),
    Family("poisson", "log", True, "count", description="y ~ Poisson(exp(eta))"),
    Family("negative_binomial", "log", True, "count", (DISPERSION,),
           description="y ~ NegBinomial(exp(eta), alpha): variance mu + mu^2 / alpha"),
    Family("hurdle_negative_binomial", "log", True, "count", (DISPERSION, PSI), hurdle=True,
           description="y = 0 with probability 1 - psi, else zero-truncated NegBinomial(exp(eta), alpha)"),
    Family("hurdle_gamma", "log", False, "nonnegative", (SHAPE, PSI), hurdle=True,
           description="y = 0 with probability 1 - psi, else Gamma(mean exp(eta), cv)"),
)}


def get(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family {name!r} is not one of {sorted(FAMILIES)}") from None


def log_link_families() -> tuple[str, ...]:
    return tuple(n for n, f in FAMILIES.items() if f.log_link)
