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
# MkDocs needs requests>=2.33, torchattacks pins requests~=2.25: the docs build in a venv of
# their own (mkdocstrings reads the source without importing it, so it needs no torch).
DOCS_VENV ?= .venv-docs
# setuptools announces every editable install with a multi-line notice about folders shadowing
# the package; it is information, not a problem with our packaging, so the install hides it.
EDITABLE := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install --quiet --no-deps

.PHONY: install install-example demo test test-busy test-slow lint format bench docs clean

# Each step says what it does before it starts (the dependencies take minutes: torch is ~2 GB).
$(STAMP): pyproject.toml requirements-dev.txt requirements-mlflow.txt requirements-docs.txt $(PLUGINS)
	@echo "install: creating $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet pip==26.3
	@echo "install: pinned dependencies from requirements-dev.txt (torch ~2 GB: several minutes)"
	@$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@echo "install: MLflow support from requirements-mlflow.txt"
	@$(BIN)/python -m pip install --quiet -r requirements-mlflow.txt
	@echo "install: auditkit and the plugins in plugins/ (editable)"
	@$(EDITABLE) -e . $(foreach p,$(dir $(PLUGINS)),-e $(p))
	@echo "install: the docs builder in $(DOCS_VENV) (requirements-docs.txt)"
	@test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	@$(DOCS_VENV)/bin/python -m pip install --quiet -r requirements-docs.txt
	@echo "install: done"
	@touch $(STAMP)

install: $(STAMP)

$(TEST_STAMP): $(STAMP) $(EXAMPLE)/pyproject.toml
	$(EDITABLE) -e $(EXAMPLE)
	touch $(TEST_STAMP)

install-example: $(TEST_STAMP)

demo: install
	$(BIN)/auditkit demo --out auditkit-out
	@echo "open auditkit-out/report.html"

lint: install
	$(BIN)/ruff check auditkit tests plugins examples benchmarks

format: install
	$(BIN)/ruff format auditkit tests plugins examples benchmarks

test: install-example lint docs
	$(BIN)/python -m pytest -q

# The suite beside two busy threads: a test that reads the machine's speed fails here first.
test-busy: install-example
	$(BIN)/python benchmarks/busy.py --threads 2 -- $(BIN)/python -m pytest -q

# The docs site (docs/, mkdocs.yml): --strict fails on a broken link or an undocumented name.
docs: install
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict --quiet --site-dir site

test-slow: install-example
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/python benchmarks/bench_pgd.py

clean:
	rm -rf $(VENV) $(DOCS_VENV) site auditkit-out .pytest_cache
