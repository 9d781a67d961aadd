# Every target builds .venv on first use, so a fresh clone needs only python3 and make.
# `make run` installs the runtime only; test, lint, bench and soak add the development tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-stamp
DEV := $(VENV)/.dev-stamp
BENCH := $(VENV)/.bench-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
CONFIG ?= config/routing.yaml
STORE ?= sqlite:///payroute.db
DEV_KEY := sk_test_payroute_dev_0000000000
DEV_ADMIN_KEY := payroute_dev_admin_key_0000000000
# What `make explain` routes (override: make explain PAYMENT='{"amount": ...}').
PAYMENT ?= {"amount":{"value":1999,"currency":"eur"},"cadence":"recurring","customer":"cus_demo","payment_method":"pm_card_visa"}

.PHONY: run check explain test lint bench soak services browser clean

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(RUNTIME)

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(DEV)

$(BENCH): $(DEV)
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $(BENCH)

# `exec`: the server replaces the recipe's shell, so Ctrl-C, or `kill` of make's pid (make passes SIGTERM on to its
# child), stops the server itself instead of leaving it holding the port.
run: $(RUNTIME)
	@echo "payroute sidecar on http://$(HOST):$(PORT)  (API key: $(DEV_KEY); admin key: $(DEV_ADMIN_KEY); stop: Ctrl-C)"
	@echo "try: curl -s http://$(HOST):$(PORT)/v2/payments/off_session_payments -H 'Authorization: Bearer $(DEV_KEY)' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '{\"amount\":{\"value\":1999,\"currency\":\"usd\"},\"cadence\":\"recurring\",\"customer\":\"cus_demo\",\"payment_method\":\"pm_card_visa\"}'"
	@exec env PAYROUTE_API_KEYS=$(DEV_KEY) PAYROUTE_ADMIN_KEYS=$(DEV_ADMIN_KEY) $(BIN)/payroute serve --config $(CONFIG) --host $(HOST) --port $(PORT) --store $(STORE)

# Validate a routing file as a load would: every error with its line, or a summary of what goes where.
check: $(RUNTIME)
	@$(BIN)/payroute check $(CONFIG)

# Which route and processors a payment would get, and why.
explain: $(RUNTIME)
	@$(BIN)/payroute explain --config $(CONFIG) '$(PAYMENT)'

services:
	@bash scripts/services.sh

lint: $(DEV)
	$(BIN)/ruff check router adapters tests benchmarks
	$(BIN)/ruff format --check router adapters tests benchmarks
	$(BIN)/mypy

test: $(DEV) services browser lint
	$(BIN)/python -m pytest -q

# Debian's Chromium for the ops console's browser test (Playwright drives it; it downloads no browser of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; }

bench: $(BENCH) services
	$(BIN)/python -m benchmarks

# Two minutes of mixed traffic with processor outages; fails on a lost payment, a 5xx, or memory or descriptors
# growing with the payments made. Results go to a temporary file (printed); `make bench` writes the tracked one.
# The full soak: `.venv/bin/python -m benchmarks.bench_soak --minutes 30`.
soak: $(DEV)
	$(BIN)/python -m benchmarks.bench_soak --minutes 2

# Back to a fresh clone: the environment and the database `make run` wrote.
clean:
	rm -rf $(VENV) payroute.db payroute.db-wal payroute.db-shm
