# Two entry points for a newcomer (see README):
#   make quickstart   set up .venv and run the quickstart on the embedded model
#   make test         set up .venv and run the test suite
#   make bench        set up .venv and run the benchmark suite
VENV ?= .venv
PY := $(VENV)/bin/python
export RAY_TRAIN_ENABLE_PRINT_PATCH ?= 0

.PHONY: setup quickstart test test-all lint bench bench-gpu-wheels

setup:
	bash scripts/setup.sh $(VENV)

quickstart: setup
	$(VENV)/bin/raysys quickstart

# CI runs this: the import layers (import-linter), lint, then the suite without the
# tests marked `long` (minutes each on 2 cores: the pipeline on the 3-node cluster, the
# search killed and resumed)
test: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check raysys tests jobs bench
	$(PY) -m pytest -q -m "not long"

# everything, the `long` tests too
test-all: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check raysys tests jobs bench
	$(PY) -m pytest -q

# the benchmark suite (~15 min on 2 cores): refreshes BENCHMARKS.md and bench/results/
bench: setup
	$(PY) bench/suite.py

# the wheels bench/gpu_lora.py needs on a GPU machine without network -> bench/wheels/;
# prints the command to run there (BENCHMARKS.md "LoRA SFT and generation on one GPU")
bench-gpu-wheels: setup
	PY=$(PY) bash bench/gpu_wheels.sh

lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check raysys tests jobs bench
