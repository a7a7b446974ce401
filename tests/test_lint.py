"""Static checks of the workflow, no job run: `snakemake --lint`, `snakefmt --check` and dry runs of the
tiny test configs under .test/ (the snakemake-workflows convention). `make lint` runs this file alone and
`make test` runs it before the rest of the suite."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

# snakefmt's line length: the project's (black's default is 88).
LINE_LENGTH = 120
SNAKEMAKE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
TEST_CONFIGS = sorted(p.parent.name for p in (ROOT / ".test").glob("config_*/config.yaml"))
# Targets besides the default one, so that every rule is planned by some test config.
EXTRA_TARGETS = {
    "config_basic": [
        ".test/results/grouped_tiny/sbc/summary.json",
        ".test/results/grouped_tiny/compare/current_vs_current.html",
    ],
}
# None of these runs uses Slurm. The Slurm executor plugin runs `scontrol show config` whenever Snakemake
# starts; where the Slurm client is installed but no controller answers that waits ~9 s, and with an empty
# Slurm config it fails at once.
ENV = {**os.environ, "SLURM_CONF": "/dev/null"}


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _output(proc):
    return f"exit {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"


def test_snakemake_lint_is_clean():
    proc = _run("snakemake", "--lint")
    assert proc.returncode == 0, _output(proc)


def test_rules_are_formatted_with_snakefmt():
    files = [str(f.relative_to(ROOT)) for f in SNAKEMAKE_FILES]
    proc = _run("snakefmt", "--check", "--line-length", str(LINE_LENGTH), *files)
    if proc.returncode != 0:
        diff = _run("snakefmt", "--compact-diff", "--line-length", str(LINE_LENGTH), *files).stdout
        pytest.fail(f"format them: snakefmt --line-length {LINE_LENGTH} Snakefile workflow/rules\n"
                    f"{_output(proc)}\n{diff[-6000:]}")


def _planned_rules(stdout: str) -> set[str]:
    """The rules in the 'Job stats' table of `snakemake -n`."""
    table = stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", table, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def dry_runs():
    """`snakemake -n` of every .test/config_*/config.yaml: the rules each one plans."""
    planned = {}
    for name in TEST_CONFIGS:
        targets = ["all", *EXTRA_TARGETS.get(name, [])]
        proc = _run("snakemake", *targets, "-n", "--cores", "1", "--configfile", f".test/{name}/config.yaml")
        assert proc.returncode == 0 and "Job stats:" in proc.stdout, f".test/{name}: {_output(proc)}"
        planned[name] = _planned_rules(proc.stdout)
    return planned


def test_there_are_test_configs_for_a_normal_and_a_count_analysis():
    assert {"config_basic", "config_retail"} <= set(TEST_CONFIGS)


@pytest.mark.parametrize("name", TEST_CONFIGS)
def test_dry_run_of_test_config_plans_the_whole_analysis(dry_runs, name):
    assert {"ingest", "aggregate", "prior_check", "fit", "posterior_check", "report"} <= dry_runs[name]


def test_every_rule_is_planned_by_some_test_config(dry_runs):
    rules = {m for f in SNAKEMAKE_FILES for m in re.findall(r"^rule (\w+):", f.read_text(), flags=re.MULTILINE)}
    assert rules - set().union(*dry_runs.values()) == set()


def test_common_smk_holds_input_functions_only():
    """The config is loaded in the Snakefile; workflow/rules/common.smk has imports and functions, nothing
    that runs when it is included (the model-core issue's layout)."""
    import ast

    tree = ast.parse((ROOT / "workflow" / "rules" / "common.smk").read_text())
    body = tree.body[1:] if isinstance(tree.body[0], ast.Expr) else tree.body  # the module docstring
    kinds = {type(node).__name__ for node in body}
    assert kinds <= {"Import", "ImportFrom", "FunctionDef"}, kinds
    assert "load_analyses(config)" in (ROOT / "Snakefile").read_text()
