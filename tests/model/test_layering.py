"""The model core (hbm/model/) stands on its own: it imports no stage of the workflow, so the stages build
on it and not the other way round. hbm/parametrization.py (the automatic parametrization, NumPy only) is
part of the core."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted((ROOT / "hbm" / "model").glob("*.py")) + [ROOT / "hbm" / "parametrization.py"]
ALLOWED = ("hbm.model", "hbm.parametrization", "hbm.errors")


def hbm_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hbm"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("hbm")}
    return names


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_model_core_imports_no_stage(path):
    outside = {m for m in hbm_imports(path) if not m.startswith(ALLOWED)}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_check_sees_imports():
    """The check is not vacuous: a stage that imports the core is seen doing so."""
    assert "hbm.model.builder" in hbm_imports(ROOT / "hbm" / "bottom.py")
    assert "hbm.models" in hbm_imports(ROOT / "hbm" / "fit.py")
