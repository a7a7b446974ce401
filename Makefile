# The two commands a newcomer needs:  `make run`  and  `make test`.
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make bench`'s competitors only (statsforecast needs pandas < 3): see bench-env below
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
CORES  ?= all

# Python 3.12 or 3.13 (pyproject.toml's requires-python; pymc 6, pytensor 3, arviz 1 and nutpie need
# >= 3.12). Unless given (`make PYTHON=/path/to/python3.12`), the first of these that runs and reports
# one of those versions: python3.12 on PATH, pyenv's 3.12.x, then the same for 3.13, then python3.
# Each is run, not just looked up: a pyenv shim of a version that is not selected exists but fails.
SUPPORTED_PYTHONS := 3.12 3.13
PYENV_ROOT ?= $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)
PYTHON_CANDIDATES = $(foreach v,$(SUPPORTED_PYTHONS),python$(v) $(wildcard $(PYENV_ROOT)/versions/$(v).*/bin/python$(v))) python3
# X.Y of an interpreter; empty when it does not run.
py_version = $(if $(1),$(shell $(1) -I -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
supported = $(filter $(SUPPORTED_PYTHONS),$(call py_version,$(1)))
# Recursive (=): looked for only when the environment is (re)built.
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(if $(call supported,$(p)),$(p))))

# An environment built with another Python (e.g. 3.11, before the move to 3.12) is rebuilt from scratch,
# not reused; so is one whose interpreter no longer runs, or differs from an explicitly given PYTHON.
VENV_PYTHON := $(call py_version,$(BIN)/python)
WANTED_PYTHONS := $(if $(filter command line environment,$(origin PYTHON)),$(call py_version,$(PYTHON)),$(SUPPORTED_PYTHONS))
VENV_STALE := $(if $(filter $(WANTED_PYTHONS),$(VENV_PYTHON)),,stale-venv)
comma := ,
NO_PYTHON = $(if $(PYTHON),PYTHON=$(PYTHON) does not run or is not Python 3.12 or 3.13,No Python 3.12 or \
  3.13 found (tried: $(strip $(PYTHON_CANDIDATES)))). Install one (`pyenv install 3.12`$(comma) or your system's \
  python3.12 package)$(comma) or give its path: make PYTHON=/path/to/python3.12

# Runs that use no Slurm: an empty Slurm config. The Slurm executor plugin runs `scontrol show config`
# whenever Snakemake starts (every installed executor plugin is imported to build the command line);
# where the Slurm client is installed but no controller answers, that waits ~9 s (its MessageTimeout);
# with SLURM_CONF=/dev/null it fails at once. Runs through `--profile profiles/slurm` do not use this.
NO_SLURM := SLURM_CONF=/dev/null

.PHONY: run test test-deps test-fast lint venv stale-venv clean regenerate archive verify bench bench-env

# Create the virtual environment with the pinned versions (pyproject.toml, requirements.lock).
# The stamp records the interpreter it was built with.
$(STAMP): pyproject.toml requirements.lock $(VENV_STALE)
	$(if $(call supported,$(PYTHON)),,$(error $(NO_PYTHON)))
	$(PYTHON) -m venv $(if $(VENV_STALE),--clear) $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	$(BIN)/python -c 'import sys; print(sys.version.split()[0], sys._base_executable)' > $(STAMP)

stale-venv:
	@echo "$(VENV): $(if $(VENV_PYTHON),built with Python $(VENV_PYTHON),missing or its Python does not run): building it anew"

venv: $(STAMP)

# Run every bundled analysis (config/config.yaml) to its report under results/.
run: $(STAMP)
	$(NO_SLURM) $(BIN)/snakemake --cores $(CORES)

# What CI runs (.ci/run): the static checks first (fast), then the whole test suite in TEST_WORKERS
# processes (pytest-xdist; whole files per process, so a module's shared run is made once). Most tests
# use one core at a time: on 2 cores, 2 workers took 1262 s against 1686 s for one (2026-12-03).
TEST_WORKERS ?= 2
test: $(STAMP) lint test-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/test_lint.py

# Static checks of the workflow (tests/test_lint.py, also part of `make test`): `snakemake --lint`,
# `snakefmt --check` of Snakefile and workflow/rules, and dry runs (`snakemake -n`) of the tiny test
# configs under .test/. Format the rules with: $(BIN)/snakefmt --line-length 120 Snakefile workflow/rules
lint: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_lint.py

# System packages some tests need (as root: Debian's chromium for the browser test, and a one-node
# Slurm brought up by profiles/slurm/up.sh for tests/test_slurm.py); never fails.
# HBM_NO_SYSTEM_DEPS=1 installs nothing; the tests that need a missing package then skip.
test-deps:
	@sh tests/setup_system_deps.sh

# Only the tests that do not sample.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Versions (README "Versioned configs"): make regenerate CONFIG=old.yaml [LABEL=v1],
# make archive ANALYSIS=retail_demand, make verify ARCHIVE=results/archives/<file>.tar.gz [DATA=path]
regenerate: $(STAMP)
	$(NO_SLURM) $(BIN)/hbm regenerate $(CONFIG) $(if $(LABEL),--label $(LABEL)) --cores $(CORES)

archive: $(STAMP)
	$(BIN)/hbm archive $(ANALYSIS)

verify: $(STAMP)
	$(BIN)/hbm verify $(ARCHIVE) $(if $(DATA),--data $(DATA))

# Benchmarks (benchmarks/README.md; never part of `make test`): every case, or CASES=grouped,radon REPS=5.
# Writes benchmarks/RESULTS.md. Run it on an otherwise idle machine.
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench $(if $(CASES),--cases $(CASES)) $(if $(REPS),--reps $(REPS))

# The competitors of the accuracy case (statsforecast, hierarchicalforecast) in their own environment:
# statsforecast needs pandas < 3, hbm pins pandas 3. Pinned in benchmarks/competitors/requirements.lock.
$(BENCH_STAMP): benchmarks/competitors/requirements.lock
	$(if $(call supported,$(PYTHON)),,$(error $(NO_PYTHON)))
	$(PYTHON) -m venv --clear $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/competitors/requirements.lock
	touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

clean:
	rm -rf results .snakemake
