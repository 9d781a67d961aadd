"""Retrying payments that share a card as a group: one probe, then the rest once it succeeds.

A business card carrying several subscriptions that all declined for want of money would, retried each on its
own, spend one network-cap slot per payment at every moment tried. Instead the first payment to pick a moment
is the card's probe; another payment of the card aiming at about the same moment follows it `gap` later. When a
follower falls due, the card's attempts since the probe say what happened: an approval means the money is there
(go), a decline of the follower's own class by another payment means its reason still holds (plan again, with
that decline as evidence), anything else means the probe has not told (go: it is the probe now).

The probes are kept in this process only: across replicas, followers still go after the probe when the store
shows its outcome, and without that they behave as payments of their own. Nothing here can break a guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

DEFAULT_GAP = timedelta(hours=1)


class ProbeResult(Enum):
    NONE = "none"  # no other payment on the card tried since: go
    APPROVED = "approved"  # the money is there: go
    DECLINED = "declined"  # the probe found no money: plan again


@dataclass(frozen=True, slots=True)
class CardAttempt:
    payment_id: str
    at: datetime
    approved: bool
    decline_class: str | None  # None when approved


@dataclass(slots=True)
class CardGroups:
    gap: timedelta = DEFAULT_GAP
    _probes: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # card -> (payment id, time)
    _pruned: datetime | None = None

    def place(self, card: str, payment_id: str, at: datetime, now: datetime) -> tuple[datetime, str | None]:
        """The time for this payment's retry, aimed at `at`: `at` itself as the card's probe, or just after
        another payment's probe at about the same moment. Returns (time, the probe's payment id if following)."""
        self._prune(now)
        probe = self._probes.get(card)
        if probe is not None and probe[0] != payment_id and probe[1] >= now and abs(at - probe[1]) <= self.gap:
            return probe[1] + self.gap, probe[0]
        self._probes[card] = (payment_id, at)
        return at, None

    def result(
        self, payment_id: str, decline_class: str | None, attempts: Sequence[CardAttempt], since: datetime
    ) -> ProbeResult:
        """What other payments' attempts on the card since `since` say about retrying this one (last declined
        for `decline_class`) now: only a decline of the same class says its reason still holds."""
        others = [a for a in attempts if a.payment_id != payment_id and a.at >= since]
        if any(a.approved for a in others):
            return ProbeResult.APPROVED
        if decline_class is not None and any(a.decline_class == decline_class for a in others):
            return ProbeResult.DECLINED
        return ProbeResult.NONE

    def _prune(self, now: datetime) -> None:
        if self._pruned is not None and now - self._pruned < timedelta(hours=6):
            return
        self._pruned = now
        self._probes = {k: v for k, v in self._probes.items() if v[1] >= now - self.gap}
