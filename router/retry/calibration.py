"""How far smart's estimates can be trusted: each retry it scheduled, its estimate against what happened.

The estimate for the chosen hour is the best of hundreds of candidates, each a sum of learned lifts: the
maximum of noisy numbers runs high (the optimizer's curse), and more so for later attempts, where the payments
still declining are the ones whose money or issuer is not coming back. The stop rule compares an estimate with a
floor, so it needs the estimate to mean what it says. Per decline class and attempt level this keeps the sum of
estimates and of successes of the retries smart scheduled, and scales later estimates by their ratio (shrunk
toward 1 until enough retries are in). Scaling every candidate of a decision alike leaves its choice unchanged;
it moves only the stop rule and the reported expectation.

The ledger lives in the process that decided (a replica learns from its own decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.retry.declines import DeclineClass
from router.retry.outcomes import attempt_level

Key = tuple[DeclineClass, int]


@dataclass(slots=True)
class Calibration:
    strength: float = 3.0  # pseudo-successes at face value: how many retries before the ratio moves far
    lookback: timedelta = timedelta(days=30)  # a scheduled retry not seen by then is forgotten
    predicted: dict[Key, float] = field(default_factory=dict)
    succeeded: dict[Key, float] = field(default_factory=dict)
    # (payment id, attempt number of the retry) -> (when scheduled, class, its estimate)
    pending: dict[tuple[str, int], tuple[datetime, DeclineClass, float]] = field(default_factory=dict)

    def scheduled(self, payment_id: str, at: datetime, cls: DeclineClass, attempt: int, estimate: float) -> None:
        self.pending[(payment_id, attempt)] = (at, cls, estimate)

    def outcome(self, payment_id: str, attempt: int, success: bool) -> None:
        """Attempt `attempt` of `payment_id`, a retry, settled (an approval, or a decline of any kind)."""
        found = self.pending.pop((payment_id, attempt), None)
        if found is None:
            return
        _, cls, estimate = found
        key = (cls, attempt_level(attempt))
        self.predicted[key] = self.predicted.get(key, 0.0) + estimate
        self.succeeded[key] = self.succeeded.get(key, 0.0) + (1.0 if success else 0.0)

    def factor(self, cls: DeclineClass, attempt: int) -> float:
        """What to multiply an estimate for this class and attempt by (1 with no evidence)."""
        key = (cls, attempt_level(attempt))
        predicted = self.predicted.get(key, 0.0)
        if predicted <= 0:
            return 1.0
        # Both sums shrunk toward agreement by `strength` expected successes.
        return (self.succeeded.get(key, 0.0) + self.strength) / (predicted + self.strength)

    def prune(self, now: datetime) -> None:
        oldest = now - self.lookback
        self.pending = {k: v for k, v in self.pending.items() if v[0] >= oldest}
