"""The Python version and the package pins agree everywhere they are written: pyproject.toml,
environment.yml, the Makefile's choice of interpreter and requirements.lock."""

import re
import sys
import tomllib

import yaml
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import ROOT

PYTHON = "3.12"  # the version the environments are built with (STACK.md: pymc 6 and arviz 1 need >= 3.12)


def _pins(lines):
    out = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment_yml():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return conda, pip


def _supported_pythons():
    """The X.Y versions pyproject's requires-python allows (among 3.6 ... 3.29)."""
    spec = SpecifierSet(_project()["requires-python"])
    return [f"3.{minor}" for minor in range(6, 30) if spec.contains(f"3.{minor}.0")]


def _makefile_pythons():
    m = re.search(r"^SUPPORTED_PYTHONS\s*:?=\s*(.+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert m, "the Makefile names the Python versions it builds with in SUPPORTED_PYTHONS"
    return m.group(1).split()


def _lock_python():
    m = re.search(r"on Python (\d+\.\d+)\.\d+", (ROOT / "requirements.lock").read_text().splitlines()[0])
    assert m, "requirements.lock says on its first line which Python it was frozen on"
    return m.group(1)


def test_environment_yml_asks_for_python_3_12():
    conda, _ = _environment_yml()
    assert f"python={PYTHON}" in conda


def test_python_version_agrees_across_pyproject_environment_makefile_and_lock():
    supported = _supported_pythons()
    assert PYTHON in supported, f"requires-python {_project()['requires-python']!r} excludes {PYTHON}"
    # The Makefile tries exactly the versions pyproject allows, the environment.yml's one first.
    assert _makefile_pythons() == supported
    assert _makefile_pythons()[0] == PYTHON
    assert _lock_python() == PYTHON
    assert "%d.%d" % sys.version_info[:2] in supported, "the tests run on a Python pyproject allows"


def test_environment_yml_and_pyproject_pin_the_same_versions():
    project = _project()
    pyproject = _pins(project["dependencies"])
    _, pip = _environment_yml()
    assert pyproject and _pins(pip) == pyproject
    assert all("==" in d for d in project["dependencies"]), "every dependency is pinned exactly"
    assert all("==" in d for d in pip), "every pip dependency of environment.yml is pinned exactly"


def test_lock_file_agrees_with_the_pins():
    project = _project()
    pins = _pins(project["dependencies"] + project["optional-dependencies"]["test"])
    lock = _pins((ROOT / "requirements.lock").read_text().splitlines())
    assert {k: lock.get(k) for k in pins} == pins


def test_installed_versions_are_the_pinned_ones():
    import importlib.metadata

    for name, version in _pins(_project()["dependencies"]).items():
        assert importlib.metadata.version(name) == version, name
