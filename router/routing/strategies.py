"""How a route orders its processors for one payment. The engine then tries them in that order, failing over
down the list, whatever the strategy.

- `priority`: the order the route lists them.
- `weighted`: a weighted shuffle keyed by the payment id, so a retry of the same payment sees the same order,
  while over many payments each processor comes first in proportion to its weight. The shuffle is
  Efraimidis-Spirakis: each processor draws u in (0, 1) from the blake2b hash of (route, payment id), eight
  bytes per processor, and the order is by u ** (1 / weight), largest first; P(first = i) = w_i / sum(w).
  A weight of 0 means "failover only": such processors come last, in listed order.
- `success_rate`: learned per card segment, see `router.routing.success_rate`.
- `least_cost`: cheapest first by `cost.percent` of the amount plus the fixed fee in the payment's currency;
  ties keep the listed order.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Sequence

from router.config.schema import RouteConfig, SuccessRateConfig
from router.money import exponent, format_amount
from router.routing.protocols import C, HasProcessor, PaymentFacts, Strategy, Windows
from router.routing.segments import Segmenter
from router.routing.success_rate import SuccessRate

__all__ = ["LeastCost", "Priority", "Strategy", "SuccessRate", "Weighted", "for_route"]
_MASK64 = (1 << 64) - 1
_TWO_TO_MINUS_64 = 2.0**-64


class Priority:
    name = "priority"
    needs_stats = False

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        return candidates

    def rank(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[tuple[C, ...], list[float]]:
        return candidates, self.first_choice(candidates, payment, windows)

    def first_choice(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> list[float]:
        return [1.0 if i == 0 else 0.0 for i in range(len(candidates))]

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        return {c.name: f"listed {_ordinal(i + 1)}" for i, c in enumerate(candidates)}


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class Weighted:
    name = "weighted"
    needs_stats = False

    def __init__(self, route: str, weights: Sequence[float]) -> None:
        self.route = route
        self.weights = tuple(float(w) for w in weights)
        self.total = sum(self.weights)
        self._salt = route.encode() + b"\0"
        self._inverse = tuple(1 / w if w > 0 else 0.0 for w in self.weights)
        words = min(8, len(self.weights))
        self._digest_size = 8 * words
        self._words = struct.Struct(f">{words}Q")

    def keys(self, payment_id: str) -> list[float]:
        """Per position, the sort key log(u) / w (higher first); -inf for a zero weight."""
        digest = hashlib.blake2b(self._salt + payment_id.encode(), digest_size=self._digest_size).digest()
        words = list(self._words.unpack(digest))
        while len(words) < len(self.weights):  # more than eight processors: stretch the hash
            words.append(_splitmix64(words[-1] + len(words)))
        log = math.log
        # (x + 0.5) / 2**64 lies strictly inside (0, 1), so the log is finite.
        return [
            log((x + 0.5) * _TWO_TO_MINUS_64) * inv if inv else -math.inf
            for x, inv in zip(words, self._inverse, strict=False)
        ]

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        keys = self.keys(payment.id)
        # Largest key first; the sort is stable under reverse, so zero weights keep their listed order.
        ranked = sorted(range(len(candidates)), key=keys.__getitem__, reverse=True)
        return tuple([candidates[i] for i in ranked])

    def first_choice(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> list[float]:
        # Efraimidis-Spirakis: P(first = i) = w_i / sum(w); with no positive weight, the listed order.
        if self.total <= 0:
            return [1.0 if i == 0 else 0.0 for i in range(len(candidates))]
        return [w / self.total for w in self.weights]

    def rank(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[tuple[C, ...], list[float]]:
        return self.order(candidates, payment, windows), self.first_choice(candidates, payment, windows)

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        out = {}
        for c, w in zip(candidates, self.weights, strict=True):
            share = w / self.total if self.total else 0.0
            text = f"weight {w:g} of {self.total:g} ({share:.0%} first)"
            out[c.name] = text if w > 0 else "weight 0 (failover only)"
        return out


class LeastCost:
    name = "least_cost"
    needs_stats = False

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        amount, currency = payment.amount, payment.currency
        return tuple(sorted(candidates, key=lambda c: c.config.cost.of(amount, currency)))

    def rank(
        self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None
    ) -> tuple[tuple[C, ...], list[float]]:
        ordered = self.order(candidates, payment, windows)
        return ordered, [1.0 if c is ordered[0] else 0.0 for c in candidates]

    def first_choice(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> list[float]:
        first = self.order(tuple(candidates), payment, windows)[0]
        return [1.0 if c is first else 0.0 for c in candidates]

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        out = {}
        for c in candidates:
            cost = c.config.cost
            fee = cost.of(payment.amount, payment.currency)
            fixed = format_amount(cost.fixed_for(payment.currency), payment.currency)
            out[c.name] = f"cost {_money(fee, payment.currency)} ({cost.percent:g}% + {fixed})"
        return out


def _money(minor: float, currency: str) -> str:
    """1.025 USD for 102.5 cents: a fee may hold a fraction of a minor unit."""
    if abs(minor - round(minor)) < 1e-9:
        return format_amount(round(minor), currency)
    exp = exponent(currency) or 0
    text = f"{minor / 10**exp:.{exp + 4}f}".rstrip("0")
    return f"{text} {currency.upper()}"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def for_route(
    route: RouteConfig,
    rng: random.Random | None = None,
    success_rate: SuccessRateConfig | None = None,
    segmenter: Segmenter | None = None,
) -> Strategy:
    """The strategy a route names, bound to that route's weights (and the config's success_rate settings)."""
    if route.strategy == "weighted":
        if isinstance(route.processors, dict):
            weights: Sequence[float] = list(route.processors.values())
        else:
            weights = [1.0] * len(route.processors)
        return Weighted(route.name, weights)
    if route.strategy == "success_rate":
        return SuccessRate(rng, success_rate, objective=route.objective, segmenter=segmenter)
    if route.strategy == "least_cost":
        return LeastCost()
    return Priority()
