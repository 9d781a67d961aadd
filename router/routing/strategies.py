"""How a route orders its processors for one payment. The engine then tries them in that order, failing over
down the list, whatever the strategy.

- `priority`: the order the route lists them.
- `weighted`: a weighted shuffle keyed by the payment id, so a retry of the same payment sees the same order,
  while over many payments each processor comes first in proportion to its weight. The shuffle is
  Efraimidis-Spirakis: each processor draws u in (0, 1) from the blake2b hash of (route, payment id), eight
  bytes per processor, and the order is by u ** (1 / weight), largest first; P(first = i) = w_i / sum(w).
  A weight of 0 means "failover only": such processors come last, in listed order.
- `success_rate`: Thompson sampling over each processor's recent approval window on this route (see
  `router.routing.stats`): draw from Beta(1 + approved, 1 + soft-declined) per processor and order by the draws,
  largest first. A processor with little recent data has a wide posterior, so it is tried now and then; one
  whose declines have aged out of the window is back at the uniform prior and is explored again.
  Technical failures are not declines: they go to the processor's health window instead, and a processor
  whose latest `success_rate.demote_after_errors` calls (on any route, within the last
  `success_rate.health_window`) all failed technically goes behind every healthy processor, sampled among
  the demoted ones, until an answer breaks the run or the failures age out. So an outage moves traffic after
  a couple of calls on every route at once, the processor is tried again about once a health window, and
  the outage does not weigh on its approval estimate for hours after it ends.
- `least_cost`: cheapest first by `cost.percent` of the amount plus the fixed fee in the payment's currency;
  ties keep the listed order.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from router.config.schema import ProcessorConfig, RouteConfig, SuccessRateConfig
from router.money import exponent, format_amount
from router.routing.stats import NOTHING_KNOWN, WindowCounts

DEFAULT_DEMOTE_AFTER = SuccessRateConfig().demote_after_errors
_MASK64 = (1 << 64) - 1
_TWO_TO_MINUS_64 = 2.0**-64


class HasProcessor(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def config(self) -> ProcessorConfig: ...


C = TypeVar("C", bound=HasProcessor)


class PaymentFacts(Protocol):
    """The parts of a payment a strategy may look at."""

    @property
    def id(self) -> str: ...

    @property
    def amount(self) -> int: ...

    @property
    def currency(self) -> str: ...


Windows = Mapping[str, WindowCounts]


class Strategy(Protocol):
    name: str
    needs_stats: bool

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        """The candidates in the order to try them."""
        ...

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        """Per processor, the figure the order came from, for `payroute explain`."""
        ...


class Priority:
    name = "priority"
    needs_stats = False

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        return candidates

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

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        out = {}
        for c, w in zip(candidates, self.weights, strict=True):
            share = w / self.total if self.total else 0.0
            text = f"weight {w:g} of {self.total:g} ({share:.0%} first)"
            out[c.name] = text if w > 0 else "weight 0 (failover only)"
        return out


class SuccessRate:
    name = "success_rate"
    needs_stats = True

    def __init__(self, rng: random.Random | None = None, demote_after_errors: int = DEFAULT_DEMOTE_AFTER) -> None:
        self.rng = rng or random.Random()
        self.demote_after_errors = demote_after_errors

    def demoted(self, w: WindowCounts) -> bool:
        """The processor's latest `demote_after_errors` calls, within the health window, all failed technically."""
        return 0 < self.demote_after_errors <= w.failing_streak

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        betavariate = self.rng.betavariate
        keys = []
        for c in candidates:
            w = windows.get(c.name, NOTHING_KNOWN) if windows is not None else NOTHING_KNOWN
            keys.append((self.demoted(w), -betavariate(1 + w.successes, 1 + w.failures)))
        ranked = sorted(range(len(candidates)), key=keys.__getitem__)
        return tuple(candidates[i] for i in ranked)

    def expected_order(self, candidates: tuple[C, ...], windows: Windows | None) -> tuple[C, ...]:
        """Healthy first, then by posterior mean, without sampling: what the order tends to be (explain shows this)."""

        def key(c: C) -> tuple[bool, float]:
            w = _window(windows, c.name)
            return self.demoted(w), -posterior_mean(w)

        return tuple(sorted(candidates, key=key))

    def notes(
        self, candidates: Sequence[HasProcessor], payment: PaymentFacts, windows: Windows | None
    ) -> dict[str, str]:
        out = {}
        for c in candidates:
            w = _window(windows, c.name)
            if w.total == 0:
                text = "no recent approvals or declines: uniform prior, explored at random"
            else:
                text = (
                    f"{w.successes} approved / {w.failures} declined recently,"
                    f" expected approval {posterior_mean(w):.1%}"
                )
            if self.demoted(w):
                text += (
                    f"; demoted: its last {w.failing_streak} calls failed technically"
                    f" ({w.recent_errors} of {w.recent_calls} in the health window)"
                )
            out[c.name] = text
        return out


def posterior_mean(w: WindowCounts) -> float:
    return (1 + w.successes) / (2 + w.total)


def _window(windows: Windows | None, name: str) -> WindowCounts:
    return windows.get(name, NOTHING_KNOWN) if windows is not None else NOTHING_KNOWN


class LeastCost:
    name = "least_cost"
    needs_stats = False

    def order(self, candidates: tuple[C, ...], payment: PaymentFacts, windows: Windows | None) -> tuple[C, ...]:
        amount, currency = payment.amount, payment.currency
        return tuple(sorted(candidates, key=lambda c: c.config.cost.of(amount, currency)))

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
    route: RouteConfig, rng: random.Random | None = None, success_rate: SuccessRateConfig | None = None
) -> Strategy:
    """The strategy a route names, bound to that route's weights (and the config's success_rate settings)."""
    if route.strategy == "weighted":
        if isinstance(route.processors, dict):
            weights: Sequence[float] = list(route.processors.values())
        else:
            weights = [1.0] * len(route.processors)
        return Weighted(route.name, weights)
    if route.strategy == "success_rate":
        settings = success_rate or SuccessRateConfig()
        return SuccessRate(rng, settings.demote_after_errors)
    if route.strategy == "least_cost":
        return LeastCost()
    return Priority()
