"""What a strategy sees of a candidate and of a payment, and what it answers: shared by every strategy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from router.config.schema import ProcessorConfig
from router.routing.segments import CardFacts
from router.routing.stats import ProcessorStats


class HasProcessor(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def config(self) -> ProcessorConfig: ...


C = TypeVar("C", bound=HasProcessor)


class PaymentFacts(Protocol):
    """The parts of a payment a strategy may look at: its id (a weighted shuffle is keyed by it), the amount,
    currency and cadence, and the card facts (brand, country, funding; BIN and issuer when known)."""

    @property
    def id(self) -> str: ...

    @property
    def amount(self) -> int: ...

    @property
    def currency(self) -> str: ...

    @property
    def cadence(self) -> str: ...

    @property
    def card(self) -> CardFacts: ...


Windows = Mapping[str, ProcessorStats]


class Strategy(Protocol):
    name: str
    needs_stats: bool

    def rank(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[tuple[C, ...], list[float]]:
        """The candidates in the order to try them, and per candidate (in the listed order) the probability that
        it is put first: the propensities `payroute replay` weighs logged outcomes by."""
        ...

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        """The candidates in the order to try them."""
        ...

    def first_choice(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> list[float]:
        """Per candidate, in the listed order, the probability that this strategy tries it first."""
        ...

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        """Per processor, the figure the order came from, for `payroute explain`."""
        ...
