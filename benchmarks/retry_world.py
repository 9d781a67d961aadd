"""The retry benchmark's world: customers, cards and subscriptions with hidden state the router never sees.

- Customers are paid on a rhythm: weekly on a Friday (or another weekday), every other Friday, the 1st and 15th,
  the 15th and month end, monthly on the 1st or 25th, the last business day, or irregularly (gig work). A payday on
  a weekend is paid on the Friday before (most) or the Monday after (some). The money posts at an hour of the
  customer's bank (00:00-10:00 UTC), covers the bills with a chance (0.8-0.95), and is gone again within days
  (exponential, mean 1.5-5 days). Some customers are always in funds; some go broke for good.
- Subscriptions bill monthly on an anchor day and hour; most cards carry one, some two or three, and business
  cards carry four to eight (and are paid like their owner).
- Issuers: technical outages of an hour to a few hours (ISO 91), and risk incidents without any technical error
  in which a share of their cards get do-not-honor declines that lift when the incident ends.
- A card may be put on a risk hold (do not honor) that lifts after a cool-off every attempt inside lengthens;
  approvals are rarer at night. Mastercard holds may carry advice codes 24-27 (an attempt before the floor is
  declined), and a cardholder may cancel recurring payments (Mastercard advice code 21: never retry).
- Cards die (stolen, expired, closed): hard declines from then on.
The world's randomness is keyed by what happens (card, payment, hour), not drawn in order, so every strategy
meets the same customers and the same luck at the same moment.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from adapters.base import Outcome, OutcomeKind
from router.config.schema import NetworkLimits

H = timedelta(hours=1)
D = timedelta(days=1)
START = datetime(2026, 1, 1, tzinfo=UTC)
MAC_FLOORS = {"24": 1 * H, "25": 1 * D, "26": 2 * D, "27": 4 * D}
RHYTHMS = (
    ("weekly_fri", 0.18),
    ("weekly_other", 0.05),
    ("biweekly_fri", 0.10),
    ("semi_1_15", 0.22),
    ("semi_15_end", 0.05),
    ("monthly_1", 0.10),
    ("monthly_25", 0.06),
    ("month_end", 0.06),
    ("irregular", 0.18),
)
BRANDS = (("visa", 0.55), ("mastercard", 0.35), ("amex", 0.10))
HARD_CODES = (("stolen_card", "43", None), ("expired_card", "54", None), ("invalid_account", "14", None))


def pick(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


def keyed(*key: object) -> float:
    """A uniform number fixed by its key: the same event draws the same luck under every strategy."""
    return random.Random(":".join(map(str, key))).random()


def _shift(d: date, forward: bool) -> date:
    while d.weekday() >= 5:
        d += D if forward else -D
    return d


def _month_day(y: int, m: int, day: int) -> date:
    last = (date(y + (m == 12), m % 12 + 1, 1) - D).day
    return date(y, m, min(day, last))


def payday_dates(kind: str, weekday: int, parity: int, forward: bool, start: date, end: date) -> list[date]:
    out: set[date] = set()
    d = start
    while d <= end:
        if kind == "weekly_fri" and d.weekday() == 4:
            out.add(d)
        elif kind == "weekly_other" and d.weekday() == weekday:
            out.add(d)
        elif kind == "biweekly_fri" and d.weekday() == 4 and (d.toordinal() // 7) % 2 == parity:
            out.add(d)
        elif d.day == 1:
            y, m = d.year, d.month
            days = {
                "semi_1_15": (1, 15),
                "semi_15_end": (15, 31),
                "monthly_1": (1,),
                "monthly_25": (25,),
                "month_end": (31,),
            }.get(kind, ())
            out.update(_shift(_month_day(y, m, k), forward) for k in days)
        d += D
    return sorted(p for p in out if start <= p <= end)


@dataclass
class Customer:
    id: str
    kind: str  # healthy | payday | broke
    rhythm: str
    post_hour: int
    lasts_mean: float
    sufficient: float
    broke_from: datetime | None = None
    paydays: list[datetime] = field(default_factory=list)
    lasts: list[float] = field(default_factory=list)  # days each payday's money lasts (0: not enough)

    def funded(self, at: datetime) -> bool:
        if self.kind == "healthy":
            return True
        if self.broke_from is not None and at >= self.broke_from:
            return False
        i = bisect_right(self.paydays, at) - 1
        return i >= 0 and (at - self.paydays[i]) / D < self.lasts[i]

    def first_funded_after(self, at: datetime, end: datetime) -> datetime | None:
        if self.funded(at + H):
            return at + H
        if self.kind != "payday":
            return None
        for p, lasts in zip(self.paydays, self.lasts, strict=True):
            if at < p <= end and lasts > 0 and (self.broke_from is None or p < self.broke_from):
                return p
        return None


@dataclass
class Card:
    fingerprint: str
    brand: str
    issuer: int
    customer: Customer
    dies_at: datetime | None = None
    hard: tuple[str, str, str | None] = HARD_CODES[0]
    hold_until: datetime | None = None  # risk hold (do not honor)
    hold_recovers: bool = True
    mac: str | None = None  # advice code on this hold's declines
    attempts: list[datetime] = field(default_factory=list)
    declines: list[datetime] = field(default_factory=list)


@dataclass
class Issuer:
    outages: list[tuple[datetime, datetime]]
    incidents: list[tuple[datetime, datetime, float]]  # (start, end, share of cards declined)


def _windows(
    rng: random.Random, days: int, per_90d: float, hours: tuple[float, float]
) -> list[tuple[datetime, datetime]]:
    out = []
    for _ in range(int(rng.expovariate(1 / (per_90d * days / 90)) + 0.5)):
        start = START + timedelta(hours=rng.uniform(0, 24 * days))
        out.append((start, start + timedelta(hours=math.exp(rng.uniform(*map(math.log, hours))))))
    return out


class World:
    def __init__(self, seed: int, days: int, limits: NetworkLimits) -> None:
        self.seed = seed
        self.days = days
        self.limits = limits
        rng = random.Random(seed)
        self.issuers = [
            Issuer(
                _windows(rng, days, 2.0, (0.5, 6.0)),
                [(*w, rng.uniform(0.3, 0.8)) for w in _windows(rng, days, 1.5, (3, 48))],
            )
            for _ in range(20)
        ]
        self.violations: dict[str, int] = defaultdict(int)

    # -- population ---------------------------------------------------------------------------------------------
    def customer(self, rng: random.Random, index: int) -> Customer:
        r = rng.random()
        kind = "healthy" if r < 0.55 else "broke" if r < 0.61 else "payday"
        c = Customer(
            f"cus_{index:06d}",
            kind,
            pick(rng, RHYTHMS),
            rng.choice((0, 2, 4, 5, 6, 6, 7, 8, 9, 10)),
            rng.uniform(1.5, 8.0),
            rng.uniform(0.8, 0.95),
        )
        if kind == "healthy":
            return c
        if kind == "broke":
            c.broke_from = START + timedelta(days=rng.uniform(0, self.days))
        lo, hi = (START - 40 * D).date(), (START + (self.days + 40) * D).date()
        if c.rhythm == "irregular":
            at, dates = START - 40 * D, []
            while at < START + (self.days + 40) * D:
                at += timedelta(days=rng.expovariate(1 / 6.0))
                dates.append(at)
            c.paydays = dates
        else:
            forward = rng.random() < 0.15
            days = payday_dates(c.rhythm, rng.choice((1, 2, 3)), rng.randrange(2), forward, lo, hi)
            c.paydays = [datetime(d.year, d.month, d.day, c.post_hour, tzinfo=UTC) for d in days]
        c.lasts = [rng.expovariate(1 / c.lasts_mean) if rng.random() < c.sufficient else 0.0 for _ in c.paydays]
        return c

    def card(self, rng: random.Random, index: int, customer: Customer) -> Card:
        card = Card(f"fp_{index:06d}", pick(rng, BRANDS), rng.randrange(len(self.issuers)), customer)
        if rng.random() < 0.06:
            card.dies_at = START + timedelta(days=rng.uniform(0, self.days))
            card.hard = HARD_CODES[rng.randrange(len(HARD_CODES))]
            if card.brand == "mastercard" and rng.random() < 0.4:
                card.hard = ("do_not_honor", "05", "21")  # the cardholder cancelled: MAC 21, never retry
        return card

    # -- answers ------------------------------------------------------------------------------------------------
    def answer(
        self, card: Card, payment_id: str, at: datetime, last_decline: datetime | None, last_mac: str | None
    ) -> Outcome:
        """The issuer's answer to an attempt (a retry when `last_decline` is set: the payment's last decline and
        its advice code), and the networks' ledger of it."""
        if last_decline is not None:
            self._police(card, at, last_decline, last_mac)
        card.attempts.append(at)
        outcome = self._decide(card, payment_id, at, last_decline, last_mac)
        if outcome.kind is not OutcomeKind.APPROVED and outcome.kind.is_decline:
            card.declines.append(at)
        return outcome

    def _decide(
        self, card: Card, payment_id: str, at: datetime, last_decline: datetime | None, last_mac: str | None
    ) -> Outcome:
        luck = keyed(self.seed, card.fingerprint, payment_id, at.isoformat(timespec="hours"))
        if card.dies_at is not None and at >= card.dies_at:
            code, iso, mac = card.hard
            kind = OutcomeKind.SOFT_DECLINE if mac else OutcomeKind.HARD_DECLINE
            return Outcome(kind, decline_code=code, network_decline_code=iso, network_advice_code=mac)
        issuer = self.issuers[card.issuer]
        if any(s <= at < e for s, e in issuer.outages):
            return Outcome(OutcomeKind.SOFT_DECLINE, decline_code="issuer_not_available", network_decline_code="91")
        for s, e, share in issuer.incidents:
            if s <= at < e and keyed(self.seed, card.fingerprint, "incident", s) < share:
                return _generic(None)
        if card.hold_until is not None:
            if at < card.hold_until or not card.hold_recovers:
                card.hold_until = max(card.hold_until, at) + 12 * H  # hammering a held card lengthens the hold
                return _generic(card.mac)
            if last_decline is not None and last_mac in MAC_FLOORS and at < last_decline + MAC_FLOORS[last_mac]:
                return _generic(card.mac)
            card.hold_until, card.mac = None, None
            if luck < (0.35 if at.hour < 6 else 0.75):
                return Outcome(OutcomeKind.APPROVED, raw_code="00")
            return _generic(None)
        if last_decline is None and keyed(self.seed, card.fingerprint, "hold", at.date()) < 0.02:
            # A risk hold starts on a first charge: cool-off 2.5 days (median), some never lift.
            rng = random.Random(f"{self.seed}:{card.fingerprint}:{at.isoformat()}")
            card.hold_until = at + timedelta(days=2.5 * math.exp(rng.gauss(0, 0.7)))
            card.hold_recovers = rng.random() < 0.7
            card.mac = rng.choice(list(MAC_FLOORS)) if card.brand == "mastercard" and rng.random() < 0.5 else None
            return _generic(card.mac)
        if card.customer.funded(at):
            if luck < 0.96:
                return Outcome(OutcomeKind.APPROVED, raw_code="00")
            return _generic(None)
        if luck < 0.03:  # an overdraft, another income
            return Outcome(OutcomeKind.APPROVED, raw_code="00")
        return Outcome(OutcomeKind.SOFT_DECLINE, decline_code="insufficient_funds", network_decline_code="51")

    def _police(self, card: Card, at: datetime, last_decline: datetime, last_mac: str | None) -> None:
        """Count what the networks would refuse: a retry of a never-retry decline, inside an advice-code wait, or
        past a cap (every attempt on the card counts toward the caps; only retries can break them)."""
        if card.dies_at is not None and last_decline >= card.dies_at:
            self.violations["hard_retried"] += 1
        elif last_mac in ("03", "21"):
            self.violations["hard_retried"] += 1
        if last_mac in MAC_FLOORS and at < last_decline + MAC_FLOORS[last_mac]:
            self.violations["advice_floor"] += 1
        month = [d for d in card.declines if at - d < 30 * D]
        if card.brand == "visa" and month:
            reattempts = [a for a in card.attempts if at - a < 30 * D and a >= month[0]][1:]
            if len(reattempts) + 1 > self.limits.visa_reattempts_30d:
                self.violations["visa_30d"] += 1
        if card.brand == "mastercard":
            if len([d for d in month if at - d < D]) >= self.limits.mastercard_declines_24h:
                self.violations["mastercard_24h"] += 1
            if len(month) >= self.limits.mastercard_declines_30d:
                self.violations["mastercard_30d"] += 1

    # -- the oracle ---------------------------------------------------------------------------------------------
    def right_moment(self, card: Card, declined_at: datetime, outcome: Outcome, end: datetime) -> datetime | None:
        """When one retry would most likely succeed, knowing everything hidden; None when no moment would."""
        if (
            outcome.decline_code in ("stolen_card", "expired_card", "invalid_account")
            or outcome.network_advice_code == "21"
        ):
            return None
        if card.dies_at is not None and card.dies_at <= declined_at + H:
            return None
        at = declined_at + H
        issuer = self.issuers[card.issuer]
        for s, e in issuer.outages:
            if s <= at < e:
                at = e
        for s, e, _ in issuer.incidents:
            if s <= at < e:
                at = e
        if card.hold_until is not None:
            if not card.hold_recovers:
                return None
            at = max(at, card.hold_until, declined_at + MAC_FLOORS.get(card.mac or "", timedelta(0)))
            if at.hour < 6:
                at = at.replace(hour=9)
        if card.customer.funded(at):
            return at if at <= end else None
        found = card.customer.first_funded_after(at, end)
        return found if found is not None and found <= end else None


def _generic(mac: str | None) -> Outcome:
    return Outcome(
        OutcomeKind.SOFT_DECLINE, decline_code="do_not_honor", network_decline_code="05", network_advice_code=mac
    )
