# The whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.auditkit-installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: install demo test test-slow lint format bench clean

$(STAMP): pyproject.toml requirements-dev.txt requirements-mlflow.txt $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-mlflow.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . $(foreach p,$(dir $(PLUGINS)),-e $(p))
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/auditkit demo --out auditkit-out
	@echo "open auditkit-out/report.html"

lint: install
	$(BIN)/ruff check auditkit tests plugins examples benchmarks

format: install
	$(BIN)/ruff format auditkit tests plugins examples benchmarks

test: install lint
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/bench_pgd.py

clean:
	rm -rf $(VENV) auditkit-out .pytest_cache
