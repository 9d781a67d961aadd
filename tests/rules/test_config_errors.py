"""Every class of bad routing file is refused whole, naming the file, the line and the reason.

Each case marks the line the error must point at with `# <-`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.config.loader import ConfigError, parse
from router.routing.rules import build_adapters

HEAD = """version: 1
processors:
  sim_a: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
  sim_b: {adapter: simulator, approval_rate: 1.0, latency_ms: 0}
"""
DEFAULT = """  - name: default
    processors: [sim_a]
"""


def refuse(text: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(line, path, reason) of the first issue when loading `text`, adapters included."""
    with pytest.raises(ConfigError) as caught:
        config = parse(text, "routing.yaml", env=env or {})
        build_adapters(config)
    issue = caught.value.issues[0]
    assert issue.file == "routing.yaml"
    assert str(issue).startswith(f"routing.yaml:{issue.line}:{issue.column}: ")
    return issue.line, issue.path, issue.reason


def marked_line(text: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line)


CASES = {
    "yaml syntax": (
        HEAD + "routes:\n  - name: default\n    processors: [sim_a\n  - name: x  # <-\n",
        "YAML syntax",
    ),
    "unknown key": (
        HEAD + "routes:\n" + DEFAULT + "  - name: eur\n    matches: {currency: eur}  # <-\n    processors: [sim_b]\n",
        "unknown key",
    ),
    "unknown processor": (
        HEAD + "routes:\n  - name: default\n    processors: [sim_a, adyen_us]  # <-\n",
        "unknown processor 'adyen_us'",
    ),
    "unknown processor in weights": (
        HEAD + "routes:\n  - name: default\n    strategy: weighted\n    processors: {sim_a: 1, nope: 2}  # <-\n",
        "unknown processor 'nope'",
    ),
    "no default route": (
        HEAD + "routes:  # <-\n  - name: eur\n    match: {currency: eur}\n    processors: [sim_a]\n",
        "a route named 'default' is required",
    ),
    "default with a match": (
        HEAD + "routes:\n  - name: default\n    match: {currency: eur}  # <-\n    processors: [sim_a]\n",
        "no match",
    ),
    "duplicate route name": (
        HEAD + "routes:\n" + DEFAULT + "  - name: default  # <-\n    processors: [sim_b]\n",
        "duplicate route name 'default'",
    ),
    "unknown strategy": (
        HEAD + "routes:\n  - name: default\n    strategy: fastest  # <-\n    processors: [sim_a]\n",
        "Input should be 'priority', 'weighted', 'success_rate' or 'least_cost'",
    ),
    "unknown currency": (
        HEAD
        + "routes:\n"
        + DEFAULT
        + "  - name: x\n    match: {currency: [eur, xyz]}  # <-\n    processors: [sim_a]\n",
        "unknown currency 'xyz'",
    ),
    "empty amount range": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {amount: {gte: 500, lt: 100}}  # <-\n"
        "    processors: [sim_a]\n",
        "the amount range is empty",
    ),
    "gte and gt together": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {amount: {gte: 5, gt: 4}}  # <-\n"
        "    processors: [sim_a]\n",
        "give gte or gt, not both",
    ),
    "amount not a number": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match:\n      amount:\n        gte: lots  # <-\n"
        "    processors: [sim_a]\n",
        "valid integer",
    ),
    "customer prefix and list together": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {customer: {prefix: cus_, in: [cus_1]}}  # <-\n"
        "    processors: [sim_a]\n",
        "exactly one of prefix or in",
    ),
    "bad funding": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {funding: charge}  # <-\n    processors: [sim_a]\n",
        "funding 'charge' is not one of credit, debit, prepaid",
    ),
    "bad country": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {country: [germany]}  # <-\n    processors: [sim_a]\n",
        "not an ISO 3166-1 alpha-2 code",
    ),
    "empty list": (
        HEAD + "routes:\n" + DEFAULT + "  - name: x\n    match: {brand: []}  # <-\n    processors: [sim_a]\n",
        "an empty list matches nothing",
    ),
    "no processors": (
        HEAD + "routes:\n  - name: default\n    processors: []  # <-\n",
        "a route needs at least one processor",
    ),
    "processor listed twice": (
        HEAD + "routes:\n  - name: default\n    processors: [sim_a, sim_a]  # <-\n",
        "a processor is listed twice",
    ),
    "zero total weight": (
        HEAD + "routes:\n  - name: default  # <-\n    strategy: weighted\n    processors: {sim_a: 0, sim_b: 0}\n",
        "positive total weight",
    ),
    "negative cost": (
        HEAD.replace("latency_ms: 0}\n", "latency_ms: 0,\n          cost: {percent: -1}}  # <-\n", 1)
        + "routes:\n"
        + DEFAULT,
        "greater than or equal to 0",
    ),
    "missing environment variable": (
        HEAD + "  real:\n    adapter: simulator\n    credentials:\n      api_key: ${STRIPE_SECRET_KEY}  # <-\n"
        "routes:\n" + DEFAULT,
        "environment variable STRIPE_SECRET_KEY is not set",
    ),
    "unknown adapter": (
        HEAD + "  other:  # <-\n    adapter: nosuchadapter\nroutes:\n" + DEFAULT,
        "unknown adapter 'nosuchadapter'",
    ),
    "adapter refuses its options": (
        HEAD + "  sim_c:  # <-\n    adapter: simulator\n    approval_rate: 1.5\nroutes:\n" + DEFAULT,
        "approval_rate must be between 0 and 1",
    ),
    "idempotency keys kept less than a day": (
        HEAD + "routes:\n" + DEFAULT + "retention:\n  idempotency_keys: 12h  # <-\n",
        "idempotency_keys must be at least 24h",
    ),
    "retention not a duration": (
        HEAD + "routes:\n" + DEFAULT + "retention:\n  events: forever  # <-\n",
        "invalid duration 'forever'",
    ),
    "unknown retention key": (
        HEAD + "routes:\n" + DEFAULT + "retention:\n  payments: 90d  # <-\n",
        "unknown key",
    ),
    "housekeeping too often": (
        HEAD + "routes:\n" + DEFAULT + "retention:\n  interval: 1s  # <-\n",
        "interval must lie between 10s and 1d",
    ),
    "duplicate key": (
        HEAD + "routes:\n  - name: default\n    processors: [sim_a]\n    processors: [sim_b]  # <-\n",
        "duplicate key",
    ),
    # Deliveries are kept per url: two entries on one url took each other's events, or signed with the other's key.
    "two webhook entries on one url": (
        HEAD
        + "routes:\n"
        + DEFAULT
        + "webhooks:\n  - {url: 'https://h.example/a', events: ['*'], secret: whsec_0123456789abcdef}\n"
        + "  - {url: 'https://h.example/a', events: ['*'], secret: whsec_fedcba9876543210}  # <-\n",
        "webhooks[0] has this url already",
    ),
    "short webhook secret": (
        HEAD + "routes:\n" + DEFAULT + "webhooks:\n  - {url: 'https://h.example/a', secret: whsec_1}  # <-\n",
        "a webhook secret signs every delivery: at least 16 characters",
    ),
    "environment reference with a default": (
        HEAD + "routes:\n" + DEFAULT + "webhooks:\n  - url: 'https://h.example/a'\n    secret: ${HOOK:-x}  # <-\n",
        "a ${...} reference is written ${NAME}",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_refused_at_the_right_line(case: str) -> None:
    text, reason = CASES[case]
    line, _, got = refuse(text)
    assert reason in got
    assert line == marked_line(text)


def test_every_error_in_a_file_is_reported() -> None:
    text = (
        HEAD
        + "routes:\n"
        + DEFAULT
        + "  - name: a\n    match: {currency: xyz}  # <-\n    processors: [sim_a]\n"
        + "  - name: b\n    strategy: fastest\n    processors: [sim_b]\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "routing.yaml", env={})
    lines = sorted(i.line for i in caught.value.issues)
    assert lines == [marked_line(text), marked_line(text) + 3]


def test_environment_references_resolve_at_load() -> None:
    # A `${...}` value inside a YAML flow mapping ({api_key: ${X}}) is a YAML syntax error: use block style.
    text = (
        HEAD
        + "  real:\n    adapter: simulator\n    credentials:\n      api_key: ${STRIPE_SECRET_KEY}\nroutes:\n"
        + DEFAULT
    )
    config = parse(text, "routing.yaml", env={"STRIPE_SECRET_KEY": "sk_test_123"})
    assert config.processors["real"].credentials["api_key"].get_secret_value() == "sk_test_123"
    assert "sk_test_123" not in repr(config)


def test_retention_has_documented_defaults_and_null_keeps_forever() -> None:
    defaults = parse(HEAD + "routes:\n" + DEFAULT, "routing.yaml", env={}).retention
    assert (defaults.idempotency_keys, defaults.webhook_deliveries, defaults.events, defaults.interval) == (
        timedelta(hours=24),
        timedelta(days=30),
        timedelta(days=30),
        timedelta(minutes=10),
    )
    text = HEAD + "routes:\n" + DEFAULT + "retention: {idempotency_keys: 3d, webhook_deliveries: 7d, events: null}\n"
    custom = parse(text, "routing.yaml", env={}).retention
    assert (custom.idempotency_keys, custom.webhook_deliveries, custom.events) == (
        timedelta(days=3),
        timedelta(days=7),
        None,
    )


def test_an_environment_reference_set_but_empty_is_refused() -> None:
    # A deployment's substitution that found nothing: every webhook was signed with an empty key.
    text = HEAD + "routes:\n" + DEFAULT + "webhooks:\n  - url: 'https://h.example/a'\n    secret: ${HOOK_SECRET}\n"
    with pytest.raises(ConfigError) as caught:
        parse(text, "routing.yaml", env={"HOOK_SECRET": ""})
    [issue] = [i for i in caught.value.issues if "HOOK_SECRET" in i.reason]
    assert (issue.line, issue.reason) == (len(text.splitlines()), "environment variable HOOK_SECRET is empty")
