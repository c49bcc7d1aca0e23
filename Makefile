# CityHex: `make run` serves the demo city on an embedded PostGIS (the web app at /app);
# `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
WEB := spatial_api/web

.PHONY: install postgis test-tools glyphs run test lint bench-demo clean

install: $(VENV)/.installed $(WEB)/dist/manifest.json

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# The web app served at /app: its npm lockfile installed, then built into $(WEB)/dist.
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q >/dev/null && $(APT_INSTALL) npm >/dev/null; \
	  else echo "npm is missing: sudo apt-get install npm (Debian/Ubuntu)"; exit 1; fi; }
	cd $(WEB) && npm ci --no-audit --no-fund --silent

$(WEB)/dist/manifest.json: $(WEB)/node_modules/.package-lock.json $(WEB)/build.mjs $(wildcard $(WEB)/src/*)
	cd $(WEB) && node build.mjs

# PostGIS for the machine's PostgreSQL (Debian/Ubuntu packages when root, else how to get it).
postgis:
	@if ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then exit 0; fi; \
	ver=$$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1); \
	if [ -n "$$ver" ]; then pkgs="postgresql-$$ver-postgis-3"; else pkgs="postgresql postgis"; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $$pkgs"; apt-get update -q >/dev/null && $(APT_INSTALL) $$pkgs >/dev/null; \
	else \
	  echo "PostGIS is missing. Install it: sudo apt-get install $$pkgs (Debian/Ubuntu)," \
	       "brew install postgis (macOS), or set CITYHEX_DATABASE_URL to a PostGIS database."; \
	  exit 1; \
	fi

# The real clients the tests drive: GDAL's ogrinfo, Mosquitto, the MapLibre style validator,
# Chromium (driven by Playwright) and MapLibre GL JS for the page it loads.
test-tools:
	@missing=""; command -v ogrinfo >/dev/null || missing="$$missing gdal-bin"; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx-light"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q >/dev/null && $(APT_INSTALL) $$missing >/dev/null; \
	  else echo "missing test tools:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi
	@if [ -f package.json ] && { [ ! -x node_modules/.bin/gl-style-validate ] || \
	  [ ! -f node_modules/maplibre-gl/package.json ] || \
	  [ ! -d node_modules/tileserver-gl-styles/fonts ]; }; then \
	  npm install --no-audit --no-fund --silent; fi

# The label glyphs the styles use (npm package tileserver-gl-styles); without npm, no labels.
glyphs:
	@if [ ! -d node_modules/tileserver-gl-styles/fonts ] && command -v npm >/dev/null; then \
	  npm install --no-audit --no-fund --silent; fi

run: install postgis glyphs
	$(BIN)/cityhex db start
	$(BIN)/cityhex migrate
	$(BIN)/cityhex demo
	$(BIN)/cityhex serve

test: install postgis test-tools
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q -d "$$(mktemp -d)"
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

bench-demo: install postgis
	$(BIN)/python tests/bench/bench_demo_load.py

clean:
	-$(BIN)/cityhex db stop
	rm -rf $(VENV) node_modules $(WEB)/node_modules $(WEB)/dist
