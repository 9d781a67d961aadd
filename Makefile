# Every target builds .venv on first use, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
DEV_KEY := sk_test_payroute_dev_0000000000

.PHONY: run test lint bench soak services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@echo "payroute sidecar on http://$(HOST):$(PORT)  (API key: $(DEV_KEY))"
	@echo "try: curl -s http://$(HOST):$(PORT)/v2/payments/off_session_payments -H 'Authorization: Bearer $(DEV_KEY)' -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' -d '{\"amount\":{\"value\":1999,\"currency\":\"usd\"},\"cadence\":\"recurring\",\"customer\":\"cus_demo\",\"payment_method\":\"pm_card_visa\"}'"
	PAYROUTE_API_KEYS=$(DEV_KEY) $(BIN)/payroute serve --config config/routing.yaml --host $(HOST) --port $(PORT) --store sqlite:///payroute.db

services:
	@bash scripts/services.sh

lint: $(STAMP)
	$(BIN)/ruff check router adapters tests benchmarks
	$(BIN)/ruff format --check router adapters tests benchmarks
	$(BIN)/mypy

test: $(STAMP) services lint
	$(BIN)/python -m pytest -q

bench: $(STAMP) services
	$(BIN)/python -m benchmarks

# Two minutes of mixed traffic with processor outages; the full soak is `python -m benchmarks.bench_soak --minutes 30`.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.bench_soak --minutes 2

clean:
	rm -rf $(VENV) payroute.db payroute.db-wal payroute.db-shm
