import os
from pathlib import Path

import pytest
import yaml

from hbm.config import level_spec, load_analyses, load_analysis, validate_analysis
from hbm.errors import ConfigError

from conftest import ROOT

BUNDLED = sorted((ROOT / "config" / "analyses").glob("*.yaml"))


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_configs_are_valid(path):
    cfg = load_analysis(path)
    assert cfg["name"] == path.stem
    assert cfg["inference"]["chains"] >= 1


BENCHMARK_CONFIGS = sorted((ROOT / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", BENCHMARK_CONFIGS, ids=[p.stem for p in BENCHMARK_CONFIGS])
def test_benchmark_configs_are_valid(path):
    # their data (../shared/data, results/benchmarks) need not exist here: the schema and the cross-checks only
    cfg = validate_analysis(yaml.safe_load(path.read_text()), path)
    assert cfg["name"] == path.stem and cfg["checks"]["on_failure"] == "flag"


def test_defaults_are_filled_from_the_schema(analysis_cfg):
    raw = analysis_cfg("grouped")
    del raw["inference"], raw["checks"]
    cfg = validate_analysis(raw, "x.yaml")
    assert cfg["inference"] == {"sampler": "nutpie", "chains": 4, "draws": 1000, "tune": 1000,
                                "target_accept": 0.9, "max_attempts": 3, "seed": 1}
    assert cfg["checks"]["thresholds"] == {"r_hat": 1.01, "ess_per_chain": 100, "divergences": 0,
                                           "ebfmi": 0.3, "pareto_k": 0.7}
    assert cfg["checks"]["on_failure"] == "stop"
    assert cfg["levels"]["group"]["parents"] == []
    assert "inference" not in raw  # the input is not changed


def _error(raw, path="config/analyses/x.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        validate_analysis(raw, path)
    return str(e.value)


def test_unknown_key_names_file_and_key(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["inference"]["drawz"] = 10
    msg = _error(raw)
    assert msg.startswith("config/analyses/x.yaml: key 'inference'")
    assert "'drawz' was unexpected" in msg


def test_wrong_type_names_key(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["inference"]["chains"] = "four"
    assert "key 'inference.chains': 'four' is not of type 'integer'" in _error(raw)


def test_missing_required_key(analysis_cfg):
    raw = analysis_cfg("grouped")
    del raw["columns"]
    assert "key '(top level)': 'columns' is a required property" in _error(raw)


def test_all_problems_are_listed_at_once(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["inference"]["draws"] = 0
    raw["model"]["family"] = "weibull"
    raw["inference"]["sampler"] = "stan"
    msg = _error(raw)
    assert "3 problems" in msg
    for key in ("inference.draws", "model.family", "inference.sampler"):
        assert f"key '{key}'" in msg


def test_prior_needs_its_parameters(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["model"]["priors"]["tau"] = {"dist": "halfcauchy"}
    assert "key 'model.priors.tau': 'beta' is a required property" in _error(raw)


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a b", ""])
def test_analysis_name_cannot_leave_results(analysis_cfg, name):
    raw = analysis_cfg("grouped")
    raw["name"] = name
    assert "key 'name'" in _error(raw)


def test_reversed_plausible_range(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["checks"]["plausible_range"] = [5, -5]
    assert "key 'checks.plausible_range': low must be below high, got [5, -5]" in _error(raw)


def test_low_rank_adaptation_is_nutpie_s(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["inference"]["adaptation"] = "low_rank"
    assert validate_analysis(raw, "x.yaml")["inference"]["adaptation"] == "low_rank"
    raw["inference"]["sampler"] = "pymc"
    raw["levels"]["group"]["inference"] = {"adaptation": "low_rank"}
    msg = _error(raw)
    assert "key 'inference.adaptation': 'low_rank' is nutpie's; 'inference.sampler' is 'pymc'" in msg
    assert "key 'levels.group.inference.adaptation'" in msg
    raw["inference"]["adaptation"] = "full"
    assert "key 'inference.adaptation': 'full' is not one of ['diag', 'low_rank']" in _error(raw)


def test_known_noise_needs_sd_column(analysis_cfg):
    raw = analysis_cfg("eight_schools")
    del raw["columns"]["measurement_sd"]
    assert "key 'model.noise': 'known' needs" in _error(raw)


def test_target_cannot_be_a_group_column(analysis_cfg):
    raw = analysis_cfg("grouped")
    raw["levels"]["group"]["column"] = "y"
    assert "key 'levels.group': the target column 'y' cannot be a group column" in _error(raw)


def test_yaml_python_tags_are_refused(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match=r"evil.yaml: not valid YAML"):
        load_analysis(p)


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 20)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_analysis(p)


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_analysis(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_analysis(p)


def test_duplicate_analysis_names(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text((ROOT / "config/analyses/grouped.yaml").read_text())
    b = tmp_path / "b.yaml"
    b.write_text((ROOT / "config/analyses/grouped.yaml").read_text())
    with pytest.raises(ConfigError, match="'grouped' is already the name of"):
        load_analyses({"analyses": [str(a), str(b)]})


def test_single_analysis_path_is_accepted():
    analyses = load_analyses({"analyses": str(ROOT / "config/analyses/radon.yaml")})
    assert list(analyses) == ["radon"]


def test_level_spec_carries_what_a_level_depends_on():
    cfg = load_analysis(ROOT / "config/analyses/radon.yaml")
    spec = level_spec(cfg, "county")
    assert spec["hierarchy"] == {"column": "county", "parents": [], "predictors": ["log_u"]}
    assert spec["columns"]["covariates"] == ["floor"]
    assert "inference" not in spec  # sampler settings reach only the fit


def test_main_config_is_valid(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    analyses = load_analyses(cfg)
    assert set(analyses) == {"retail_demand", "schools", "grouped", "eight_schools", "radon"}
    for a in analyses.values():
        assert Path(a["data"]["path"]).name in {p.name for p in (ROOT / "data").rglob("*.csv")}


def test_a_column_cannot_play_two_roles(analysis_cfg):
    raw = analysis_cfg("radon")
    raw["columns"]["covariates"] = ["floor", "county"]
    assert "key 'columns.covariates': column 'county' is also a group column of a level" in _error(raw)
    raw = analysis_cfg("radon")
    raw["columns"]["time"] = "floor"
    assert "column 'floor' already has the role 'columns.time'" in _error(raw)


def test_count_features_need_a_count_family_and_time(analysis_cfg):
    raw = analysis_cfg("retail_demand")
    raw["model"]["family"] = "normal"
    with pytest.raises(ConfigError) as e:
        validate_analysis(raw, "r.yaml")
    msg = str(e.value)
    for key in ("model.trend", "model.seasonality", "columns.price", "columns.promotion", "forecast.horizon"):
        assert f"key '{key}': needs a log-link family ('model.family': lognormal, gamma, poisson" in msg
    raw = analysis_cfg("retail_demand")
    raw["columns"]["time"] = None
    with pytest.raises(ConfigError, match=r"key 'model.trend': needs a time column \('columns.time'\)"):
        validate_analysis(raw, "r.yaml")


def test_seasonality_order_must_fit_the_period(analysis_cfg):
    raw = analysis_cfg("retail_demand")
    raw["model"]["seasonality"] = {"period": 7, "order": 4}
    with pytest.raises(ConfigError, match=r"r.yaml: key 'model.seasonality.order': 4 sine/cosine pairs need a "
                                          r"period above 8, got 7"):
        validate_analysis(raw, "r.yaml")


def test_parametrization_per_effect_and_level(analysis_cfg):
    from hbm.config import level_inference

    raw = analysis_cfg("retail_demand")
    assert "parametrization" not in raw["model"]  # the bundled example uses the default: auto
    raw["levels"]["store"]["parametrization"] = {"intercept": "centered", "trend": "noncentered", "season": "auto"}
    raw["levels"]["store"]["inference"] = {"target_accept": 0.99}
    raw["levels"]["region"]["inference"] = {"draws": 2000}
    cfg = validate_analysis(raw, "r.yaml")
    spec = level_spec(cfg, "store")
    assert spec["model"]["parametrization"] == {"intercept": "centered", "trend": "noncentered", "season": "auto"}
    assert level_spec(cfg, "product")["model"]["parametrization"] == "auto"
    assert spec["hierarchy"] == {"column": "store", "parents": ["region"], "predictors": []}
    assert spec["holdout"] == 8
    assert level_inference(cfg, "store")["target_accept"] == 0.99
    assert level_inference(cfg, "region")["draws"] == 2000
    assert level_inference(cfg, "product")["target_accept"] == cfg["inference"]["target_accept"]
    raw = analysis_cfg("retail_demand")
    raw["levels"]["store"]["parametrization"] = {"slope": "centered"}
    with pytest.raises(ConfigError, match=r"key 'levels.store.parametrization'"):
        validate_analysis(raw, "r.yaml")


def _retail() -> dict:
    return yaml.safe_load((ROOT / "config/analyses/retail_demand.yaml").read_text())


def test_bottom_model_section_is_checked_key_by_key():
    cfg = _retail()
    cfg["bottom"]["hierarchies"]["store"] = ["region", "store"]  # not named after its bottom column
    cfg["bottom"]["effects"].update(trend="brand", holiday="store")
    msg = _error(cfg)
    assert "key 'bottom.hierarchies.store': starts with 'region'" in msg
    assert "key 'bottom.effects.trend': 'brand' is not a hierarchy" in msg
    assert "key 'bottom.effects.holiday': not an effect" in msg
    cfg = _retail()
    cfg["bottom"]["effects"]["intercept"] = ["product", "store", "series"]  # one deviation per series
    validate_analysis(cfg, "r.yaml")
    cfg = _retail()
    cfg["model"] = {"family": "normal"}
    cfg["forecast"] = {}
    cfg["columns"].update(price=None, promotion=None)
    assert "key 'bottom': needs a log-link family" in _error(cfg)
    cfg = _retail()
    cfg["bottom"]["effects"]["elasticity"] = "product"
    cfg["columns"]["price"] = None
    assert "key 'bottom.effects.elasticity': the model has no elasticity (needs 'columns.price')" in _error(cfg)
    cfg = _retail()
    cfg["bottom"]["effects"]["events"] = "store"
    assert "key 'bottom.effects.events': the model has no events (needs 'bottom.events')" in _error(cfg)
    cfg["bottom"]["events"] = "data/events.csv"
    validate_analysis(cfg, "r.yaml")
    cfg = _retail()
    cfg["bottom"]["effects"]["shock"] = ["shared", "series"]  # a shock per series and period: the noise itself
    assert "key 'bottom.effects.shock': 'series'; a shock per series and period would be the noise" in _error(cfg)
    cfg["bottom"]["effects"]["shock"] = ["shared", "shop"]
    assert "key 'bottom.effects.shock': 'shop' is not a hierarchy" in _error(cfg)
    cfg["bottom"]["effects"]["shock"] = ["shared", "store"]
    validate_analysis(cfg, "r.yaml")
    cfg["bottom"]["effects"]["shock"] = "shared"
    cfg["bottom"]["changepoints"] = 4
    validate_analysis(cfg, "r.yaml")
    cfg["model"]["trend"] = None
    assert "key 'bottom.changepoints': the slope changes of a trend need 'model.trend'" in _error(cfg)
    cfg = _retail()
    cfg["bottom"]["shifts"] = 8
    cfg["bottom"]["dispersion"] = "series"
    validate_analysis(cfg, "r.yaml")
    cfg["bottom"]["dispersion"] = "shop"
    assert "key 'bottom.dispersion': 'shop' is not a hierarchy of 'bottom.hierarchies' ['product', 'store']" in _error(cfg)
    cfg["bottom"]["dispersion"] = "size"  # one slope on the series' log size
    validate_analysis(cfg, "r.yaml")
    renamed = _retail()
    renamed["bottom"]["dispersion"] = "size"
    renamed["bottom"]["hierarchies"]["size"] = renamed["bottom"]["hierarchies"].pop("store")
    renamed["bottom"]["effects"] = {"intercept": ["product", "size"]}
    assert "key 'bottom.dispersion': 'size' is both a hierarchy of 'bottom.hierarchies' and the keyword" in \
        _error(renamed)
    cfg["bottom"]["dispersion"] = "store"
    cfg["bottom"]["hurdle"] = "series"  # retail_demand is negative binomial: no hurdle
    assert "key 'bottom.hurdle': the family 'negative_binomial' has no hurdle" in _error(cfg)


def test_bottom_spec_and_data_levels_carry_the_hierarchies():
    from hbm.config import bottom_inference, bottom_spec, data_levels

    cfg = validate_analysis(_retail(), "retail_demand.yaml")
    spec = bottom_spec(cfg)
    assert spec["bottom"]["hierarchies"] == {"product": ["product", "category"], "store": ["store", "region"]}
    assert "inference" not in spec["bottom"] and bottom_inference(cfg)["chains"] == cfg["inference"]["chains"]
    assert data_levels(cfg)["bottom.store"] == {"column": "store", "parents": ["region"], "predictors": []}
    cfg["bottom"]["inference"] = {"target_accept": 0.95}
    assert bottom_inference(cfg)["target_accept"] == 0.95 and bottom_spec(cfg) == spec  # sampler settings: not in spec


def test_quick_mode_shortens_every_fit_and_turns_off_the_extras():
    from hbm.config import QUICK_INFERENCE, bottom_inference, level_inference, quick_analysis

    a = load_analysis(ROOT / "config" / "analyses" / "retail_demand.yaml")
    a["levels"]["store"]["inference"] = {"draws": 5000, "target_accept": 0.95}
    a["bottom"]["inference"] = {"draws": 3000, "tune": 50}
    q = quick_analysis(a)
    for inference in [level_inference(q, name) for name in q["levels"]] + [bottom_inference(q)]:
        assert all(inference[k] <= v for k, v in QUICK_INFERENCE.items()), inference
    assert level_inference(q, "store")["target_accept"] == 0.95  # other settings are kept
    assert bottom_inference(q)["tune"] == 50 and bottom_inference(q)["draws"] == 300
    assert q["checks"]["pooling_comparison"] is False and q["checks"]["on_failure"] == "flag"
    assert q["recovery"]["truth"] is None and q["description"].startswith("Quick mode (2 chains x 300 draws")
    assert a["bottom"]["inference"]["draws"] == 3000  # the analysis itself is left as it was


def test_results_folder_has_one_spelling_per_place(tmp_path):
    """Inside the working directory the results folder is written relative to it, however it was given;
    outside it, absolute (Snakemake keys its records of each output by the path as written)."""
    from hbm.config import results_folder

    wd = str(tmp_path / "wd")
    assert results_folder("results", wd) == "results"
    assert results_folder(f"{wd}/results/", wd) == "results"
    assert results_folder(f"{wd}/../wd/out/a", wd) == os.path.join("out", "a")
    assert results_folder("../elsewhere", wd) == str(tmp_path / "elsewhere")
    assert results_folder("/scratch/hbm", wd) == "/scratch/hbm"
