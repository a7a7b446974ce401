"""Load and validate analysis configs.

Each analysis is one YAML file checked against ``workflow/schemas/analysis.schema.yaml``: every schema
violation is collected and reported at once, naming the file and the key; then Snakemake's own
``validate`` fills in the schema's defaults; then checks that a schema cannot express run.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from hbm.errors import ConfigError
from hbm.model import families
from hbm.model.design import BOTTOM_EFFECTS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"
ANALYSIS_SCHEMA = SCHEMA_DIR / "analysis.schema.yaml"
WORKFLOW_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
MAX_YAML_ALIASES = 100


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags) that also refuses alias bombs."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._hbm_aliases = getattr(self, "_hbm_aliases", 0) + 1
            if self._hbm_aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (a YAML alias bomb?)")
        return super().compose_node(parent, index)


def load_yaml(path) -> dict:
    """Read a YAML mapping safely; errors name the file (and the line for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_SafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def _schema(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _key(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def schema_errors(data: dict, schema_path: Path) -> list[str]:
    """Every violation of the schema, as ``key 'a.b': message`` strings, in document order."""
    validator = jsonschema.Draft202012Validator(_schema(schema_path))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"key '{_key(e)}': {e.message}" for e in errors]


def validate_analysis(data: dict, path) -> dict:
    """Validate one analysis config and return it with defaults filled in (the input is not changed)."""
    problems = schema_errors(data, ANALYSIS_SCHEMA)
    if problems:
        raise ConfigError(_listing(path, problems))
    cfg = copy.deepcopy(data)
    from snakemake.utils import validate

    validate(cfg, str(ANALYSIS_SCHEMA), set_default=True)
    problems = semantic_errors(cfg)
    if problems:
        raise ConfigError(_listing(path, problems))
    return cfg


def semantic_errors(cfg: dict) -> list[str]:
    """Checks the schema cannot express; each names its key."""
    problems = []
    cols, model, checks = cfg["columns"], cfg["model"], cfg["checks"]
    sampler = cfg["inference"]["sampler"]
    for key, inf in [("inference", cfg["inference"]), ("bottom.inference", (cfg.get("bottom") or {}).get("inference", {})),
                     *[(f"levels.{n}.inference", lv.get("inference", {})) for n, lv in cfg["levels"].items()]]:
        if inf.get("adaptation", "diag") != "diag" and sampler != "nutpie":
            problems.append(f"key '{key}.adaptation': '{inf['adaptation']}' is nutpie's; 'inference.sampler' is "
                            f"'{sampler}' (only 'diag')")
    if model["noise"] == "known" and not cols["measurement_sd"]:
        problems.append("key 'model.noise': 'known' needs the column of known sds in 'columns.measurement_sd'")
    if cols["measurement_sd"] and model["noise"] != "known":
        problems.append(
            f"key 'columns.measurement_sd': given, but 'model.noise' is '{model['noise']}'; set it to 'known'"
        )
    problems += _count_family_errors(cfg)
    problems += _bottom_errors(cfg)
    rng = checks["plausible_range"]
    if rng is not None and not rng[0] < rng[1]:
        problems.append(f"key 'checks.plausible_range': low must be below high, got {rng}")
    roles = {"columns.target": [cols["target"]], "columns.time": [cols["time"]] if cols["time"] else [],
             "columns.measurement_sd": [cols["measurement_sd"]] if cols["measurement_sd"] else [],
             "columns.price": [cols["price"]] if cols["price"] else [],
             "columns.promotion": [cols["promotion"]] if cols["promotion"] else [],
             "columns.covariates": cols["covariates"]}
    for name, level in cfg["levels"].items():
        roles[f"levels.{name}.predictors"] = level["predictors"]
    group_cols = {c for lv in cfg["levels"].values() for c in [lv["column"], *lv["parents"]]}
    seen: dict[str, str] = {}
    for key, names in roles.items():
        for c in names:
            if c in group_cols and key != "columns.target":
                problems.append(f"key '{key}': column '{c}' is also a group column of a level")
            elif c in seen and seen[c] != key and not (key.startswith("levels.") and seen[c].startswith("levels.")):
                problems.append(f"key '{key}': column '{c}' already has the role '{seen[c]}'")
            seen.setdefault(c, key)
    for name, level in cfg["levels"].items():
        for key, value in ((f"levels.{name}", name), *((f"levels.{name}.parents", p) for p in level["parents"])):
            if value in RESERVED_NAMES:
                problems.append(f"key '{key}': '{value}' is a name hbm's models use for a dimension or variable; "
                                f"rename the {'level' if key == f'levels.{name}' else 'column'}")
        used = [level["column"], *level["parents"]]
        if cols["target"] in used:
            problems.append(f"key 'levels.{name}': the target column '{cols['target']}' cannot be a group column")
        if len(set(used)) != len(used):
            problems.append(f"key 'levels.{name}.parents': repeats the level's own column '{level['column']}'")
        clash = set(level["predictors"]) & set(cols["covariates"])
        if clash:
            problems.append(
                f"key 'levels.{name}.predictors': {sorted(clash)} also listed in 'columns.covariates'"
            )
    return problems


LOG_LINK_FAMILIES = families.log_link_families()
# Dimension and variable names of the models (hbm/models.py) and of ArviZ: a level or parent column
# with one of these names would collide with them in the InferenceData.
RESERVED_NAMES = frozenset({
    "obs_id", "covariate", "predictor", "fourier", "chain", "draw", "sample",
    "y", "mu", "tau", "theta", "sigma", "beta", "gamma", "alpha", "alpha_inv_sqrt", "offset", "elasticity",
    "promo_lift", "trend", "trend_mu", "trend_tau", "season", "season_mu", "season_tau",
    "nu", "psi", "cv", "shape",  # the families' auxiliary parameters (hbm/model/families.py)
})


def is_log_link(model: dict) -> bool:
    """Whether the model's family has a log link (time effects, price, promotion, forecasts; rows summed per
    unit and period)."""
    return families.get(model["family"]).log_link



def _count_family_errors(cfg: dict) -> list[str]:
    """Time effects, price, promotion and forecasts belong to the log-link families and need a time column."""
    cols, model, forecast = cfg["columns"], cfg["model"], cfg["forecast"]
    problems = []
    count_only = {"model.trend": model["trend"], "model.seasonality": model["seasonality"],
                  "columns.price": cols["price"], "columns.promotion": cols["promotion"],
                  "columns.series": cols["series"],
                  "forecast.horizon": forecast["horizon"], "forecast.holdout": forecast["holdout"]}
    for key, value in count_only.items():
        if value and not is_log_link(model):
            problems.append(f"key '{key}': needs a log-link family ('model.family': "
                            f"{', '.join(LOG_LINK_FAMILIES)}), not '{model['family']}'")
        elif value and (key.split(".")[0] in ("model", "forecast") or key == "columns.series") and not cols["time"]:
            problems.append(f"key '{key}': needs a time column ('columns.time')")
    if is_log_link(model) and cols["measurement_sd"]:
        identity = ", ".join(n for n, f in families.FAMILIES.items() if not f.log_link)
        problems.append(f"key 'columns.measurement_sd': known sds belong to the identity-link families ({identity})")
    season = model["seasonality"]
    if season and 2 * season["order"] >= season["period"]:
        problems.append(f"key 'model.seasonality.order': {season['order']} sine/cosine pairs need a period above "
                        f"{2 * season['order']}, got {season['period']}")
    for key in ("target", "time", "price", "promotion", "measurement_sd"):
        if (cols[key] or "").startswith("_"):
            problems.append(f"key 'columns.{key}': column names starting with '_' are reserved for hbm")
    return problems




def _bottom_errors(cfg: dict) -> list[str]:
    """The bottom model's section: hierarchies that start at a series column, effects that exist and name
    hierarchies, a log-link family, a time column."""
    b = cfg.get("bottom")
    if not b:
        return []
    cols, model, problems = cfg["columns"], cfg["model"], []
    if "bottom" in cfg["levels"]:
        problems.append("key 'levels.bottom': with a 'bottom' section, 'bottom' names the bottom model "
                        "(its results, its recovery); rename the level")
    if not is_log_link(model):
        problems.append(f"key 'bottom': needs a log-link family ('model.family': {', '.join(LOG_LINK_FAMILIES)}), "
                        f"not '{model['family']}'")
    if not cols["time"]:
        problems.append("key 'bottom': needs a time column ('columns.time')")
    seen: dict[str, str] = {}
    for name, chain in b["hierarchies"].items():
        if chain[0] != name:
            problems.append(f"key 'bottom.hierarchies.{name}': starts with '{chain[0]}'; a hierarchy is named "
                            f"after its bottom column (write '{chain[0]}: {chain}')")
        if chain[0] not in b["series"]:
            problems.append(f"key 'bottom.hierarchies.{name}': its bottom column '{chain[0]}' is not one of "
                            f"'bottom.series' {b['series']}")
        for c in chain:
            if c in seen:
                problems.append(f"key 'bottom.hierarchies.{name}': column '{c}' is also in hierarchy '{seen[c]}'")
            seen.setdefault(c, name)
            if c in RESERVED_NAMES or c in ("series", "intercept", "promotion", "total"):
                problems.append(f"key 'bottom.hierarchies.{name}': '{c}' is a name hbm's models use; rename the column")
            if c in (cols["target"], cols["time"], cols["price"], cols["promotion"], *cols["covariates"]):
                problems.append(f"key 'bottom.hierarchies.{name}': column '{c}' already has another role")
    seasons = [s["name"] for s in (b.get("seasonalities") or [])]
    available = {"intercept": True, "trend": bool(model["trend"]), "season": bool(seasons or model["seasonality"]),
                 "elasticity": bool(cols["price"]), "promotion": bool(cols["promotion"]),
                 "events": bool(b.get("events")), "shock": True,
                 "changepoints": bool(model["trend"] and b.get("changepoints")), "shifts": bool(b.get("shifts")),
                 **{s: True for s in seasons}}
    needs = {"trend": "'model.trend'", "season": "a seasonality", "elasticity": "'columns.price'",
             "promotion": "'columns.promotion'", "events": "'bottom.events'",
             "changepoints": "'model.trend' and 'bottom.changepoints'", "shifts": "'bottom.shifts'"}
    if b.get("changepoints") and not model["trend"]:
        problems.append("key 'bottom.changepoints': the slope changes of a trend need 'model.trend'")
    shock = b.get("effects", {}).get("shock")
    if shock is not None and "series" in ([shock] if isinstance(shock, str) else shock):
        problems.append("key 'bottom.effects.shock': 'series'; a shock per series and period would be the noise "
                        "itself: name 'shared' and/or hierarchies")
    for effect, value in b.get("effects", {}).items():
        if effect not in available:
            problems.append(f"key 'bottom.effects.{effect}': not an effect; one of "
                            f"{sorted(set(BOTTOM_EFFECTS) | set(seasons))}")
            continue
        if not available[effect]:
            problems.append(f"key 'bottom.effects.{effect}': the model has no {effect} (needs {needs[effect]})")
        for h in [value] if isinstance(value, str) else value:
            if h not in ("shared", "series") and h not in b["hierarchies"]:
                problems.append(f"key 'bottom.effects.{effect}': '{h}' is not a hierarchy of 'bottom.hierarchies' "
                                f"{sorted(b['hierarchies'])} (or 'series', or 'shared')")
    for key in ("dispersion", "hurdle"):
        along = b.get(key, "shared")
        if along == "size" and "size" in b["hierarchies"]:
            problems.append(f"key 'bottom.{key}': 'size' is both a hierarchy of 'bottom.hierarchies' and the "
                            "keyword for the series' size; rename the hierarchy")
        if along not in ("shared", "series", "size") and along not in b["hierarchies"]:
            problems.append(f"key 'bottom.{key}': '{along}' is not a hierarchy of 'bottom.hierarchies' "
                            f"{sorted(b['hierarchies'])} (or 'series', 'size' or 'shared')")
    if b.get("hurdle", "shared") != "shared" and not model["family"].startswith("hurdle_"):
        problems.append(f"key 'bottom.hurdle': the family '{model['family']}' has no hurdle (a hurdle_ family has)")
    for i, s in enumerate(b.get("seasonalities") or []):
        if s["name"] in BOTTOM_EFFECTS or s["name"] in b["hierarchies"]:
            problems.append(f"key 'bottom.seasonalities.{i}.name': '{s['name']}' is taken by an effect or hierarchy")
        if 2 * s["order"] >= s["period"]:
            problems.append(f"key 'bottom.seasonalities.{i}.order': {s['order']} sine/cosine pairs need a period "
                            f"above {2 * s['order']}, got {s['period']}")
    return problems


def _listing(path, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{path}: {problems[0]}"
    return f"{path}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


def load_analysis(path) -> dict:
    """Load, validate and complete one analysis config file."""
    return validate_analysis(load_yaml(path), path)


def load_analyses(config: dict, source: str = "config") -> dict[str, dict]:
    """The analyses a workflow config names, keyed by analysis name (names must be unique)."""
    problems = schema_errors(config, WORKFLOW_SCHEMA)
    if problems:
        raise ConfigError(_listing(source, problems))
    paths = config["analyses"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    analyses: dict[str, dict] = {}
    origin: dict[str, str] = {}
    for p in paths:
        cfg = load_analysis(p)
        if cfg["name"] in analyses:
            raise ConfigError(f"{p}: key 'name': '{cfg['name']}' is already the name of {origin[cfg['name']]}")
        cfg["config_file"] = str(p)
        analyses[cfg["name"]] = cfg
        origin[cfg["name"]] = str(p)
    return analyses


def level_inference(analysis: dict, level: str) -> dict:
    """The sampler settings of one level: the analysis's, updated by the level's own ``inference``."""
    return {**analysis["inference"], **analysis["levels"][level].get("inference", {})}


def level_spec(analysis: dict, level: str) -> dict:
    """What one level's jobs depend on: column roles, the level's hierarchy and the model.

    Rules pass this through ``params:``, so editing any of it reruns exactly that level's jobs.
    """
    own = analysis["levels"][level]
    hierarchy = {k: own[k] for k in ("column", "parents", "predictors")}
    model = dict(analysis["model"])
    if own.get("parametrization"):
        model["parametrization"] = own["parametrization"]
    if own.get("priors"):
        model["priors"] = {**model.get("priors", {}), **own["priors"]}
    return {
        "analysis": analysis["name"],
        "level": level,
        "columns": analysis["columns"],
        "hierarchy": hierarchy,
        "model": model,
        "holdout": analysis.get("forecast", {}).get("holdout", 0),
    }


def level_data_spec(analysis: dict, level: str) -> dict:
    """The part of ``level_spec`` that makes a level's table (``aggregate``) and relates levels (``coherence``):
    column roles, the level's hierarchy, the family and the holdout; not priors or parametrization, so
    editing those reruns the level's model jobs but not its table."""
    spec = level_spec(analysis, level)
    return {**spec, "model": {"family": spec["model"]["family"]}}


def data_levels(analysis: dict) -> dict:
    """What ``ingest`` needs of the levels: each level's column, parents and predictors (not its priors,
    parametrization or sampler settings, so editing those does not re-ingest the data), and each hierarchy
    of the bottom model as ``bottom.<name>`` (its columns are read and its nesting checked the same way)."""
    out = {name: {k: lv[k] for k in ("column", "parents", "predictors")} for name, lv in analysis["levels"].items()}
    for name, chain in ((analysis.get("bottom") or {}).get("hierarchies") or {}).items():
        out[f"bottom.{name}"] = {"column": chain[0], "parents": list(chain[1:]), "predictors": []}
    return out


def bottom_spec(analysis: dict) -> dict:
    """What the bottom model's jobs depend on: column roles, the bottom section (without its sampler
    settings), the model (priors overridden by ``bottom.priors`` in the builder), the holdout, and the
    per-level fits' columns (to compare forecasts level by level)."""
    b = {k: v for k, v in analysis["bottom"].items() if k != "inference"}
    return {
        "analysis": analysis["name"],
        "level": "bottom",
        "columns": analysis["columns"],
        "bottom": b,
        "model": analysis["model"],
        "holdout": analysis.get("forecast", {}).get("holdout", 0),
        "levels": {name: {"hierarchy": {"column": lv["column"], "parents": list(lv["parents"])}}
                   for name, lv in analysis["levels"].items()},
    }


def bottom_inference(analysis: dict) -> dict:
    """The bottom model's sampler settings: the analysis's, updated by ``bottom.inference``."""
    return {**analysis["inference"], **analysis["bottom"].get("inference", {})}


def results_folder(path: str, workdir: str) -> str:
    """The workflow's ``results`` as the paths of every output are written: relative to the working
    directory when inside it, else absolute. Snakemake keys each output's record (its params, code and
    input) by the path as written, so `results=results` and `results=$PWD/results` must write the same files
    the same way: otherwise a run with the other spelling finds no record, takes every output as up to date,
    and a changed config reruns nothing."""
    full = os.path.normpath(os.path.abspath(os.path.join(workdir, os.path.expanduser(path))))
    inside = os.path.relpath(full, workdir)
    return full if inside == ".." or inside.startswith(f"..{os.sep}") else inside


QUICK_INFERENCE = {"chains": 2, "draws": 300, "tune": 300, "max_attempts": 1}


def quick_analysis(a: dict) -> dict:
    """The analysis as quick mode (``--config quick=true``) runs it, a copy: at most QUICK_INFERENCE's sampler
    sizes for every level and the bottom model, one attempt, no pooling comparison, no validation or recovery,
    failed diagnostics flagged, not stopping; its description says so first."""

    def shorter(inference):
        return {k: min(inference[k], v) for k, v in QUICK_INFERENCE.items()}

    q = copy.deepcopy(a)
    q["inference"].update(shorter(a["inference"]))
    for name, level in q["levels"].items():
        level["inference"] = {**level.get("inference", {}), **shorter(level_inference(a, name))}
    if q.get("bottom"):
        q["bottom"]["inference"] = {**q["bottom"].get("inference", {}), **shorter(bottom_inference(a))}
    q["checks"].update(pooling_comparison=False, on_failure="flag")
    q["validation"]["reference"] = None
    q["recovery"]["truth"] = None
    sizes = "{chains} chains x {draws} draws after {tune} tuning, one attempt".format(**q["inference"])
    note = f"Quick mode ({sizes}; no pooling comparison, validation or recovery): not for conclusions."
    q["description"] = f"{note} {a['description']}".strip()
    return q
