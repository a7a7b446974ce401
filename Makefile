# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: run test test-fast lint venv clean

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
test: $(STAMP)
	$(BIN)/python -m pytest

# Only the tests that do not sample.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
