"""Automatic parametrization: centered or non-centered, per pooled effect, layer and group.

A partially pooled effect ``theta_j ~ Normal(loc, tau)`` can be written centered (``theta_j`` sampled
directly) or non-centered (``theta_j = loc + tau * z_j``, ``z_j ~ Normal(0, 1)``). Which one samples
well depends on how strongly the data inform each group compared with the spread between groups
(Betancourt & Girolami 2015; Betancourt's hierarchical modelling case study; Gorinova et al. 2020):
when the likelihood pins ``theta_j`` down more tightly than the prior ``Normal(loc, tau)`` does, the
non-centered form has a funnel in ``(tau, z_j)`` and the centered form samples well; when the data say
little, it is the other way round. The rule here, per group ``j``:

    centered  <=>  I_j * tau_low^2 > 4

with ``I_j`` the Fisher information of the data on the group's effect and ``tau`` the between-group sd,
both estimated cheaply from the data before sampling, and ``tau_low`` tau's lower 90 % confidence bound by
the Q-profile (:func:`tau_low`): the funnel of the centered form is at small tau, and where the groups are
few or their own estimates noisy, the posterior of tau reaches there (3 exactly known groups: two thirds of
tau; 300: nearly tau; groups whose spread their noise alone could make: 0, and every group non-centered).
The margin of 4 asks that the data dominate a centered group's prior even at half of ``tau_low``. The pieces:

- identity-link families (normal, studentt), intercept: ``I_j = n_j / sigma_j^2`` (``sigma_j`` the group's
  residual sd, the pooled one for small groups; known measurement sds: ``sum 1 / sd_i^2``);
- log-link families: each group's own regression of the family (negative binomial, Poisson, gamma, ...)
  on every term of the model at once (intercept, trend, Fourier terms, log price, promotion, covariates;
  a few IRLS steps with a small ridge, the auxiliary parameters by moments), whose Fisher information
  ``sum_t w_jt x_t x_t'`` with the family's working weight ``w`` (:meth:`hbm.model.families.Family.working`;
  negative binomial ``w = mu / (1 + mu / alpha)``, gamma ``w = shape``) gives each coefficient's conditional
  precision ``I_j = 1 / [(sum w x x')^-1]_kk`` (for a Poisson intercept alone about the group's total
  count; the other terms are taken into account, so a season that trends cannot pass for spread between
  groups);
- ``tau^2``: method of moments (DerSimonian & Laird 1986): the variance of the groups' own estimates
  (for the normal intercept, after regressing out the group-level predictors) minus their mean sampling
  variance ``1 / I_j``, floored at a tenth of that sampling variance (a spread the data cannot tell from
  zero counts as small, which favours non-centering: the safe side when tau is near 0);
- a parent layer: each parent ``p`` is informed through its children, ``I_p = sum_c 1 / (tau_high^2 +
  1 / I_c)`` with ``tau_high`` the children's spread at its upper 90 % bound (:func:`tau_high`: a parent's
  value is known from a few children no better than their uncertain spread allows), and its own ``tau``
  and ``tau_low`` come from the parents' precision-weighted means the same way, around their own parents.

A vector mixes centered and non-centered elements where its groups differ (the rule is per group); the
zero-sum top layer of a log-link model takes the majority choice. Explicit config values override: one word
(``centered``/``noncentered``) or a word per effect applies to the fitted level's groups, as before,
with parent layers non-centered. This module uses only NumPy: it describes, :mod:`hbm.models` builds.
"""

from __future__ import annotations

import numpy as np

EFFECTS = ("intercept", "trend", "season")
MODES = ("auto", "centered", "noncentered")


def mode_of(model_cfg: dict, effect: str) -> str:
    """``auto``, ``centered`` or ``noncentered`` for ``effect`` (one word for all, or a mapping)."""
    p = model_cfg.get("parametrization", "auto")
    word = p if isinstance(p, str) else p.get(effect, "auto")
    if word not in MODES:
        raise ValueError(f"parametrization {word!r} is not one of {list(MODES)}")
    return word


def _moment_tau2(estimates: np.ndarray, info: np.ndarray, design: np.ndarray | None = None) -> float:
    """Between-group variance of ``estimates`` beyond their sampling variance ``1 / info``.

    ``design``: group-level predictors to regress out first (weighted least squares)."""
    est = np.asarray(estimates, dtype="float64")
    info = np.asarray(info, dtype="float64")
    ok = np.isfinite(est) & np.isfinite(info) & (info > 0)
    est, info = est[ok], info[ok]
    if est.size < 2:
        return 0.0
    X = _design(est, design, ok)
    w = info / info.sum()
    coef, *_ = np.linalg.lstsq(X * np.sqrt(w)[:, None], est * np.sqrt(w), rcond=None)
    resid = est - X @ coef
    dof = max(est.size - X.shape[1], 1)
    sampling = 1.0 / info
    return float(max(np.sum(resid**2) / dof - np.mean(sampling), 0.1 * np.mean(sampling)))


# Centered where I_j tau_low^2 > 4, i.e. I_j (tau_low / 2)^2 > 1: a centered group's conditional posterior sd
# given tau, 1 / sqrt(I_j + 1 / tau^2), then changes by less than a factor sqrt(2) over every tau down to half
# of tau's lower bound, where the posterior of tau still reaches (a mild funnel at worst). A wrong centering
# diverges, a wrong non-centering only samples less efficiently: the margin leans to non-centering. With a
# margin of 1 radon's 7 (later 2) best-informed counties were centered and diverged on 3 seeds of 3.
CENTER_ABOVE = 4.0
# the "rule" that every parametrization.json (hbm.fit, hbm.bottom) states
RULE = f"centered where I_j * tau_low^2 > {CENTER_ABOVE:g} (hbm/parametrization.py)"
LOW_QUANTILE = 0.1  # the rule uses tau's lower 90 % confidence bound: the funnel bites where tau is small


def _design(est: np.ndarray, design: np.ndarray | None, ok: np.ndarray) -> np.ndarray:
    """The group-level design's rows ``ok`` (those of ``est``) with an intercept column; the intercept alone
    where the design has as many columns as there are groups."""
    X = np.ones((est.size, 1))
    if design is not None and np.size(design):
        X = np.column_stack([X, np.asarray(design, dtype="float64")[ok]])
    return X[:, :1] if X.shape[1] >= est.size else X


def tau_low(estimates: np.ndarray, info: np.ndarray, design: np.ndarray | None = None) -> float:
    """tau's lower 90 % confidence bound by the Q-profile (Viechtbauer 2007): the ``t`` at which the groups'
    estimates are just spread out enough to come from groups ``t`` apart,

        Q(t^2) = sum_j (est_j - m_j)^2 / (t^2 + 1 / I_j)  =  chi2_{K-p}(0.9)

    (``m_j`` the weighted least-squares fit on the group-level design, ``p`` its columns; 0 where even
    ``Q(0)`` is below that). With exact estimates this is ``tau_hat^2 (K-p) / chi2_{K-p}(0.9)``: 3 groups give
    two thirds of tau's estimate, 300 nearly all of it. With noisy estimates (groups with a few values each)
    it also counts their sampling variance: a spread the groups' noise could make on its own gives 0, and
    every group non-centered. Few or noisy groups leave tau uncertain, and its posterior reaches down to
    where the centered form is a funnel."""
    return _q_profile(estimates, info, design, 1 - LOW_QUANTILE)


def tau_high(estimates: np.ndarray, info: np.ndarray, design: np.ndarray | None = None) -> float:
    """tau's upper 90 % confidence bound by the Q-profile: ``Q(t^2) = chi2_{K-p}(0.1)`` (see :func:`tau_low`).
    A parent is informed through its children only as well as their spread allows, and the spread of a few
    children is uncertain: :func:`_parents` takes the parent's information at this bound."""
    return _q_profile(estimates, info, design, LOW_QUANTILE)


def _q_profile(estimates: np.ndarray, info: np.ndarray, design: np.ndarray | None, p: float) -> float:
    """The ``t`` with ``Q(t^2) = chi2_{K-p}(p)`` (0 where ``Q(0)`` is already below)."""
    from scipy import stats

    est = np.asarray(estimates, dtype="float64")
    info = np.asarray(info, dtype="float64")
    ok = np.isfinite(est) & np.isfinite(info) & (info > 0)
    est, var = est[ok], 1.0 / info[ok]
    X = _design(est, design, ok)
    dof = est.size - X.shape[1]
    if dof < 1:
        return 0.0
    bound = stats.chi2.ppf(p, dof)

    def q(t2: float) -> float:
        w = 1.0 / (t2 + var)
        coef, *_ = np.linalg.lstsq(X * np.sqrt(w)[:, None], est * np.sqrt(w), rcond=None)
        return float(np.sum(w * (est - X @ coef) ** 2))

    if q(0.0) <= bound:
        return 0.0
    lo, hi = 0.0, max(float(np.var(est)), 1e-12)
    while q(hi) > bound:
        lo, hi = hi, hi * 4
    for _ in range(60):  # bisection: Q decreases in t^2
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if q(mid) > bound else (lo, mid)
    return float(np.sqrt(0.5 * (lo + hi)))


def _layer(info: np.ndarray, tau2: float, low: float) -> dict:
    info = np.asarray(info, dtype="float64")
    ratio = info * low**2
    return {"tau": float(np.sqrt(tau2)), "tau_low": low, "information": info.tolist(), "ratio": ratio.tolist(),
            "centered": (ratio > CENTER_ABOVE).tolist()}


def _within_parents(data, i: int, design: np.ndarray | None = None) -> np.ndarray | None:
    """Layer ``i``'s group-level design with its parents' indicators added: the model's sd of a layer is the
    spread of its units around their parent's value, not around the overall mean."""
    if i + 1 >= len(data.layers):
        return design
    up = data.layers[i].up
    onehot = np.eye(len(data.layers[i + 1].labels))[up][:, 1:]
    if design is None or not np.size(design):
        return onehot
    return np.column_stack([np.asarray(design, dtype="float64").reshape(len(up), -1), onehot])


def _parents(data, est: np.ndarray, info: np.ndarray, high: float) -> list[dict]:
    """Parent layers, nearest first: information through the children at their spread's upper bound
    ``high`` (:func:`tau_high`; a parent's value is known from its children no better than their spread
    allows, and few children leave it uncertain), tau by moments, tau_low by the Q-profile."""
    out = []
    for i in range(1, len(data.layers)):
        up = data.layers[i - 1].up
        n = len(data.layers[i].labels)
        prec = 1.0 / (high**2 + 1.0 / np.maximum(info, 1e-300))
        p_info = np.bincount(up, weights=prec, minlength=n)
        p_est = np.bincount(up, weights=prec * est, minlength=n) / np.maximum(p_info, 1e-300)
        design = _within_parents(data, i)
        out.append(_layer(p_info, _moment_tau2(p_est, p_info, design), tau_low(p_est, p_info, design)))
        est, info, high = p_est, p_info, tau_high(p_est, p_info, design)
    return out


def _count_glm(data, iterations: int = 6) -> tuple[dict, np.ndarray]:
    """Per group, a log-link regression of the target on every term of the model at once (intercept, trend,
    Fourier terms, log price, promotion, covariates) by iteratively reweighted least squares with a small
    ridge, with the family's working response and weights (:meth:`hbm.model.families.Family.working`; e.g.
    negative binomial ``w = mu / (1 + mu / alpha)``) and its auxiliary parameters by moments
    (:meth:`~hbm.model.families.Family.moments`: to start, the median over the groups of each group's own
    estimate around its mean; then over all rows around the fitted means). Returns each term's columns
    (name -> column indices) and, per group, the coefficients and the diagonal of their inverse Fisher
    information (their sampling variances, which account for the terms' collinearity), as (groups, terms)
    arrays stacked in a dict."""
    family = data.family_def
    g, k, y = data.group_idx, len(data.groups), data.y.astype("float64")
    cols, names = [np.ones_like(y)], {"intercept": [0]}
    for name, block in (("trend", data.u), ("season", data.F), ("price", data.log_price), ("promotion", data.promo),
                        ("covariates", data.X if data.X.size else None)):
        if block is None:
            continue
        block = np.asarray(block, dtype="float64").reshape(len(y), -1)
        names[name] = list(range(len(cols), len(cols) + block.shape[1]))
        cols += list(block.T)
    X = np.column_stack(cols)
    p = X.shape[1]
    n = np.maximum(np.bincount(g, minlength=k), 1)
    mean = np.bincount(g, weights=y, minlength=k) / n
    b = np.zeros((k, p))
    b[:, 0] = np.log(np.maximum(mean, 0.5 / n))
    aux = _start_moments(family, y, g, mean)
    # A small ridge keeps every group's system solvable; the intercept's pulls it toward the overall log
    # mean with the weight of half an observation, so a group without a single sale gets a finite estimate
    # with a large sampling variance instead of minus infinity.
    ridge = np.eye(p) * 1e-2
    ridge[0, 0] = 0.5
    prior = np.zeros(p)
    prior[0] = np.log(max(float(y.mean()), 1e-3))
    for _ in range(iterations):
        eta = np.clip(np.einsum("ij,ij->i", X, b[g]), -30, 30)
        z, w = family.working(y, eta, aux)
        info = np.zeros((k, p, p))
        np.add.at(info, g, w[:, None, None] * X[:, :, None] * X[:, None, :])
        rhs = np.zeros((k, p))
        np.add.at(rhs, g, (w * z)[:, None] * X)
        b = np.linalg.solve(info + ridge, (rhs + ridge @ prior)[..., None])[..., 0]
        # the auxiliary parameters (e.g. the dispersion), by moments of the fitted means
        aux = family.moments(y, np.clip(np.einsum("ij,ij->i", X, b[g]), -30, 30)) or aux
    cov_diag = np.diagonal(np.linalg.inv(info + ridge), axis1=1, axis2=2)
    return names, {"coef": b, "var": cov_diag}


def _start_moments(family, y: np.ndarray, g: np.ndarray, mean: np.ndarray) -> dict:
    """The auxiliary parameters to start the IRLS with: for each, the median over the groups with a
    positive mean of the group's own moment estimate at its mean (robust to a few odd groups)."""
    estimates: dict[str, list[float]] = {}
    order = np.argsort(g, kind="stable")
    bounds = np.searchsorted(g[order], np.arange(len(mean) + 1))
    for j in np.flatnonzero(mean > 0):
        rows = order[bounds[j]:bounds[j + 1]]
        for key, value in family.moments(y[rows], np.full(rows.size, np.log(mean[j]))).items():
            estimates.setdefault(key, []).append(value)
    return {key: float(np.median(v)) for key, v in estimates.items()}


def _intercept(data) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each group's own intercept estimate, its information, and the group-level design (normal family)."""
    g, k = data.group_idx, len(data.groups)
    n = np.bincount(g, minlength=k).astype("float64")
    y = data.y.astype("float64")
    if data.X.size:  # take out the observation-level covariates (pooled least squares)
        X = np.column_stack([np.ones(len(y)), data.X])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        y = y - data.X @ coef[1:]
    mean = np.bincount(g, weights=y, minlength=k) / np.maximum(n, 1)
    if data.sd is not None:
        info = np.bincount(g, weights=1.0 / data.sd**2, minlength=k)
        return mean, info, data.Z
    ss = np.bincount(g, weights=(y - mean[g]) ** 2, minlength=k)
    pooled = ss.sum() / max(len(y) - k, 1)
    pooled = pooled if pooled > 0 else float(np.var(y)) or 1.0
    own = ss / np.maximum(n - 1, 1)
    # a group's own variance where it has enough values, shrunk toward the pooled one
    var = np.where(n >= 5, (own * (n - 1) + pooled * 4) / (n + 3), pooled)
    return mean, n / np.maximum(var, 1e-300), data.Z


def _effect(data, effect: str, glm=None) -> tuple[dict, list[dict]] | None:
    if not data.log_link:
        if effect != "intercept":
            return None
        est, info, design = _intercept(data)
        design = _within_parents(data, 0, design)
        tau2 = _moment_tau2(est, info, design)
        return _layer(info, tau2, tau_low(est, info, design)), _parents(data, est, info, tau_high(est, info, design))
    names, fit = glm
    if effect not in names:
        return None
    idx = names[effect]
    ests, infos = fit["coef"][:, idx].T, 1.0 / np.maximum(fit["var"][:, idx].T, 1e-300)
    design = _within_parents(data, 0, data.Z if effect == "intercept" else None)
    # each coefficient (e.g. each Fourier term) around its own mean; one tau for the effect, as in the model
    tau2 = float(np.mean([_moment_tau2(e, i, design) for e, i in zip(ests, infos)]))
    low, high = (float(np.sqrt(np.mean([bound(e, i, design) ** 2 for e, i in zip(ests, infos)])))
                 for bound in (tau_low, tau_high))
    est, info = ests.mean(axis=0), infos.mean(axis=0)
    return _layer(info, tau2, low), _parents(data, est, info, high)


def decide(data, spec: dict) -> dict:
    """The parametrization of every pooled effect of a level: ``{effect: {"mode", "layers": [layer, ...]}}``,
    layers from the fitted level up (its parents nearest first); each layer has ``centered`` (one bool per
    group), ``tau``, ``information`` and ``ratio`` (I_j tau_low^2; ``None`` for explicit choices)."""
    out, glm = {}, None
    for effect in EFFECTS:
        if effect != "intercept" and not data.log_link:
            continue
        mode = mode_of(spec["model"], effect)
        sizes = [len(layer.labels) for layer in data.layers]
        if mode != "auto":
            layers = [{"centered": [mode == "centered"] * sizes[0], "tau": None, "information": None, "ratio": None}]
            layers += [{"centered": [False] * s, "tau": None, "information": None, "ratio": None} for s in sizes[1:]]
            out[effect] = {"mode": mode, "layers": layers}
            continue
        if glm is None and data.log_link:
            glm = _count_glm(data)
        found = _effect(data, effect, glm)
        if found is None:
            continue
        level, parents = found
        out[effect] = {"mode": "auto", "layers": [level, *parents]}
    return out


def summary(decision: dict, data) -> dict:
    """What :func:`decide` chose, for parametrization.json and the report: per effect and layer, the
    counts of centered and non-centered groups, tau and the range of I_j tau_low^2, and each group's choice."""
    out = {}
    for effect, d in decision.items():
        rows = []
        for layer, info in zip(data.layers, d["layers"]):
            c = np.asarray(info["centered"], dtype=bool)
            row = {"layer": layer.column, "groups": int(c.size), "centered": int(c.sum()),
                   "noncentered": int(c.size - c.sum()), "tau_estimate": info["tau"],
                   "tau_low": info.get("tau_low")}
            if info["ratio"] is not None:
                r = np.asarray(info["ratio"])
                row.update(ratio_min=float(r.min()), ratio_median=float(np.median(r)), ratio_max=float(r.max()),
                           per_group={lab: {"centered": bool(ci), "ratio": float(ri), "information": float(ii)}
                                      for lab, ci, ri, ii in zip(layer.labels, c, r, info["information"])})
            rows.append(row)
        out[effect] = {"mode": d["mode"], "layers": rows}
    return out
