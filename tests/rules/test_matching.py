"""Routes are matched first-match-wins on every kind of condition; the default takes what nothing else took."""

from __future__ import annotations

import random

import pytest

from router.config.loader import ConfigError
from router.model.records import Payment
from tests.rules.conftest import SIMS, payment, routes, table


def route_name(block: str, **facts: object) -> str:
    return table(routes(block)).route_for(payment(**facts)).name  # type: ignore[arg-type]


def one_route(match: str) -> str:
    return f"""
routes:
  - name: special
    match: {match}
    processors: [sim_b]
  - name: default
    processors: [sim_a]
"""


@pytest.mark.parametrize(
    ("match", "facts", "taken"),
    [
        ("{currency: eur}", {"currency": "eur"}, True),
        ("{currency: [eur, gbp]}", {"currency": "gbp"}, True),
        ("{currency: [EUR]}", {"currency": "eur"}, True),
        ("{currency: [eur, gbp]}", {"currency": "usd"}, False),
        ("{cadence: recurring}", {"cadence": "recurring"}, True),
        ("{cadence: recurring}", {"cadence": "unscheduled"}, False),
        ("{cadence: [recurring, unscheduled]}", {"cadence": "unscheduled"}, True),
    ],
)
def test_currency_and_cadence(match: str, facts: dict[str, object], taken: bool) -> None:
    assert (route_name(one_route(match), **facts) == "special") is taken


@pytest.mark.parametrize(
    ("bounds", "amount", "taken"),
    [
        ("{gte: 100}", 100, True),
        ("{gte: 100}", 99, False),
        ("{gt: 100}", 100, False),
        ("{gt: 100}", 101, True),
        ("{lte: 500}", 500, True),
        ("{lte: 500}", 501, False),
        ("{lt: 500}", 500, False),
        ("{lt: 500}", 499, True),
        ("{gte: 100, lt: 500000}", 100, True),
        ("{gte: 100, lt: 500000}", 499999, True),
        ("{gte: 100, lt: 500000}", 500000, False),
        ("{gte: 100, lt: 500000}", 50, False),
    ],
)
def test_amount_bounds(bounds: str, amount: int, taken: bool) -> None:
    assert (route_name(one_route(f"{{amount: {bounds}}}"), amount=amount) == "special") is taken


@pytest.mark.parametrize(
    ("metadata", "taken"),
    [
        ({"plan": "pro"}, True),
        ({"plan": "pro", "region": "eu"}, True),
        ({"plan": "basic"}, False),
        ({}, False),
    ],
)
def test_metadata_equality(metadata: dict[str, str], taken: bool) -> None:
    assert (route_name(one_route("{metadata: {plan: pro}}"), metadata=metadata) == "special") is taken


def test_metadata_needs_every_key_and_reads_yaml_numbers_as_text() -> None:
    block = one_route("{metadata: {plan: pro, seats: 3}}")
    assert route_name(block, metadata={"plan": "pro", "seats": "3"}) == "special"
    assert route_name(block, metadata={"plan": "pro"}) == "default"


@pytest.mark.parametrize(
    ("match", "customer", "taken"),
    [
        ("{customer: cus_vip_}", "cus_vip_9", True),
        ("{customer: cus_vip_}", "cus_9", False),
        ("{customer: {prefix: cus_vip_}}", "cus_vip_9", True),
        ("{customer: [cus_1, cus_2]}", "cus_2", True),
        ("{customer: [cus_1, cus_2]}", "cus_21", False),
        ("{customer: {in: [cus_1]}}", "cus_1", True),
        ("{customer: {in: [cus_1]}}", "cus_10", False),
    ],
)
def test_customer_prefix_or_list(match: str, customer: str, taken: bool) -> None:
    assert (route_name(one_route(match), customer=customer) == "special") is taken


@pytest.mark.parametrize(
    ("match", "card", "taken"),
    [
        ("{brand: visa}", {"brand": "visa"}, True),
        ("{brand: [Mastercard, amex]}", {"brand": "mastercard"}, True),
        ("{brand: visa}", {"brand": "amex"}, False),
        ("{brand: visa}", {"brand": None}, False),
        ("{country: [de, fr]}", {"country": "DE"}, True),
        ("{country: [DE]}", {"country": "US"}, False),
        ("{country: [DE]}", {"country": None}, False),
        ("{funding: debit}", {"funding": "debit"}, True),
        ("{funding: debit}", {"funding": "credit"}, False),
        ("{funding: [debit, prepaid]}", {"funding": None}, False),
    ],
)
def test_card_brand_country_funding_only_when_known(match: str, card: dict[str, object], taken: bool) -> None:
    assert (route_name(one_route(match), **card) == "special") is taken


def test_every_condition_of_a_route_must_hold() -> None:
    block = one_route("{currency: eur, cadence: recurring, amount: {gte: 100}, metadata: {plan: pro}, brand: visa}")
    good = {"currency": "eur", "cadence": "recurring", "amount": 100, "metadata": {"plan": "pro"}, "brand": "visa"}
    assert route_name(block, **good) == "special"
    for key, bad in [
        ("currency", "gbp"),
        ("cadence", "unscheduled"),
        ("amount", 99),
        ("metadata", {"plan": "team"}),
        ("brand", "amex"),
    ]:
        assert route_name(block, **{**good, key: bad}) == "default", key


FIRST_MATCH = """
routes:
  - name: big-eur
    match: {currency: eur, amount: {gte: 10000}}
    processors: [sim_c]
  - name: eur
    match: {currency: eur}
    processors: [sim_b]
  - name: default
    processors: [sim_a]
"""


def test_first_match_wins() -> None:
    t = table(routes(FIRST_MATCH))
    assert t.route_for(payment(currency="eur", amount=20000)).name == "big-eur"
    assert t.route_for(payment(currency="eur", amount=500)).name == "eur"
    assert t.route_for(payment(currency="usd", amount=20000)).name == "default"


def test_default_takes_only_what_no_route_took_wherever_it_is_listed() -> None:
    block = """
routes:
  - name: default
    processors: [sim_a]
  - name: eur
    match: {currency: eur}
    processors: [sim_b]
"""
    t = table(routes(block))
    assert t.route_for(payment(currency="eur")).name == "eur"
    assert t.route_for(payment(currency="usd")).name == "default"


def test_route_without_match_takes_every_payment_that_reaches_it() -> None:
    block = """
routes:
  - name: eur
    match: {currency: eur}
    processors: [sim_b]
  - name: everything
    processors: [sim_c]
  - name: default
    processors: [sim_a]
"""
    t = table(routes(block))
    assert t.route_for(payment(currency="eur")).name == "eur"
    assert t.route_for(payment(currency="jpy")).name == "everything"


def test_a_currency_no_route_names_still_meets_the_routes_that_take_any_currency() -> None:
    t = table(routes(one_route("{amount: {gte: 1000}}")))
    assert t.route_for(payment(currency="chf", amount=5000)).name == "special"
    assert t.route_for(payment(currency="chf", amount=5)).name == "default"


def test_a_default_route_is_required() -> None:
    text = SIMS + "routes:\n  - name: eur\n    match: {currency: eur}\n    processors: [sim_a]\n"
    with pytest.raises(ConfigError) as caught:
        table(text)
    [issue] = caught.value.issues
    assert "a route named 'default' is required" in issue.reason
    assert issue.line == text.splitlines().index("routes:") + 1


def test_plan_carries_the_route_the_strategy_and_the_table_version() -> None:
    t = table(routes(FIRST_MATCH), version=4)
    plan = t.plan(payment(currency="eur"))
    assert (plan.route, plan.strategy, plan.table_version) == ("eur", "priority", 4)
    assert [c.name for c in plan.candidates] == ["sim_b"]


def test_explain_words_name_the_failing_condition() -> None:
    t = table(routes(FIRST_MATCH))
    refusals = t.route("big-eur").refusals(payment(currency="eur", amount=500))
    assert refusals == ["amount 500, route wants >= 10000"]


def random_routes(rng: random.Random, count: int) -> str:
    """`count` routes with random mixes of every condition kind, sharing values so that many overlap."""
    lines = ["routes:"]
    for i in range(count):
        conds = []
        if rng.random() < 0.6:
            conds.append(f"currency: [{', '.join(rng.sample(['usd', 'eur', 'gbp', 'jpy'], rng.randint(1, 2)))}]")
        if rng.random() < 0.4:
            conds.append(f"cadence: {rng.choice(['recurring', 'unscheduled'])}")
        if rng.random() < 0.5:
            low = rng.randrange(0, 5000, 500)
            conds.append(f"amount: {{gte: {low}, lt: {low + rng.choice([500, 2000, 10000])}}}")
        if rng.random() < 0.6:
            pairs = [
                f"{k}: {rng.choice(['a', 'b'])}" for k in rng.sample(["plan", "tier", "region"], rng.randint(1, 2))
            ]
            conds.append(f"metadata: {{{', '.join(pairs)}}}")
        if rng.random() < 0.2:
            conds.append(rng.choice(["customer: cus_vip_", "customer: [cus_1, cus_2]", "customer: {prefix: cus_1}"]))
        if rng.random() < 0.5:
            conds.append(f"brand: [{', '.join(rng.sample(['visa', 'Mastercard', 'amex'], rng.randint(1, 2)))}]")
        if rng.random() < 0.2:
            conds.append(f"country: [{rng.choice(['US', 'de'])}]")
        if rng.random() < 0.2:
            conds.append(f"funding: {rng.choice(['credit', 'debit'])}")
        lines.append(f"  - name: r{i}")
        if conds:
            lines.append(f"    match: {{{', '.join(conds)}}}")
        lines.append(f"    processors: [{rng.choice(['sim_a', 'sim_b', 'sim_c'])}]")
    lines += ["  - name: default", "    processors: [sim_a]"]
    return "\n".join(lines) + "\n"


def random_payment(rng: random.Random, i: int) -> Payment:
    metadata = {k: rng.choice(["a", "b", "c"]) for k in ("plan", "tier", "region", "other") if rng.random() < 0.5}
    return payment(
        id=f"osp_{i}",
        amount=rng.randrange(0, 12000),
        currency=rng.choice(["usd", "eur", "gbp", "jpy", "chf"]),
        cadence=rng.choice(["recurring", "unscheduled"]),
        customer=rng.choice(["cus_1", "cus_2", "cus_12", "cus_vip_7", "cus_x"]),
        metadata=metadata,
        brand=rng.choice(["visa", "mastercard", "Visa", "amex", None]),
        country=rng.choice(["US", "DE", None]),
        funding=rng.choice(["credit", "debit", None]),
    )


@pytest.mark.parametrize("seed", range(10))
def test_indexed_matching_agrees_with_walking_every_route_in_order(seed: int) -> None:
    rng = random.Random(seed)
    t = table(routes(random_routes(rng, 40 + seed * 10)))

    def walk(p: Payment) -> str:
        for r in t.routes:
            if not r.is_default and all(c.test(p) for c in r.conditions):
                return r.name
        return "default"

    for i in range(2000):
        p = random_payment(rng, i)
        assert t.route_for(p).name == walk(p), p
