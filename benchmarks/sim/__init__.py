"""Helpers for the overhead and routing-simulation benchmarks: result files, tables, the simulated world."""
