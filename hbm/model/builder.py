"""The bottom model's PyMC graph: one model over every bottom series, effects pooled along hierarchies.

For row ``i`` of series ``s`` (e.g. a product x store) in period ``t``, with the family's link:

    link(E y_i) = eta_i = sum over effects e of coef_e[s] . x_e[i]
    coef_e[s]   = e                                         (shared: the population value)
                | e + c_e,h1[unit_h1(s)] + c_e,h2[unit_h2(s)] + ...   (varying along hierarchies h1, h2, ...)

Along one hierarchy with layers ``l_1`` (its bottom column) ... ``l_k`` (its top), each layer's effects are
partially pooled around the effect of their parent unit:

    c_e,h,l_k        = e + d_k,   d_k ~ ZeroSumNormal(e_<l_k>_sd)      (top layer; first hierarchy; mostly
                                                                     non-centered units)
    c_e,h,l_k[u]     ~ Normal(e, e_<l_k>_sd)                           (the same, mostly centered units)
    c_e,h,l_j[u]     ~ Normal(c_e,h,l_(j+1)[parent(u)], e_<l_j>_sd)     (each layer below)

The first hierarchy an effect names carries its population value ``e``, which is the mean of its top layer
where that layer's units are mostly non-centered (their offsets cannot trade off against it), as in the
per-level models. Where they are mostly centered (the data pin them down) they are pooled around ``e`` unit by
unit instead: the mean of a zero-sum layer would make ``e`` and every pinned unit's deviation move against
each other whenever the thinly informed units move (measured on Stallion's SKUs, five big ones and twenty
small: with per-series noise R-hat 1.039 on SKU_04's trend and bulk ESS 95 on ``trend`` after 2 x 1000 draws,
sampled in 619 s; pooled unit by unit, with the slope changes centered where the trend is, the trend passed
and sampling took 250 s, measured while the agencies' layer, the second hierarchy's top, did not sum to zero
either; the committed Stallion model then passes in 332 s instead of 712 s).

Every further hierarchy's components are deviations that sum to zero over each of its layers (the bottom
layer by :func:`zero_sum_around`): the data see only sums of the
hierarchies' components, so a free mean of a second hierarchy's components would trade off against the
population value along a ridge that only the priors bound (measured on retail_demand's product x store
model: R-hat 1.12 and bulk ESS 22 for ``intercept``; subtracting the mean from free store effects instead
left their own mean to the prior: R-hat 2.6 for ``intercept_store``; making every layer's deviations
zero-sum, the first hierarchy's too, made category and product deviations trade off and NUTS hit its tree
depth). The components of several hierarchies add, e.g. a product intercept pooled within its category
plus a store intercept pooled within its region: the seed's ``a[p] + b[s]`` with region effects.

``series`` (one value per bottom series) is not a further deviation but the series' own value, pooled
around the sum of the other hierarchies' components at the series (``c_e,series[s] ~ Normal(sum_h
c_e,h[unit_h(s)], e_series_sd)``): each series is a child of its units, so that where the data pin a series
down (its parametrization is centered) its value need not move when a unit's component does.

A hierarchy whose bottom units lie in one unit of another's (items each sold in one store: a sparse
assortment, e.g. a subset of a chain's series) has those units pooled around their parent's component plus
their container unit's (``c_e,item[u] ~ Normal(c_e,dept[dept(u)] + c_e,store[store(u)], e_item_sd)``), and
their rows do not add the store's component again (:meth:`BottomData.nesting`): the same posterior as adding
it, but a centered item then need not move when its store's value does. Added as a deviation, "the store up,
its items down" is a direction the data do not see, which only the items' prior bounds (measured on every
30th M5 series, each item in one store: store intercepts correlated -0.92 to -0.96 with their items' mean,
R-hat 1.014 after three attempts; pooled around the store, the ladder passes at its second attempt).

Level shifts (``bottom.shifts``) along ``series`` alone are a series' departures from its trend unit's course:
they sum to zero within each unit of the trend's hierarchies and have no population value (:func:`steps_within`).

Variable names come from the effect and the layer's column: ``intercept`` (population), ``intercept_category``,
``intercept_product``, ``intercept_category_sd``, ..., ``trend``, ``trend_product``, ``season``
(dims ``fourier``), ``season_store``, ``elasticity``, ``promotion``, the family's auxiliary parameters
(e.g. ``alpha``), the likelihood ``y`` (dims ``obs_id``). Priors (``model.priors``, overridable in
``bottom.priors``): ``mu``/``tau`` for the intercept's population value and its layers' sds,
``<effect>``/``<effect>_tau`` for the others (every seasonality uses ``season``/``season_tau``).

Each pooled layer is centered or non-centered per unit, decided from the data as in the per-level models
(:mod:`hbm.parametrization`, seen through :meth:`BottomData.layer_data` for each hierarchy).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from hbm.model import families, priors as prior_lib
from hbm.model.design import SERIES_DIM, SHOCK_DIM, SIZE, SHOCK_NEW_DIM, BottomData, is_seasonality
from hbm.model.design import LIKELIHOOD, OBS_DIM, OBSERVED

# prior keys of each effect: (population value, sd of every pooled layer)
PRIOR_KEYS = {"intercept": ("mu", "tau"), "trend": ("trend", "trend_tau"), "elasticity": ("elasticity", "elasticity_tau"),
              "promotion": ("promotion", "promotion_tau"), "events": ("events", "events_tau"),
              "changepoints": ("changepoints", "changepoints_tau"),
              "shifts": ("shifts", "shifts_tau"), "shock": ("shock", "shock_sd")}
SHOCK = "shock"
SEASON_KEYS = ("season", "season_tau")  # every seasonality's


def prior_keys(data: BottomData, effect: str) -> tuple[str, str]:
    return SEASON_KEYS if is_seasonality(effect) else PRIOR_KEYS[effect]


def resolve_priors(spec: dict, data: BottomData) -> dict:
    """The priors in force: the config's (``model.priors``, then ``bottom.priors``) and defaults on the log
    scale: mu ~ Normal(median over series of log(series mean), 1), tau ~ HalfNormal(1); trend ~ Normal(0,
    0.5), trend_tau ~ HalfNormal(0.25); season ~ Normal(0, 0.5), season_tau ~ HalfNormal(0.25); elasticity
    ~ Normal(-1, 1), promotion ~ Normal(0, 1), events ~ Normal(0, 1), their sds HalfNormal(0.5); the trend's
    slope changes (``bottom.changepoints``) changepoints ~ Normal(0, 0.25) per segment, their sds
    HalfNormal(0.25); the sd of the period shocks shock_sd ~ HalfNormal(0.1) (a shock of 10 % moves every
    series of a period); the family's auxiliary priors."""
    fam = families.get(data.family)
    half = {"dist": "halfnormal", "sigma": 0.5, "param": "sd"}
    defaults = {**prior_lib.log_link_effects(prior_lib.log_mean_centre(data.y, data.series_idx, len(data.series))),
                "elasticity_tau": half, "promotion_tau": dict(half), "events_tau": dict(half),
                "events": {"dist": "normal", "mu": 0.0, "sigma": 1.0},
                "changepoints": {"dist": "normal", "mu": 0.0, "sigma": 0.25},
                "changepoints_tau": {"dist": "halfnormal", "sigma": 0.25, "param": "sd"},
                "shifts": {"dist": "normal", "mu": 0.0, "sigma": 0.25},
                "shifts_tau": {"dist": "halfnormal", "sigma": 0.25, "param": "sd"},
                "shock_sd": {"dist": "halfnormal", "sigma": 0.1, "param": "sd"},
                "dispersion_tau": {"dist": "halfnormal", "sigma": 0.5, "param": "sd"},
                "hurdle_tau": {"dist": "halfnormal", "sigma": 1.0, "param": "sd"},
                "dispersion_size": {"dist": "normal", "mu": 0.0, "sigma": 0.5},
                "hurdle_size": {"dist": "normal", "mu": 0.0, "sigma": 1.0}, **fam.default_priors()}
    used = set(fam.default_priors())
    for key, (which, sd_key, _, size_key) in VARYING_AUX.items():
        if data.aux_units.get(key) and any(which(a) for a in fam.aux):
            used.add(size_key if data.aux_units[key] == SIZE else sd_key)
    for name, eff in data.effects.items():
        loc, sd = prior_keys(data, name)
        used |= {sd} if eff.index is not None or step_groups(data, name) is not None else \
            {loc} | ({sd} if eff.hierarchies else set())
    given = {**spec["model"].get("priors", {}), **spec["bottom"].get("priors", {})}
    return prior_lib.resolve(given, {k: v for k, v in defaults.items() if k in used})


# effect -> the hbm.parametrization effect whose decision it takes: the trend's slope changes are centered for
# the units whose trend is (a big SKU's segment slopes are pinned by its data as its trend is)
PARAMETRIZED = {"intercept": "intercept", "trend": "trend", "changepoints": "trend"}


def parametrization(data: BottomData, spec: dict) -> dict:
    """Centered or non-centered, per effect, hierarchy, layer and unit: ``{effect: {hierarchy: decision}}``
    with ``decision["layers"][i]["centered"]`` one bool per unit of layer i. Decided on the fitted data
    (``data.fitted`` for new rows) by :func:`hbm.parametrization.decide` per hierarchy; the seasonalities use
    its ``season`` decision, the trend's slope changes its ``trend`` one; elasticity, promotion and events
    along a hierarchy are non-centered."""
    from hbm.parametrization import decide

    base = data.fitted or data
    out = {}
    for h in base.hierarchies:
        users = [e for e, eff in base.effects.items() if h in eff.hierarchies]
        if not users:
            continue
        decision = decide(base.layer_data(h), spec)
        for e in users:
            key = "season" if is_seasonality(e) else PARAMETRIZED.get(e)
            if key in decision:
                out.setdefault(e, {})[h] = decision[key]
            else:
                out.setdefault(e, {})[h] = {"mode": "noncentered", "layers": [
                    {"centered": [False] * len(layer.labels), "tau": None, "information": None, "ratio": None}
                    for layer in base.hierarchies[h]]}
    return out


def step_groups(data: BottomData, name: str) -> np.ndarray | None:
    """For level shifts that vary along ``series`` alone: each series' group, within which its steps sum to
    zero (the units of the trend's hierarchies, one group of every series when the trend is shared); else
    None. A series' steps are its departures from its trend unit's course, which the trend and its
    changepoints say: steps free to move a unit's mean would add up to a staircase that imitates that unit's
    trend (measured on Stallion, steps along series pooled only over all series: R-hat 1.028 on a population
    step, which the shared period shocks can also carry, then 1.048 on a SKU's trend)."""
    eff = data.effects.get(name)
    if name != "shifts" or eff is None or eff.hierarchies != [SERIES_DIM]:
        return None
    along = [h for h in (data.effects["trend"].hierarchies if "trend" in data.effects else []) if h != SERIES_DIM]
    if not along:
        return np.zeros(len(data.series), dtype="int64")
    _, groups = np.unique(np.stack([data.unit_of[h] for h in along], axis=1), axis=0, return_inverse=True)
    return np.asarray(groups, dtype="int64").reshape(-1)


def steps_within(data: BottomData, name: str, groups: np.ndarray, priors: dict):
    """Series steps that sum to zero within each group (:func:`step_groups`): ``<name>_series = sd * (z -
    mean of z over the series' group)``, ``z ~ Normal(0, 1)`` per series and knot (``<name>_series_offset``),
    sd ~ the effect's tau prior. No population step: a step common to all series is the trend's and the
    period shocks' to say. A series alone in its group has no steps. Always non-centered."""
    import pymc as pm
    import pytensor.tensor as pt

    eff = data.effects[name]
    _, sd_key = prior_keys(data, name)
    sd = prior_lib.rv(f"{name}_{SERIES_DIM}_sd", priors[sd_key])
    z = pm.Normal(f"{name}_{SERIES_DIM}_offset", 0.0, 1.0, dims=(SERIES_DIM, eff.dim))
    size = np.bincount(groups)
    g = pt.as_tensor(groups)
    means = pt.zeros((len(size), len(eff.labels or [])))
    means = pt.inc_subtensor(means[g], z) / pt.as_tensor(size.astype("float64"))[:, None]
    return pm.Deterministic(f"{name}_{SERIES_DIM}", sd * (z - means[g]), dims=(SERIES_DIM, eff.dim))


def coefficients(data: BottomData, name: str, priors: dict, centering: dict):
    """The effect's population value, per hierarchy it varies along its bottom-layer components (the first
    one includes the population value), and ``keep``: for a container some of whose child's units carry its
    component (:meth:`~hbm.model.design.BottomData.nesting`), per series 0 where the series' unit does and 1
    where it does not (the component's weight in the series' rows; a container whose child carries all of it
    has no component left). Level shifts along ``series`` alone: no population value and steps that sum to
    zero within the trend's units (:func:`steps_within`)."""
    import pytensor.tensor as pt

    eff = data.effects[name]
    loc_key, sd_key = prior_keys(data, name)
    groups = step_groups(data, name)
    if groups is not None:
        return None, {SERIES_DIM: steps_within(data, name, groups, priors)}, {}
    population = prior_lib.rv(name, priors[loc_key], dims=eff.dim)
    components = {}
    others = [h for h in eff.hierarchies if h != SERIES_DIM]
    nested = data.nesting(others)  # e.g. {"item": "store"}: items sold in one store
    keep = {}  # a container's component enters a series' rows times keep[container][series] (default 1)

    def depth(h):
        return 0 if h not in nested else 1 + depth(nested[h])

    for h in sorted(others, key=depth):  # a container's components before its nested units'
        k = others.index(h)  # the first hierarchy carries the population value
        layers = data.hierarchies[h]
        value = population if k == 0 else 0.0
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if i + 1 < len(layers):
                value = value[layers[i].up]
            dims = (layer.column, eff.dim) if eff.dim else layer.column
            sd = prior_lib.rv(f"{name}_{layer.column}_sd", priors[sd_key])
            centered = centering[name][h]["layers"][i]["centered"]
            if i == 0 and h in nested:
                # units alone in one unit of the container (an item sold in one store): pooled around their
                # parent's value plus their container unit's component, which is then theirs to carry (the
                # container a parent, as a series is a child of its units), so that a centered unit need not move
                # when its container's value does; the same posterior as adding the container's component to
                # their rows. Their rows no longer add it (``keep``); the other units' rows still do.
                o = nested[h]
                alone = data.alone(h, o)
                within = components[o][data.container_of(h, o)]
                if not alone.all():
                    within = within * pt.as_tensor(alone.astype("float64").reshape((-1,) + (1,) * (eff.dim is not None)))
                    keep[o] = (~alone[data.unit_of[h]]).astype("float64")
                else:
                    components.pop(o)
                value = pooled(f"{name}_{layer.column}", value + within, sd, dims, centered)
            elif k > 0 and i == 0 and len(layers) > 1:
                value = zero_sum_around(f"{name}_{layer.column}", value, sd, dims, centered)
            else:
                # a further hierarchy's top layer sums to zero (its mean is the population value's); the first
                # one's too where its units are mostly non-centered, else they are pooled unit by unit around
                # the population value (the module docstring)
                top = i == len(layers) - 1 and (k > 0 or not bool(np.mean(centered) > 0.5))
                value = pooled(f"{name}_{layer.column}", value, sd, dims, centered, zero_sum=top)
        components[h] = value
    if SERIES_DIM in eff.hierarchies:
        # the series' own value, pooled around the sum of the other hierarchies' components at the series
        # (each series a child of its units: a centered series does not have to move when a unit's component
        # does, as a deviation that sums with them would; measured on Stallion with a noise parameter per
        # series: R-hat 1.22 and bulk ESS 8 for the deviations); along series alone, around the population
        # value, summing to zero as any first hierarchy's top layer
        loc = sum(at_series(components.pop(o), data.unit_of[o], keep.pop(o, None)) for o in list(components)) \
            if others else population
        sd = prior_lib.rv(f"{name}_{SERIES_DIM}_sd", priors[sd_key])
        dims = (SERIES_DIM, eff.dim) if eff.dim else SERIES_DIM
        components[SERIES_DIM] = pooled(f"{name}_{SERIES_DIM}", loc, sd, dims,
                                        centering[name][SERIES_DIM]["layers"][0]["centered"], zero_sum=not others)
    return population, components, keep


def nested_units(data: BottomData) -> dict:
    """Per effect, the hierarchies some of whose units are pooled around their container's value
    (:meth:`BottomData.nesting`): ``{effect: {child: {"container", "alone", "units"}}}``, e.g. ``{"intercept":
    {"item": {"container": "store", "alone": 1742, "units": 3049}}}`` (for parametrization.json and the log)."""
    out = {}
    for name, eff in data.effects.items():
        if eff.index is not None or step_groups(data, name) is not None:
            continue
        for child, o in data.nesting([h for h in eff.hierarchies if h != SERIES_DIM]).items():
            alone = data.alone(child, o)
            out.setdefault(name, {})[child] = {"container": o, "alone": int(alone.sum()), "units": int(alone.size)}
    return out


def at_series(values, units: np.ndarray, keep: np.ndarray | None):
    """A component's values at each of the given rows' (or series') units, times ``keep`` there (None: 1)."""
    import pytensor.tensor as pt

    out = values[units]
    if keep is None:
        return out
    return out * pt.as_tensor(keep.reshape((-1,) + (1,) * (out.ndim - 1)))


def pooled(name: str, loc, tau, dims, centered, zero_sum: bool = False):
    """Group effects partially pooled around ``loc`` with sd ``tau``.

    ``centered``: one bool for every group, or one per group (the first dim): all centered gives
    ``name ~ Normal(loc, tau)``; all non-centered ``name = loc + tau * <name>_offset``; a mix gives one
    variable ``<name>_raw`` whose centered elements are the effects and whose others are offsets
    (``name = where(centered, raw, loc + tau * raw)``), with the matching prior on each element.
    ``zero_sum``: the deviations from ``loc`` sum to zero over the groups (the first dim), so ``loc`` is
    their mean and cannot trade off against them (``pm.ZeroSumNormal``; marginal sd tau * sqrt(1 - 1/n));
    such a layer takes the majority choice.
    """
    import pymc as pm
    import pytensor.tensor as pt

    mask = np.atleast_1d(np.asarray(centered, dtype=bool))
    if zero_sum or mask.all() or not mask.any():
        centered = bool(mask.mean() > 0.5) if zero_sum else bool(mask.all())
    else:
        dims_t = (dims,) if isinstance(dims, str) else tuple(dims)
        m = pt.as_tensor(mask.reshape((-1,) + (1,) * (len(dims_t) - 1)))
        raw = pm.Normal(f"{name}_raw", mu=pt.where(m, loc, 0.0), sigma=pt.where(m, tau, 1.0), dims=dims)
        return pm.Deterministic(name, pt.where(m, raw, loc + tau * raw), dims=dims)
    if zero_sum:
        dims = (dims,) if isinstance(dims, str) else tuple(dims)
        flipped = (*dims[1:], dims[0])  # ZeroSumNormal sums to zero over its last dim
        if centered:
            dev = pm.ZeroSumNormal(f"{name}_dev", sigma=tau, dims=flipped)
            return pm.Deterministic(name, loc + dev.T, dims=dims)
        offset = pm.ZeroSumNormal(f"{name}_offset", sigma=1.0, dims=flipped)
        return pm.Deterministic(name, loc + tau * offset.T, dims=dims)
    if centered:
        return pm.Normal(name, mu=loc, sigma=tau, dims=dims)
    offset = pm.Normal(f"{name}_offset", mu=0.0, sigma=1.0, dims=dims)
    return pm.Deterministic(name, loc + tau * offset, dims=dims)


def zero_sum_around(name: str, loc, sd, dims, centered):
    """Unit effects ``b ~ Normal(loc, sd)`` restricted to ``sum(b) = 0`` over the units (the first dim): the
    bottom layer of a hierarchy after the first, so that its mean cannot trade off against the population
    value. On that subspace the density is ``Normal(b | loc - mean(loc), sd)``. Centered: ``b`` is sampled
    (``pm.ZeroSumNormal(sd)``, moved to its mean by a ``pm.Potential`` named ``<name>_around_parent``, which
    adds ``log N(b | P loc, sd) - log N(b | 0, sd)``); non-centered: ``b = P loc + sd * z``, ``z`` a
    ``ZeroSumNormal(1)`` named ``<name>_offset``. A mix of choices takes the majority."""
    import pymc as pm

    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    flipped = (*dims[1:], dims[0])  # ZeroSumNormal sums to zero over its last dim
    loc_c = loc - loc.mean(axis=0)
    if bool(np.mean(centered) > 0.5):
        raw = pm.ZeroSumNormal(f"{name}_zs", sigma=sd, dims=flipped)
        b = raw.T if len(dims) > 1 else raw
        pm.Potential(f"{name}_around_parent", (2 * b * loc_c - loc_c**2).sum() / (2 * sd**2))
        return pm.Deterministic(name, b, dims=dims)
    z = pm.ZeroSumNormal(f"{name}_offset", sigma=1.0, dims=flipped)
    return pm.Deterministic(name, loc_c + sd * (z.T if len(dims) > 1 else z), dims=dims)


FAST_LOGLIK = "y_loglik"  # the Potential of the fast likelihood


def layer_could_center(layer: dict) -> bool:
    """Whether the other parametrization is worth a try for one layer of an auto-decided effect: some of its
    units are centered (they may be made non-centered), or some unit's data would dominate its prior at the
    layer's tau estimate itself (``I_j tau^2 > 1``), or nothing was measured to go by (an explicit choice).
    A layer whose every unit the data inform less than the spread between units stays non-centered: its
    centered form is a funnel at the small sds its posterior reaches (:func:`hbm.fit.could_center`)."""
    if layer.get("information") is None or layer.get("tau") is None:
        return True
    return bool(any(layer["centered"]) or max(layer["information"], default=0.0) * layer["tau"] ** 2 > 1.0)


def flip(centering: dict, effects) -> dict:
    """``centering`` with the other parametrization for ``effects``: every layer of each that could be
    centered (:func:`layer_could_center`) takes the opposite of its majority (the escalation ladder's rung for
    an effect that mixes badly, :func:`hbm.fit.sample_until_passing`); a layer no unit of which the data inform
    beyond its spread stays as it is (stress shape parents_30, 30 categories of 2 products: flipping the
    categories' trend layer too, max ``I_j tau^2`` 0.999, cut the bulk ESS of its sd per draw by 3.5).
    An entry ``<effect>:noncentered`` makes every unit of the effect non-centered instead: the rung after
    divergences at a low sd, which come from the centered units' funnel (:func:`hbm.fit.flip_target`)."""
    out = copy.deepcopy(centering)
    for entry in effects:
        e, _, target = str(entry).partition(":")
        for d in out.get(e, {}).values():
            d["mode"] = f"{d['mode']}, {'non-centered' if target == 'noncentered' else 'flipped'}"
            for layer in d["layers"]:
                c = np.asarray(layer["centered"], dtype=bool)
                if target == "noncentered":
                    layer["centered"] = [False] * len(c)
                elif layer_could_center(layer):
                    layer["centered"] = [not bool(c.mean() > 0.5)] * len(c)
    return out


def effect_of(variable: str, data: BottomData) -> str | None:
    """The effect a model variable belongs to (``season_sku_sd[...]`` -> ``season``), or None."""
    base = variable.split("[")[0]
    return next((e for e in sorted(data.effects, key=len, reverse=True) if base == e or base.startswith(f"{e}_")),
                None)


TERM = "term_"  # prefix of each effect's part of the linear predictor (build(..., terms=True))


def build(data: BottomData, spec: dict, priors: dict | None = None, observed_as_data: bool = False,
          fast: bool = False, flipped=(), terms: bool = False):
    """The bottom model (see the module docstring). ``fast``: the likelihood as one Potential
    (:meth:`hbm.model.families.Family.fast_loglik`, where the family has one), for sampling; the model for
    predictions and pointwise log-likelihoods has the observed ``y`` and the same free variables.
    ``flipped``: effects given the other parametrization than the decided one (:func:`flip`). ``terms``:
    each effect's part of the linear predictor as a Deterministic ``term_<effect>`` per row (they sum to the
    linear predictor; :func:`hbm.bottom.components`), for predictions only."""
    import pymc as pm
    import pytensor.tensor as pt

    priors = priors or resolve_priors(spec, data)
    centering = flip(parametrization(data, spec), flipped)
    fam = families.get(data.family)
    with pm.Model(coords=data.coords) as model:
        observed = pm.Data(OBSERVED, data.y, dims=OBS_DIM) if observed_as_data else data.y
        series_index = pm.Data("series_idx", data.series_idx, dims=OBS_DIM)
        index = {h: series_index if h == SERIES_DIM else pm.Data(f"{h}_idx", data.unit_of[h][data.series_idx], dims=OBS_DIM)
                 for h in data.hierarchies}
        eta = 0.0
        for name, eff in data.effects.items():
            part = 0.0
            if eff.index is not None:
                for component in eff.components:
                    centered = shock_parametrization(data, component)["centered"] != (name in flipped)
                    part = part + period_shocks(data, name, component, priors, centered)
            else:
                population, components, keep = coefficients(data, name, priors, centering)
                coef = population if not components else 0.0  # else the first component carries it
                for h, c in components.items():
                    coef = coef + at_series(c, index[h], keep[h][data.series_idx] if h in keep else None)
                if eff.dim:
                    part = (coef * pm.Data(f"x_{name}", eff.x, dims=(OBS_DIM, eff.dim))).sum(axis=-1)
                else:
                    part = coef if name == "intercept" else coef * pm.Data(f"x_{name}", eff.x[:, 0], dims=OBS_DIM)
            if terms:
                pm.Deterministic(f"{TERM}{name}", part + pt.zeros(data.y.shape), dims=OBS_DIM)
            eta = eta + part
        varying = varying_aux(data, priors, {SERIES_DIM: series_index, **index})
        if fast and fam.has_fast_loglik and not observed_as_data and set(varying) <= {"alpha"}:
            fam.fast_loglik(FAST_LOGLIK, eta, data.y, priors,
                            per_unit={k: (v.values, v.unit_of_row) for k, v in varying.items()})
        else:
            given = {k: v.values[v.index] for k, v in varying.items()}
            fam.likelihood(LIKELIHOOD, eta, observed, priors, dims=OBS_DIM, given=given)
    return model


# auxiliary parameters that may vary by unit (``bottom.dispersion``, ``bottom.hurdle``): config key -> (which of
# the family's aux, the prior key of their sd, the scale they vary on, the prior key of their slope on the
# series' log size)
VARYING_AUX = {"dispersion": (lambda a: a.prior in ("dispersion", "sigma"), "dispersion_tau", "log", "dispersion_size"),
               "hurdle": (lambda a: a.name == "psi", "hurdle_tau", "logit", "hurdle_size")}


class Varying(NamedTuple):
    """An auxiliary parameter that varies by unit: its ``values`` per unit (as the likelihood takes them, e.g.
    the negative binomial's alpha), each row's unit as the model's index (``index``, which new rows replace)
    and as the fitted rows' integer array (``unit_of_row``, for the fast likelihood)."""
    values: object
    index: object
    unit_of_row: np.ndarray


def varying_aux(data: BottomData, priors: dict, index: dict) -> dict[str, Varying]:
    """Auxiliary parameters that vary by unit (the family's ``given``, per row ``values[index]``), by
    ``argument``; ``index``: each hierarchy's (and the series') index per row.

    ``bottom.dispersion: series`` (or a hierarchy's name: its bottom units): each unit's noise parameter (the
    gamma's cv, the negative binomial's 1/sqrt(alpha), the lognormal's or normal's sigma) is the population
    value times exp(sd * z_unit), z ~ Normal(0, 1), sd ~ ``dispersion_tau`` (default HalfNormal(0.5)): a big
    series is relatively less noisy than a small one, which one shared parameter cannot say (it would give
    the big series' forecasts intervals too wide and, for the gamma, medians too low). ``bottom.hurdle``: each
    unit's probability of a non-zero value psi, on the logit scale around the population psi, sd
    ``hurdle_tau`` (default HalfNormal(1)). Always non-centered (not decided from the data, unlike the
    effects'); the escalation ladder does not flip it.

    ``size`` instead of a hierarchy: one slope instead of one value per unit, the noise parameter (or the logit
    of psi) moving with the series' log size (:func:`hbm.model.design.series_log_size`, 0 at the median
    series): ``cv_s = cv * exp(slope * log_size_s)``, slope ~ ``dispersion_size`` (default Normal(0, 0.5);
    -0.5 makes the gamma's variance grow as the mean rather than its square), ``hurdle_size`` (default
    Normal(0, 1)) for psi. Two variables whatever the number of series: what a big series being less noisy
    needs, without a variable per series that a short series cannot pin down."""
    import pymc as pm
    import pytensor.tensor as pt

    fam = families.get(data.family)
    out = {}
    for key, (which, sd_key, scale, size_key) in VARYING_AUX.items():
        along = data.aux_units.get(key)
        aux = next((a for a in fam.aux if which(a)), None)
        if along is None or aux is None:
            continue
        base = prior_lib.rv(aux.variable, priors[aux.prior])
        by_size = along == SIZE
        if by_size:  # one value per series, from two variables: not stored
            slope = prior_lib.rv(f"{aux.variable}_{SIZE}_slope", priors[size_key])
            shift = slope * pt.as_tensor(np.asarray(data.reference["series_log_size"], dtype="float64"))
            along = SERIES_DIM
        else:
            column = data.hierarchies[along][0].column
            sd = prior_lib.rv(f"{aux.variable}_{column}_sd", priors[sd_key])
            shift = sd * pm.Normal(f"{aux.variable}_{column}_offset", 0.0, 1.0, dims=column)
        if scale == "log":
            value = base * pt.exp(shift)
        else:
            value = pm.math.sigmoid(pt.log(base) - pt.log1p(-base) + shift)
        if not by_size:
            value = pm.Deterministic(f"{aux.variable}_{column}", value, dims=column)
        out[aux.argument] = Varying(1.0 / value**2 if aux.transform == "inv_square" else value, index[along],
                                    data.series_idx if along == SERIES_DIM else data.unit_of[along][data.series_idx])
    return out


def shock_parametrization(data: BottomData, component: str = "shared") -> dict:
    """Centered or non-centered period shocks, by the rule of :mod:`hbm.parametrization` (centered where
    I * tau^2 > 1) on moment estimates from the fitted rows, on the log1p scale: each row's deviation from
    its series' mean; a cell's (a period's; for a hierarchy's component, a unit's period's, after the periods'
    means are taken out) mean deviation r_c estimates its shock with sampling variance v_c / n_c (v_c: the
    deviations' variance within the cell, n_c its rows); tau^2 is the variance of r_c left after a
    least-squares fit of the trend's (and its changes') and the seasons' inputs (per unit for a hierarchy),
    less the mean sampling variance; I = n_c / v_c (median over cells). With no shocks in the data (the
    bundled retail chain) tau^2 is about 0 and the shocks are non-centered; a strong common movement seen by
    hundreds of series is centered. The escalation ladder can flip it."""
    base = data.fitted or data
    z = np.log1p(np.maximum(base.y, 0.0))
    dev = z - (np.bincount(base.series_idx, weights=z) / np.maximum(np.bincount(base.series_idx), 1))[base.series_idx]
    pos = base.effects[SHOCK].index
    periods = int(pos.max()) + 1 if len(pos) else 0
    inputs = np.concatenate([np.ones((len(pos), 1)), *time_inputs(base)], axis=1)
    if component == "shared":
        cell, units = pos, np.zeros(len(pos), dtype="int64")
    else:
        dev = dev - (np.bincount(pos, weights=dev, minlength=periods) / np.maximum(np.bincount(pos, minlength=periods), 1))[pos]
        units = base.unit_of[component][base.series_idx]
        cell = units * periods + pos
    k = int(cell.max()) + 1 if len(cell) else 0
    n = np.bincount(cell, minlength=k).astype(float)
    r = np.bincount(cell, weights=dev, minlength=k) / np.maximum(n, 1)
    v = np.bincount(cell, weights=(dev - r[cell]) ** 2, minlength=k) / np.maximum(n - 1, 1)
    seen, first = np.unique(cell, return_index=True)
    onehot = np.eye(int(units.max()) + 1)[units[first]]  # one block of inputs per unit
    X = (onehot[:, :, None] * inputs[first][:, None, :]).reshape(len(seen), -1)
    r, v, n = r[seen], v[seen], n[seen]
    resid = r - X @ np.linalg.lstsq(X, r, rcond=None)[0]
    sampling = v / np.maximum(n, 1)
    dof = max(len(seen) - np.linalg.matrix_rank(X), 1)
    tau2 = max(float(np.sum(resid**2) / dof - np.mean(sampling)), 0.0)
    info = float(np.median(n / np.maximum(v, 1e-12)))
    return {"mode": "auto", "centered": bool(info * tau2 > 1), "tau": float(np.sqrt(tau2)), "information": info,
            "ratio": info * tau2}


def time_inputs(data: BottomData) -> list[np.ndarray]:
    """Per row, the inputs that depend on the period alone: the trend, its slope changes, every seasonality."""
    return [e.x for n, e in data.effects.items() if n in ("trend", "changepoints") or is_seasonality(n)]


def shock_basis(data: BottomData) -> np.ndarray:
    """The time inputs over the fitted periods (one row per period): a constant, the trend, its slope
    changes and every seasonality's Fourier terms (each the same for every row of a period)."""
    base = data.fitted or data
    pos = base.effects[SHOCK].index
    periods = len(base.coords[SHOCK_DIM])
    seen, first = np.unique(pos, return_index=True)
    cols = [np.ones((len(seen), 1))] + [x[first] for x in time_inputs(base)]
    B = np.zeros((periods, sum(c.shape[1] for c in cols)))
    B[seen] = np.concatenate(cols, axis=1)
    return B


def shock_projection(data: BottomData) -> np.ndarray:
    """The projection (symmetric, periods x periods) onto what the time inputs cannot say
    (:func:`shock_basis`): shocks are ``raw @ P``, so that they sum to zero over the fitted periods and carry
    no trend, slope change or season. Without it the shared shocks (one free value per period) and the
    population's trend, slope changes and season describe the same movements and trade off along a ridge
    that only the priors bound (measured on Stallion with segment slopes: bulk ESS 13 on a shared shock
    without the projection)."""
    B = shock_basis(data)
    u, sv, _ = np.linalg.svd(B, full_matrices=False)
    Q = u[:, sv > sv.max() * 1e-10]
    return np.eye(len(B)) - Q @ Q.T


def shock_name(data: BottomData, component: str) -> str:
    """``shock`` (shared) or ``shock_<column>`` (a hierarchy's: its bottom column)."""
    return SHOCK if component == "shared" else f"{SHOCK}_{data.hierarchies[component][0].column}"


def period_shocks(data: BottomData, name: str, component: str, priors: dict, centered: bool):
    """Each row's shock of one component. ``shared``: ``shock[period] ~ Normal(0, shock_sd)``, one per fitted
    period, shared by every series; a hierarchy's: ``shock_<column>[unit, period] ~ Normal(0,
    shock_<column>_sd)``, one per unit of its bottom column and fitted period (what moves one SKU's series
    together). Periods after the fitted ones (``<name>_new``) are not in the posterior, so predictions draw
    them from the same Normal (:func:`pymc.sample_posterior_predictive` samples what the trace lacks).
    ``centered``: :func:`shock_parametrization`, decided on the fitted rows so that predictions have the same
    variables."""
    import pymc as pm
    import pytensor.tensor as pt

    eff = data.effects[name]
    _, sd_key = prior_keys(data, name)
    var = shock_name(data, component)
    sd = prior_lib.rv(f"{var}_sd", priors[sd_key])
    unit_dims = () if component == "shared" else (data.hierarchies[component][0].column,)
    dims = (*unit_dims, SHOCK_DIM)
    P = pt.as_tensor(shock_projection(data))
    if centered:
        raw = pm.Normal(f"{var}_raw", 0.0, sd, dims=dims)
        shock = pm.Deterministic(var, pt.dot(raw, P), dims=dims)
    else:
        shock = pm.Deterministic(var, sd * pt.dot(pm.Normal(f"{var}_offset", 0.0, 1.0, dims=dims), P), dims=dims)
    if eff.new:
        shock = pt.concatenate([shock, pm.Normal(f"{var}_new", 0.0, sd, dims=(*unit_dims, SHOCK_NEW_DIM))], axis=-1)
    if component == "shared":
        return shock[pm.Data(f"{var}_idx", eff.index, dims=OBS_DIM)]
    return shock[pt.as_tensor(data.unit_of[component][data.series_idx]), pt.as_tensor(eff.index)]


def hyperparameters(data: BottomData) -> list[str]:
    """Population values and sds: what a reader of the report looks at first."""
    names = []
    for name, eff in data.effects.items():
        if eff.index is not None:
            names += [f"{shock_name(data, c)}_sd" for c in eff.components]
            continue
        if step_groups(data, name) is None:
            names.append(name)
        for h in eff.hierarchies:
            names += [f"{name}_{layer.column}_sd" for layer in data.hierarchies[h]]
    fam = families.get(data.family)
    varying = dict(_varying(data))
    return names + [a.variable if a.variable in varying else a.name for a in fam.aux] + \
        [f"{v}_{c}_slope" if c == SIZE else f"{v}_{c}_sd" for v, c in varying.items()]


def _varying(data: BottomData) -> list[tuple[str, str]]:
    """(aux variable, unit column) of each auxiliary parameter that varies by unit (``data.aux_units``); the
    column is ``size`` where it varies with the series' size."""
    fam = families.get(data.family)
    out = []
    for key, (which, _, _, _) in VARYING_AUX.items():
        aux = next((a for a in fam.aux if which(a)), None)
        along = data.aux_units.get(key)
        if along and aux is not None:
            out.append((aux.variable, SIZE if along == SIZE else data.hierarchies[along][0].column))
    return out


def unit_parameters(data: BottomData) -> list[str]:
    """Variables with one value per unit of some layer (shown per unit, not as a summary row)."""
    return [f"{name}_{layer.column}" for name, eff in data.effects.items() for h in eff.hierarchies
            for layer in data.hierarchies[h]] + [f"{v}_{c}" for v, c in _varying(data) if c != SIZE]
