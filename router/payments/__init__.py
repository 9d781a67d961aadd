"""Payments: create, operations, idempotency, the engine (one attempt end to end), test clocks, the retry scheduler."""
