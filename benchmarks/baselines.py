"""The baselines: each model as people write it by hand in PyMC, sampled with ``pm.sample()`` defaults.

Each takes the level's data exactly as hbm prepares it (:class:`hbm.models.LevelData`) and the priors hbm
resolved for it, so that ours and the baseline differ only in how the model is written and sampled.
Variables carry the same names as hbm's, so that ESS and R-hat are taken over the same parameters.
"""

from __future__ import annotations

import numpy as np


def _rv(name: str, prior: dict, **kw):
    """A prior as a plain PyMC distribution (the subset of hbm's priors the bundled analyses use)."""
    import pymc as pm

    d = prior["dist"]
    if d == "normal":
        return pm.Normal(name, mu=prior["mu"], sigma=np.asarray(prior["sigma"]), **kw)
    if d == "halfnormal":
        return pm.HalfNormal(name, sigma=prior["sigma"], **kw)
    if d == "halfcauchy":
        return pm.HalfCauchy(name, beta=prior["beta"], **kw)
    raise ValueError(f"baseline prior {d!r} not written by hand")


def grouped(data, priors: dict, spec: dict):
    """The grouped example as the foundation issue writes it: centered group means, group sds."""
    import pymc as pm

    with pm.Model(coords=data.coords) as model:
        mu = pm.Normal("mu", 0.0, 10.0)
        tau = pm.HalfNormal("tau", 10.0)
        theta = pm.Normal("theta", mu, tau, dims=data.level)
        sigma = pm.HalfNormal("sigma", 10.0, dims=data.level)
        pm.Normal("y", theta[data.group_idx], sigma[data.group_idx], observed=data.y)
    return model


def retail_product(data, priors: dict, spec: dict):
    """The product level's negative binomial model written directly: every layer centered, no zero-sum."""
    import pymc as pm

    assert len(data.layers) == 2, "product -> category"
    up = data.layers[0].up
    parent = data.layers[1].column
    g = data.group_idx
    with pm.Model(coords=data.coords | {"fourier": list(range(data.F.shape[1]))}) as model:
        def pooled(name, loc_prior, tau_prior, extra=()):
            # hbm's names: mu, tau, tau_<parent> for the intercepts; <name>_mu, <name>_tau(_<parent>) otherwise
            mu_name, tau_name = ("mu", "tau") if name == "theta" else (f"{name}_mu", f"{name}_tau")
            loc = _rv(mu_name, loc_prior, dims=extra[0] if extra else None)
            tau_p = _rv(f"{tau_name}_{parent}", tau_prior)
            top = pm.Normal(f"{name}_{parent}", loc, tau_p, dims=(parent, *extra))
            tau = _rv(tau_name, tau_prior)
            return pm.Normal(name, top[up], tau, dims=(data.level, *extra))

        theta = pooled("theta", priors["mu"], priors["tau"])
        trend = pooled("trend", priors["trend"], priors["trend_tau"])
        season = pooled("season", priors["season"], priors["season_tau"], extra=("fourier",))
        elasticity = _rv("elasticity", priors["elasticity"])
        lift = _rv("promo_lift", priors["promotion"])
        phi = _rv("alpha_inv_sqrt", priors["dispersion"])
        alpha = pm.Deterministic("alpha", 1.0 / phi**2)
        eta = (theta[g] + trend[g] * data.u + (season[g] * data.F).sum(axis=-1)
               + elasticity * data.log_price + lift * data.promo)
        pm.NegativeBinomial("y", mu=pm.math.exp(eta), alpha=alpha, observed=data.y)
    return model


def radon(data, priors: dict, spec: dict):
    """Radon: the same model as ours (hbm's, non-centered county intercepts); only the sampling differs."""
    from hbm.models import build_model

    return build_model(data, spec, priors)


BASELINES = {"grouped": grouped, "retail_product": retail_product, "radon": radon}
