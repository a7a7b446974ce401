import re
import tomllib

import yaml

from conftest import ROOT


def _pins(lines):
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pyproject = _pins(project["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pyproject and _pins(pip) == pyproject
    assert "python=3.11" in env["dependencies"]
    assert all("==" in d for d in project["dependencies"]), "every dependency is pinned exactly"


def test_lock_file_agrees_with_the_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert {k: lock.get(k) for k in pins} == pins


def test_installed_versions_are_the_pinned_ones():
    import importlib.metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name, version in _pins(project["dependencies"]).items():
        assert importlib.metadata.version(name) == version, name
