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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from router.config.learning import DEFAULT_AMOUNT_BANDS, DEFAULT_LEVELS, DIMENSIONS

UNKNOWN = "?"
MEMO_LIMIT = 65_536
_BANDS = tuple(f"a{i}" for i in range(64))

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


class Segmenter:
    """Compiled once per routing table: payment -> its segment keys."""

    __slots__ = ("_extra", "_memo", "_new", "bands", "levels")

    def __init__(
        self,
        levels: Sequence[Sequence[str]] = DEFAULT_LEVELS,
        amount_bands: Sequence[int] = DEFAULT_AMOUNT_BANDS,
    ) -> None:
        self.levels = tuple(tuple(level) for level in levels)
        self.bands = tuple(sorted(amount_bands))
        # Per level, the positions (in DIMENSIONS) of its dimensions and of those it adds to its parent.
        new: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        previous: set[str] = set()
        for level in self.levels:
            new.append(
                (
                    tuple(DIMENSIONS.index(d) for d in level),
                    tuple(DIMENSIONS.index(d) for d in level if d not in previous),
                )
            )
            previous = set(level)
        self._new = tuple(new)
        self._memo: dict[tuple[str | None, ...], Segment] = {}
        # Whether each kind of card object carries BIN and issuer, asked once per kind: reading a missing
        # attribute costs a raised and caught AttributeError per payment (tens of microseconds on a pydantic model).
        self._extra: dict[type, bool] = {}

    def facts(self, p: SegmentFacts) -> tuple[str | None, ...]:
        """Every dimension's value for this payment, in DIMENSIONS order."""
        card = p.card
        kind = type(card)
        extra = self._extra.get(kind)
        if extra is None:
            fields = getattr(kind, "model_fields", ())
            extra = self._extra[kind] = all(a in fields or hasattr(kind, a) for a in ("bin", "issuer"))
        amount = p.amount
        band = len(self.bands)
        for i, bound in enumerate(self.bands):
            if amount < bound:
                band = i
                break
        # The card-facts protocol does not promise BIN or issuer: read them only from cards known to carry them.
        bin_, issuer = (getattr(card, "bin"), getattr(card, "issuer")) if extra else (None, None)  # noqa: B009
        return (card.country, card.brand, card.funding, p.currency, p.cadence, _BANDS[band], bin_, issuer)

    def segment(self, payment: SegmentFacts) -> Segment:
        values = self.facts(payment)
        known = self._memo.get(values)
        if known is not None:
            return known
        out = []
        for index, (dims, added) in enumerate(self._new):
            if all(values[i] is None for i in added):
                continue
            out.append((index, "|".join(str(values[i]) if values[i] is not None else UNKNOWN for i in dims)))
        segment = tuple(out)
        if len(self._memo) >= MEMO_LIMIT:
            self._memo.clear()
        self._memo[values] = segment  # segments are few; joining their keys is most of a segment's cost
        return segment

    def describe(self, segment: Segment) -> list[str]:
        """Each level of `segment` in words: `country, brand, funding = US|visa|debit`."""
        return [f"{', '.join(self.levels[i])} = {key}" for i, key in segment]


@dataclass(frozen=True, slots=True)
class Card:
    brand: str | None = None
    country: str | None = None
    funding: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """A payment's segment facts as an attempt record logged them (refill, replay); `id` for a weighted order."""

    amount: int
    currency: str
    cadence: str
    card: Card
    id: str = ""
