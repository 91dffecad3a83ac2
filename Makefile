# The two commands of the README: `make run` (console on the default plant) and
# `make test` (the whole suite). Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

INTEROP := tests/interop
INTEROP_STAMP := $(INTEROP)/node_modules/.installed
MODBUS_SERVER := $(INTEROP)/build/modbus_server

.PHONY: run test lint bench clean install interop broker postgres

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The MQTT tests run a real mosquitto on loopback (Debian's package); idempotent.
broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto; }

# The store tests also run against a throwaway PostgreSQL cluster (bench/pgserver.py) made
# from Debian's server binaries; idempotent.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; }

run: $(STAMP)
	$(BIN)/loopline tui --demo

# Independent device stacks for the driver tests (not asyncua/pymodbus): node-opcua from
# npm (pinned by package-lock.json) and a libmodbus server built with gcc. Quick when done.
interop: $(INTEROP_STAMP) $(MODBUS_SERVER)

$(INTEROP_STAMP): $(INTEROP)/package.json $(INTEROP)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(MODBUS_SERVER): $(INTEROP)/modbus_server.c
	@{ command -v gcc >/dev/null && pkg-config --exists libmodbus; } 2>/dev/null || { \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc pkg-config libmodbus-dev; }
	@mkdir -p $(dir $@)
	gcc -O2 -Wall -o $@ $< $$(pkg-config --cflags --libs libmodbus)

test: $(STAMP) interop broker postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
