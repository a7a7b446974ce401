"""The bottom model's design: a table of bottom-series rows to arrays (no file I/O).

The analysis's ``bottom`` section declares the bottom series and the hierarchies above them::

    bottom:
      series: [product, store]                 # the columns that identify one bottom series
      hierarchies:                             # each: its bottom column first, then its parents
        product: [product, category]
        store: [store, region]
      effects:                                 # along which hierarchies each effect varies (and is pooled)
        intercept: [product, store]
        trend: product
        season: store
        elasticity: shared
        promotion: shared

An effect names one hierarchy, several (their components add up), ``series`` (one deviation per bottom
series, pooled: e.g. ``intercept: [product, store, series]`` lets a store sell more of one product than the
product's and the store's intercepts say) or ``shared`` (one value for every series). Defaults: the intercept varies along every hierarchy, every other effect is shared. Each
seasonality (``bottom.seasonalities``, a list of ``{name, period, order}``; default the analysis's
``model.seasonality`` named ``season``) is an effect of its own name; ``season`` sets the default for all.

For row ``i`` of series ``s`` in period ``t`` the linear predictor is a sum over effects ``e`` of
``coef_e[s] . x_e[i]``: ``x`` is 1 for the intercept, the centred time ``u_t`` for the trend, the time
spent in each segment between knots, ``min((t - knot_k)_+, knot_(k+1) - knot_k) / per``, for the trend's
slope changes (``bottom.changepoints``), the Fourier terms ``F_t`` of each seasonality, the log
price relative to the mean of ``price_units`` (e.g. the product's mean over its stores), the promotion, the
event indicators, and ``coef_e[s]`` is the sum of the effect's components over its hierarchies, each component taken at the
series' unit of that hierarchy (:mod:`hbm.model.builder`). The period shock (``bottom.effects.shock:
shared``, and/or hierarchies) has no inputs: each row takes the shock of its period (``Effect.index``), and of
its unit and period for a hierarchy's component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OBS_DIM = "obs_id"
COVARIATE_DIM = "covariate"
PREDICTOR_DIM = "predictor"
FOURIER_DIM = "fourier"
LIKELIHOOD = "y"
OBSERVED = "y_observed"  # the observations as a Data container (build_model(..., observed_as_data=True))
PERIOD = "_period"  # the time column as an index on its grid (0 = first period): written by ingest
SERIES_DIM = "series"
SHARED = "shared"
BOTTOM_EFFECTS = ("intercept", "trend", "changepoints", "shifts", "season", "elasticity", "promotion", "events", "shock")
EVENT_COLUMN = "event"  # the events file's column of event names (hbm.events)
EVENT_DIM = "event"
CHANGEPOINT_DIM = "changepoint"
CHANGEPOINT_RANGE = 0.8  # knots spread over this share of the fitted periods, from the first (Prophet's default)
SHIFT_DIM = "shift"  # the knots of the level shifts (``bottom.shifts``)
SHOCK_DIM = "shock_period"  # the fitted periods
SHOCK_NEW_DIM = "shock_new_period"  # periods after them (forecasts): their shocks drawn from N(0, shock_sd)
SEP = " | "  # joins the series columns into one label


def is_seasonality(effect: str) -> bool:
    """Whether an effect of the bottom model is a seasonality: ``season`` or a name of ``bottom.seasonalities``
    (every other effect is one of BOTTOM_EFFECTS)."""
    return effect == "season" or effect not in BOTTOM_EFFECTS


@dataclass
class Layer:
    """One layer of the hierarchy: its column, group labels and, for each group, its parent's index."""

    column: str
    labels: list[str]
    up: np.ndarray | None = None  # index into the next layer up; None for the top layer (below mu)



def fourier_terms(period: np.ndarray, season_period: float, order: int) -> tuple[np.ndarray, list[str]]:
    """Columns sin(2 pi k t / P), cos(2 pi k t / P) for k = 1..order, and their names."""
    t = np.asarray(period, dtype="float64")[:, None]
    k = np.arange(1, order + 1)[None, :]
    arg = 2 * np.pi * k * t / season_period
    F = np.stack([np.sin(arg), np.cos(arg)], axis=-1).reshape(len(t), 2 * order)
    names = [f"{f}_{i}" for i in range(1, order + 1) for f in ("sin", "cos")]
    return F, names


@dataclass
class Effect:
    """One term of the linear predictor: its inputs per row ``x`` (rows, width), the hierarchies its
    coefficient varies along (empty: shared), and the extra dim of a vector coefficient (Fourier terms)."""

    name: str
    x: np.ndarray
    hierarchies: list[str]
    dim: str | None = None
    labels: list[str] | None = None
    # an effect with one value per period instead of inputs (``shock``): each row's position among the fitted
    # periods, then the new ones (``new``: how many periods the fitted model has no value for)
    index: np.ndarray | None = None
    new: int = 0
    # the period shock's components: ``shared`` (one per period) and hierarchies (one per unit and period)
    components: list[str] = field(default_factory=list)


@dataclass
class BottomData:
    family: str
    target: str
    y: np.ndarray
    series: list[str]
    series_idx: np.ndarray  # row -> series
    hierarchies: dict[str, list[Layer]]  # name -> layers, bottom column first
    unit_of: dict[str, np.ndarray]  # name -> for each series, its index in the hierarchy's bottom layer
    effects: dict[str, Effect]
    period: np.ndarray
    coords: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)  # what new rows must be scaled by
    # auxiliary parameters that vary by unit (``bottom.dispersion``, ``bottom.hurdle``): key -> hierarchy or series
    aux_units: dict = field(default_factory=dict)
    fitted: "BottomData | None" = None

    def nesting(self, among) -> dict[str, str]:
        """Hierarchies some of whose bottom units are nested in another's: ``{child: container}`` among the
        hierarchies ``among`` (an effect's), e.g. ``{"item": "store"}`` where items are sold in one store
        only (a sparse assortment: a subset of a chain's series, a store's own brands). A child has more
        units than its container (which has at least 2), some of them :meth:`alone` in one container unit;
        it takes the container that holds the most of its units alone (then the finest), and a container has
        one child (the first in ``among``). The builder pools each such unit around its parent plus its
        container unit's component (:func:`hbm.model.builder.coefficients`): otherwise "the store up, its
        one-store items down" leaves the data unchanged, and with the items centered only their prior bounds
        that direction (measured on every 30th M5 series, every item in one store: correlation -0.92 to -0.96
        between each store's intercept and its items' mean, R-hat 1.014 after three attempts). Decided from
        ``unit_of`` (the fitted model's), so new rows get the same model."""
        out, taken = {}, set()
        among = [h for h in among if h != SERIES_DIM and h in self.hierarchies]
        for h in among:
            size = len(self.hierarchies[h][0].labels)
            best = None
            for o in among:
                n = len(self.hierarchies[o][0].labels)
                if o == h or o in taken or not 2 <= n < size:
                    continue
                score = (int(self.alone(h, o).sum()), n)
                if score[0] and (best is None or score > best[1]):
                    best = (o, score)
            if best is not None:
                out[h] = best[0]
                taken.add(best[0])
        return out

    def _shares(self, child: str, container: str) -> np.ndarray:
        """(child units, container units): the share of each child unit's series in each container unit."""
        counts = np.zeros((len(self.hierarchies[child][0].labels), len(self.hierarchies[container][0].labels)))
        np.add.at(counts, (self.unit_of[child], self.unit_of[container]), 1.0)
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)

    def alone(self, child: str, container: str) -> np.ndarray:
        """For each unit of ``child``'s bottom layer, whether all its series lie in one unit of ``container``'s."""
        return self._shares(child, container).max(axis=1) == 1.0

    def container_of(self, child: str, container: str) -> np.ndarray:
        """For each unit of ``child``'s bottom layer, its unit in ``container``'s (for a unit that is not
        :meth:`alone` there, the one with most of its series)."""
        return self._shares(child, container).argmax(axis=1)

    def layer_data(self, hierarchy: str):
        """This design seen as a per-level design of one hierarchy's bottom units (for
        :mod:`hbm.parametrization`): every row belongs to the unit of its series in that hierarchy."""
        from types import SimpleNamespace

        from hbm.model import families

        layers = self.hierarchies[hierarchy]
        group_idx = self.unit_of[hierarchy][self.series_idx]
        fam = families.get(self.family)

        def along(name):  # the effect's inputs where it varies along this hierarchy, else None
            eff = self.effects.get(name)
            return eff.x[:, 0] if eff is not None and hierarchy in eff.hierarchies else None

        # only the terms that vary along this hierarchy are fitted per unit: a unit's own regression on a
        # term the model shares (e.g. the price, nearly constant within a series) would make its intercept
        # collinear with it and its information meaningless (measured on Stallion's series: information 0.5
        # for every series, tau 3e7, every series centered; the thin ones then mixed at R-hat 1.22)
        seasons = [e.x for e in self.effects.values() if is_seasonality(e.name) and hierarchy in e.hierarchies]
        Z = np.zeros((len(layers[0].labels), 0))
        if hierarchy == SERIES_DIM:  # a series' intercept is pooled around its units' in the other hierarchies
            others = [h for h in self.hierarchies if h != SERIES_DIM and h in self.effects["intercept"].hierarchies]
            Z = np.concatenate([np.eye(len(self.hierarchies[h][0].labels))[self.unit_of[h]][:, 1:] for h in others]
                               + [Z], axis=1)
        container = self.nesting(self.effects["intercept"].hierarchies).get(hierarchy)
        if container is not None:  # a nested unit's intercept is pooled around its parent's plus its container's
            Z = self._shares(hierarchy, container)[:, 1:]
        return SimpleNamespace(
            family=self.family, family_def=fam, log_link=fam.log_link, y=self.y, group_idx=group_idx,
            groups=layers[0].labels, layers=layers, u=along("trend"),
            F=np.concatenate(seasons, axis=1) if seasons else None,
            log_price=along("elasticity"), promo=along("promotion"),
            X=np.zeros((len(self.y), 0)), Z=Z, sd=None)


def segments(period: np.ndarray, knots, per: float) -> np.ndarray:
    """The slope-change inputs of a piecewise linear trend, one column per knot: the time spent in the
    segment that starts at the knot, ``min((t - knot_k)_+, knot_(k+1) - knot_k) / per`` (the last one's
    ``(t - knot_k)_+ / per``), so that each coefficient is its segment's slope less the first segment's. The
    same functions as hinges ``(t - knot_k)_+`` (whose coefficients are the slope's changes, the differences
    of these), but nearly orthogonal: where the data pin a segment's slope down, hinge coefficients are pinned
    only as sums of neighbours, a ridge NUTS crawls along (measured on Stallion's bottom model, 2 x 800 draws:
    51 s with segments against 172 s with hinges, the same forecasts)."""
    t = np.asarray(period, dtype="float64")[:, None]
    knots = np.asarray(knots, dtype="float64")
    width = np.append(np.diff(knots), np.inf)[None, :]
    return np.minimum(np.maximum(t - knots[None, :], 0.0), width) / per


def seasonalities(spec: dict) -> list[dict]:
    """The bottom model's seasonalities: ``bottom.seasonalities``, else the model's one, named ``season``."""
    own = spec["bottom"].get("seasonalities")
    if own:
        return [dict(s) for s in own]
    s = spec["model"].get("seasonality")
    return [{"name": "season", **s}] if s else []


def effect_hierarchies(spec: dict, effect: str) -> list[str]:
    """The hierarchies an effect varies along (``[]``: shared)."""
    cfg = spec["bottom"].get("effects", {})
    default = list(spec["bottom"]["hierarchies"]) if effect == "intercept" else SHARED
    if effect == "changepoints":  # the trend's slope changes vary as the trend does
        default = effect_hierarchies(spec, "trend") or SHARED
    if effect == "shifts":  # level shifts vary as the level (the intercept) does
        default = effect_hierarchies(spec, "intercept") or SHARED
    is_season = any(s["name"] == effect for s in seasonalities(spec))
    value = cfg.get(effect, cfg.get("season", default) if is_season else default)
    value = [value] if isinstance(value, str) else list(value)
    return [] if value == [SHARED] else value


def shock_components(spec: dict) -> list[str]:
    """``bottom.effects.shock``: ``shared`` (one shock per period for every series) and/or hierarchies (one
    per unit of the hierarchy's bottom column and period), e.g. ``[shared, sku]``."""
    value = spec["bottom"].get("effects", {}).get("shock", [])
    return [value] if isinstance(value, str) else list(value)


SIZE = "size"  # ``bottom.dispersion: size``: the noise parameter scales with a power of each series' size


def series_log_size(y: np.ndarray, series_idx: np.ndarray, n: int) -> np.ndarray:
    """Each series' log mean over its fitted rows, centred at the median series (0 for a series of the median's
    size); a series whose mean is 0 takes the smallest positive mean (its size says nothing)."""
    means = np.bincount(series_idx, weights=y, minlength=n) / np.maximum(np.bincount(series_idx, minlength=n), 1)
    positive = means[means > 0]
    floor = positive.min() if positive.size else 1.0
    log_size = np.log(np.maximum(means, floor))
    return log_size - np.median(log_size)


def aux_units(spec: dict) -> dict:
    """The auxiliary parameters that vary by unit: ``bottom.dispersion`` / ``bottom.hurdle`` -> the hierarchy
    (its bottom units) or ``series`` they vary along, or ``size`` (a power of each series' size,
    :func:`series_log_size`) (:func:`hbm.model.builder.varying_aux`)."""
    return {k: v for k in ("dispersion", "hurdle") if (v := spec["bottom"].get(k, SHARED)) != SHARED}


def price_units(spec: dict, unit_of: dict, series_idx: np.ndarray) -> np.ndarray:
    """Each row's price reference unit: the unit of the intercept's first hierarchy (e.g. the product).

    The log price enters relative to the mean log price of that unit over the fitted rows, not of each
    series: a store that charges more than the chain's other stores for the same product sells less, and
    the intercept (``a[product] + b[store]``, no term per series) cannot absorb such a difference. The
    product's own price level is absorbed by its intercept. With a shared intercept: one chain-wide mean."""
    hierarchies = effect_hierarchies(spec, "intercept")
    if not hierarchies:
        return np.zeros(len(series_idx), dtype="int64")
    return np.asarray(unit_of[hierarchies[0]], dtype="int64")[series_idx]


def event_indicators(events: pd.DataFrame, df: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Rows x events: 1 where a row's period and series match an event's row (its key columns; None: any)."""
    x = np.zeros((len(df), len(names)))
    column = {n: k for k, n in enumerate(names)}
    period = df[PERIOD].to_numpy("int64")
    keys = [c for c in events.columns if c not in (EVENT_COLUMN, PERIOD)]
    text = {c: df[c].astype(str).to_numpy() for c in keys}
    for r in events.to_dict("records"):
        if r[EVENT_COLUMN] not in column:
            continue
        hit = period == r[PERIOD]
        for c in keys:
            if r[c] is not None:
                hit &= text[c] == r[c]
        x[hit, column[r[EVENT_COLUMN]]] = 1.0
    return x


def design(df: pd.DataFrame, spec: dict, like: BottomData | None = None,
           events: pd.DataFrame | None = None) -> BottomData:
    """The bottom model's arrays for ``df`` (one row per series and period; see :func:`hbm.bottom.table`).

    ``like``: the design of a fitted model: new rows (forecasts) get its series, units and scaling.
    ``events``: the checked events table (:func:`hbm.events.read_events`), with ``bottom.events``."""
    bottom, cols, model = spec["bottom"], spec["columns"], spec["model"]
    keys = df[bottom["series"]].astype(str)
    label = keys.iloc[:, 0].str.cat([keys[c] for c in keys.columns[1:]], sep=SEP) if len(keys.columns) > 1 \
        else keys.iloc[:, 0]
    cat = pd.Categorical(label, categories=like.series if like else None)
    if like is not None and (cat.codes < 0).any():
        raise ValueError(f"series {label[cat.codes < 0].iloc[0]!r} is not a series of the fitted model")
    series_idx = cat.codes.astype("int64")
    series = [str(s) for s in cat.categories]
    first = pd.Series(np.arange(len(df))).groupby(series_idx).first()
    if like is not None:
        hierarchies, unit_of = like.hierarchies, like.unit_of
    else:
        hierarchies, unit_of = {}, {}
        for name, chain in bottom["hierarchies"].items():
            codes = [pd.Categorical(df[c].astype(str)) for c in chain]
            layers = []
            for i, c in enumerate(chain):
                up = None
                if i + 1 < len(chain):
                    up = np.zeros(len(codes[i].categories), dtype="int64")
                    up[codes[i].codes] = codes[i + 1].codes
                layers.append(Layer(c, [str(x) for x in codes[i].categories], up))
            hierarchies[name] = layers
            unit_of[name] = np.asarray(codes[0].codes, dtype="int64")[first.reindex(range(len(series))).to_numpy()]
        if any(SERIES_DIM in effect_hierarchies(spec, e) for e in (*BOTTOM_EFFECTS, *(s["name"] for s in seasonalities(spec)))) \
                or SERIES_DIM in aux_units(spec).values():
            # ``series``: one deviation per bottom series (e.g. an agency's own level of one SKU beyond the
            # SKU's and the agency's), a one-layer hierarchy of its own
            hierarchies[SERIES_DIM] = [Layer(SERIES_DIM, series, None)]
            unit_of[SERIES_DIM] = np.arange(len(series), dtype="int64")
    period = df[PERIOD].to_numpy("int64")
    ref = dict(like.reference) if like else {}
    n = len(df)
    effects = {"intercept": Effect("intercept", np.ones((n, 1)), effect_hierarchies(spec, "intercept"))}
    if model.get("trend"):
        ref.setdefault("t_centre", float(period.min() + period.max()) / 2)
        u = (period - ref["t_centre"]) / model["trend"]["per"]
        effects["trend"] = Effect("trend", u[:, None], effect_hierarchies(spec, "trend"))
    coords = {SERIES_DIM: series, OBS_DIM: np.arange(n)}
    if model.get("trend") and bottom.get("changepoints"):
        # a piecewise linear trend: each segment's slope departs from the first's by the (pooled) coefficient
        # of its input (:func:`segments`), less the input's least-squares line in u over the fitted periods'
        # grid, so that ``trend`` stays the overall slope and each segment a departure from it
        per, u_of = model["trend"]["per"], lambda t: (t - ref["t_centre"]) / model["trend"]["per"]
        if "changepoints" not in ref:
            lo, hi = float(period.min()), float(period.max())
            k = int(bottom["changepoints"])
            ref["changepoints"] = (lo + CHANGEPOINT_RANGE * (hi - lo) * np.arange(1, k + 1) / (k + 1)).tolist()
            grid = np.arange(lo, hi + 1)
            line = np.column_stack([np.ones_like(grid), u_of(grid)])
            ref["changepoint_lines"] = np.linalg.lstsq(line, segments(grid, ref["changepoints"], per),
                                                       rcond=None)[0].T.tolist()  # (k, 2)
        knots, lines = np.asarray(ref["changepoints"]), np.asarray(ref["changepoint_lines"])
        x = segments(period, knots, per)
        x = x - lines[None, :, 0] - lines[None, :, 1] * u_of(period)[:, None]
        along = effect_hierarchies(spec, "changepoints")
        # a unit that starts after a segment has ended (a SKU launched late) sees that segment's input as a
        # constant, which only its intercept should carry: the input is 0 for its rows, and the segment's
        # coefficient for the unit is left to the prior (measured on Stallion: a SKU sold for its last 14
        # months only had its series' intercepts at R-hat 1.22 against the elapsed segments' coefficients)
        if "changepoint_starts" not in ref:
            ref["changepoint_starts"] = {h: np.asarray(pd.Series(period).groupby(unit_of[h][series_idx]).min()
                                                       .reindex(range(len(hierarchies[h][0].labels)))
                                                       .fillna(float(period.max()) + 1)).tolist() for h in along if h != SERIES_DIM}
        ends = np.append(knots[1:], np.inf)
        for h, starts in ref["changepoint_starts"].items():
            first = np.asarray(starts, dtype="float64")[unit_of[h][series_idx]]
            x = np.where(first[:, None] >= ends[None, :], 0.0, x)
        names = [f"t{c:.1f}" for c in knots]
        effects["changepoints"] = Effect("changepoints", x, along, CHANGEPOINT_DIM, names)
        coords[CHANGEPOINT_DIM] = names
    if bottom.get("shifts"):
        # level shifts: from each knot on, the level moves by the (pooled) coefficient of its step
        # 1[t >= knot], less the step's mean over the fitted periods' grid (so the intercept stays the mean
        # level over the fitted periods). Knots split the fitted periods into k + 1 equal spans, the last one
        # included: a level that moved lately is the level forecast (a step does not extrapolate, unlike a slope)
        if "shifts" not in ref:
            lo, hi = float(period.min()), float(period.max())
            k = int(bottom["shifts"])
            ref["shifts"] = np.round(lo + (hi - lo + 1) * np.arange(1, k + 1) / (k + 1), 1).tolist()
            grid = np.arange(lo, hi + 1)
            ref["shift_means"] = (grid[:, None] >= np.asarray(ref["shifts"])[None, :]).mean(axis=0).tolist()
        knots = np.asarray(ref["shifts"])
        x = (period[:, None] >= knots[None, :]).astype("float64") - np.asarray(ref["shift_means"])[None, :]
        names = [f"t{c:.1f}" for c in knots]
        effects["shifts"] = Effect("shifts", x, effect_hierarchies(spec, "shifts"), SHIFT_DIM, names)
        coords[SHIFT_DIM] = names
    if "shock" in bottom.get("effects", {}):
        # one shock per period, shared by every series: what moves all series together in a period beyond
        # trend and season; periods after the fitted ones get new shocks in forecasts
        fitted_periods = np.asarray(like.coords[SHOCK_DIM] if like is not None else np.unique(period), dtype="int64")
        pos = pd.Index(fitted_periods).get_indexer(period)
        new_periods = np.unique(period[pos < 0])
        pos[pos < 0] = len(fitted_periods) + np.searchsorted(new_periods, period[pos < 0])
        effects["shock"] = Effect("shock", np.ones((n, 1)), [], index=pos.astype("int64"), new=len(new_periods),
                                  components=shock_components(spec))
        coords[SHOCK_DIM] = fitted_periods.tolist()
        if len(new_periods):
            coords[SHOCK_NEW_DIM] = new_periods.tolist()
    for s in seasonalities(spec):
        F, names = fourier_terms(period, s["period"], s["order"])
        dim = FOURIER_DIM if s["name"] == "season" else f"{s['name']}_{FOURIER_DIM}"
        effects[s["name"]] = Effect(s["name"], F, effect_hierarchies(spec, s["name"]), dim, names)
        coords[dim] = names
    if cols.get("price"):
        logp = np.log(df[cols["price"]].to_numpy("float64"))
        price_unit = price_units(spec, unit_of, series_idx)
        if "mean_log_price" not in ref:
            k = int(price_unit.max()) + 1 if len(price_unit) else 1
            sums = np.bincount(price_unit, weights=logp, minlength=k)
            ref["mean_log_price"] = (sums / np.maximum(np.bincount(price_unit, minlength=k), 1)).tolist()
        x = logp - np.asarray(ref["mean_log_price"])[price_unit]
        effects["elasticity"] = Effect("elasticity", x[:, None], effect_hierarchies(spec, "elasticity"))
    if cols.get("promotion"):
        effects["promotion"] = Effect("promotion", df[cols["promotion"]].to_numpy("float64")[:, None],
                                      effect_hierarchies(spec, "promotion"))
    if events is not None:
        names = list(like.coords[EVENT_DIM]) if like is not None else sorted(set(events[EVENT_COLUMN]))
        effects["events"] = Effect("events", event_indicators(events, df, names), effect_hierarchies(spec, "events"),
                                   EVENT_DIM, names)
        coords[EVENT_DIM] = names
    if SIZE in aux_units(spec).values() and "series_log_size" not in ref:
        ref["series_log_size"] = series_log_size(df[cols["target"]].to_numpy("float64"), series_idx, len(series)).tolist()
    for name, layers in hierarchies.items():
        for layer in layers:
            coords[layer.column] = layer.labels
    return BottomData(family=model["family"], target=cols["target"], y=df[cols["target"]].to_numpy("float64"),
                      series=series, series_idx=series_idx, hierarchies=hierarchies, unit_of=unit_of,
                      effects=effects, period=period, coords=coords, reference=ref,
                      aux_units=dict(like.aux_units) if like else aux_units(spec),
                      fitted=(like.fitted or like) if like else None)
