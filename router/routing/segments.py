"""Card segments: the keys under which success_rate keeps its evidence, from the card facts of a payment.

A segment level is a list of dimensions (`country`, `brand`, `funding`, `currency`, `cadence`, `amount`,
`bin`, `issuer`); the config's `success_rate.segments` lists the levels from coarsest to finest, each holding
every dimension of the one before it (the shrinkage in `router.routing.estimate` walks down that chain: a thin
segment borrows from its parent). A payment's segment is one key per level, e.g. `US` / `US|visa|debit` /
`US|visa|debit|usd|recurring|a2`. A level whose own dimensions (those it adds to its parent) are all unknown for
this card (no BIN in the card facts) is left out: its evidence would only repeat its parent's.

`amount` is a band, not the amount: `a0` below the first bound of `amount_bands` (minor units), `a1` below the
second, and so on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

DIMENSIONS = ("country", "brand", "funding", "currency", "cadence", "amount", "bin", "issuer")
DEFAULT_LEVELS: tuple[tuple[str, ...], ...] = (
    ("country",),
    ("country", "brand", "funding"),
    ("country", "brand", "funding", "currency", "cadence", "amount"),
    ("country", "brand", "funding", "currency", "cadence", "amount", "issuer", "bin"),
)
DEFAULT_AMOUNT_BANDS = (1_000, 5_000, 20_000, 100_000)
UNKNOWN = "?"

# One key per level present, as (level index, key); coarsest first.
Segment = tuple[tuple[int, str], ...]
NO_SEGMENT: Segment = ()


class CardFacts(Protocol):
    @property
    def brand(self) -> str | None: ...

    @property
    def country(self) -> str | None: ...

    @property
    def funding(self) -> str | None: ...


class SegmentFacts(Protocol):
    """What a segment is read from: a payment (router.model.records.Payment has all of it)."""

    @property
    def amount(self) -> int: ...

    @property
    def currency(self) -> str: ...

    @property
    def cadence(self) -> str: ...

    @property
    def card(self) -> CardFacts: ...


Getter = Callable[[SegmentFacts], str | None]


def _card(attr: str) -> Getter:
    def get(p: SegmentFacts) -> str | None:
        value: str | None = getattr(p.card, attr, None)
        return value

    return get


class Segmenter:
    """Compiled once per routing table: payment -> its segment keys."""

    __slots__ = ("_getters", "_new", "bands", "levels")

    def __init__(
        self,
        levels: Sequence[Sequence[str]] = DEFAULT_LEVELS,
        amount_bands: Sequence[int] = DEFAULT_AMOUNT_BANDS,
    ) -> None:
        self.levels = tuple(tuple(level) for level in levels)
        self.bands = tuple(sorted(amount_bands))
        getters: dict[str, Getter] = {
            "country": _card("country"),
            "brand": _card("brand"),
            "funding": _card("funding"),
            "bin": _card("bin"),
            "issuer": _card("issuer"),
            "currency": lambda p: p.currency,
            "cadence": lambda p: p.cadence,
            "amount": self._band,
        }
        self._getters = tuple(getters[d] for d in self._all_dimensions())
        # Per level, the positions (in _all_dimensions) of its dimensions and of those it adds to its parent.
        order = self._all_dimensions()
        new: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        previous: set[str] = set()
        for level in self.levels:
            new.append(
                (tuple(order.index(d) for d in level), tuple(order.index(d) for d in level if d not in previous))
            )
            previous = set(level)
        self._new = tuple(new)

    def _all_dimensions(self) -> tuple[str, ...]:
        seen: list[str] = []
        for level in self.levels:
            seen.extend(d for d in level if d not in seen)
        return tuple(seen)

    def _band(self, p: SegmentFacts) -> str:
        amount = p.amount
        for i, bound in enumerate(self.bands):
            if amount < bound:
                return f"a{i}"
        return f"a{len(self.bands)}"

    def segment(self, payment: SegmentFacts) -> Segment:
        values = [g(payment) for g in self._getters]
        out = []
        for index, (dims, added) in enumerate(self._new):
            if all(values[i] is None for i in added):
                continue
            out.append((index, "|".join(str(values[i]) if values[i] is not None else UNKNOWN for i in dims)))
        return tuple(out)

    def describe(self, segment: Segment) -> list[str]:
        """Each level of `segment` in words: `country, brand, funding = US|visa|debit`."""
        return [f"{', '.join(self.levels[i])} = {key}" for i, key in segment]


def check_levels(levels: Sequence[Sequence[str]]) -> str | None:
    """Why these levels cannot be used (unknown dimension, not nested), or None."""
    previous: set[str] = set()
    for i, level in enumerate(levels):
        if not level:
            return f"level {i + 1} names no dimension"
        bad = [d for d in level if d not in DIMENSIONS]
        if bad:
            return f"unknown dimension {bad[0]!r} (known: {', '.join(DIMENSIONS)})"
        if len(set(level)) != len(level):
            return f"level {i + 1} names a dimension twice"
        if not previous <= set(level):
            missing = sorted(previous - set(level))
            return f"level {i + 1} must keep every dimension of the level before it (missing {', '.join(missing)})"
        if set(level) == previous:
            return f"level {i + 1} adds no dimension to the level before it"
        previous = set(level)
    return None
