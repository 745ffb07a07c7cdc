# The whole set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.auditkit-installed
# plugins/example is the probe author's template: installed for the test suite only, so its
# probe does not run in every user's scan (`make install` / `make demo` leave it out).
PLUGINS := $(filter-out plugins/example/pyproject.toml,$(wildcard plugins/*/pyproject.toml))
EXAMPLE := plugins/example
TEST_STAMP := $(VENV)/.auditkit-example-installed

.PHONY: install install-example demo test test-slow lint format bench clean

$(STAMP): pyproject.toml requirements-dev.txt requirements-mlflow.txt $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-mlflow.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . $(foreach p,$(dir $(PLUGINS)),-e $(p))
	touch $(STAMP)

install: $(STAMP)

$(TEST_STAMP): $(STAMP) $(EXAMPLE)/pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps -e $(EXAMPLE)
	touch $(TEST_STAMP)

install-example: $(TEST_STAMP)

demo: install
	$(BIN)/auditkit demo --out auditkit-out
	@echo "open auditkit-out/report.html"

lint: install
	$(BIN)/ruff check auditkit tests plugins examples benchmarks

format: install
	$(BIN)/ruff format auditkit tests plugins examples benchmarks

test: install-example lint
	$(BIN)/python -m pytest -q

test-slow: install-example
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/bench_pgd.py

clean:
	rm -rf $(VENV) auditkit-out .pytest_cache
