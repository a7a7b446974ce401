# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: run test test-deps test-fast lint venv clean regenerate archive verify bench

# Create the virtual environment with the pinned versions (pyproject.toml, requirements.lock).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Run every bundled analysis (config/config.yaml) to its report under results/.
run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# The whole test suite (what CI runs).
test: $(STAMP) test-deps
	$(BIN)/python -m pytest

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
	$(BIN)/hbm regenerate $(CONFIG) $(if $(LABEL),--label $(LABEL)) --cores $(CORES)

archive: $(STAMP)
	$(BIN)/hbm archive $(ANALYSIS)

verify: $(STAMP)
	$(BIN)/hbm verify $(ARCHIVE) $(if $(DATA),--data $(DATA))

# Benchmarks (benchmarks/README.md; never part of `make test`): every case, or CASES=grouped,radon REPS=5.
# Writes benchmarks/RESULTS.md. Run it on an otherwise idle machine.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench $(if $(CASES),--cases $(CASES)) $(if $(REPS),--reps $(REPS))

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
