# The two front doors: `make demo` (the ResNet/CIFAR-10 example, offline) and `make test`.
# Both create or reuse the virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sagetrack-installed

.PHONY: demo test check lint typecheck layers unit unit-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/resnet_cifar10/run_demo.py

# the whole suite (what CI runs)
test: $(STAMP) lint typecheck layers unit

# day-to-day: the same static checks and every test that runs no training job in a subprocess
check: $(STAMP) lint typecheck layers unit-fast

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

unit-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
