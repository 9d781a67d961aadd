"""Routing: rules, strategies, success-rate statistics, breakers, reload, card facts, explain."""
