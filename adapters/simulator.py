"""An in-process processor: seeded, configurable, and honest about idempotency.

Used by `make run`, the tests and the benchmarks alike. It honours Stripe's test payment-method ids so
anyone can force an outcome; other payment methods follow the configured approval rate and decline mix.

Options (the processor's block in the config):
  approval_rate: 0.93                        share of other payment methods approved
  approval_by: {brand: {visa: 0.95}, country: {DE: 0.9}}   per-card overrides (the lowest applies)
  latency_ms: 120 | {p50: 120, p99: 600}     log-normal fitted to p50 and p99; 0 answers at once
  decline_mix: {insufficient_funds: 0.5, do_not_honor: 0.5}   Stripe decline codes, weights
  outages: [{start: 2026-01-01T10:00:00Z, minutes: 30, mode: down | slow | errors}]
  lookup: true                               false: no lookup by idempotency key, like Adyen
  ledger_size: 100000                        authorizations remembered (resends, lookups, captures); older forgotten
  seed: 7
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base import (
    CARRIES_ANYTHING,
    UNKNOWN,
    AdapterError,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    CardInfo,
    LookupAnswer,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from adapters.declines import DECLINE_CODES
from adapters.scrub import scrub as scrub_text


def _simulated(*codes: str) -> Mapping[str, tuple[OutcomeKind, str]]:
    """The outcome kind and ISO code of each decline the simulator can send, from the one decline table."""
    out = {}
    for code in codes:
        rule = DECLINE_CODES[code]
        if rule.iso is None:
            raise ValueError(f"simulated decline {code} needs an ISO 8583 response code in adapters/declines.py")
        out[code] = (rule.kind, rule.iso)
    return out


DECLINES: Mapping[str, tuple[OutcomeKind, str]] = _simulated(
    "insufficient_funds",
    "do_not_honor",
    "generic_decline",
    "card_velocity_exceeded",
    "withdrawal_count_limit_exceeded",
    "try_again_later",
    "issuer_not_available",
    "reenter_transaction",
    "expired_card",
    "stolen_card",
    "lost_card",
    "pickup_card",
    "restricted_card",
    "incorrect_number",
    "invalid_account",
    "transaction_not_allowed",
    "revocation_of_authorization",
    "authentication_required",
)

# Stripe's documented test payment methods -> forced outcome.
_FORCED: Mapping[str, tuple[OutcomeKind, str | None, str | None]] = {
    "pm_card_visa": (OutcomeKind.APPROVED, None, None),
    "pm_card_mastercard": (OutcomeKind.APPROVED, None, None),
    "pm_card_amex": (OutcomeKind.APPROVED, None, None),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (OutcomeKind.SOFT_DECLINE, "insufficient_funds", "51"),
    "pm_card_chargeDeclinedInsufficientFunds": (OutcomeKind.SOFT_DECLINE, "insufficient_funds", "51"),
    "pm_card_visa_chargeDeclinedStolenCard": (OutcomeKind.HARD_DECLINE, "stolen_card", "43"),
    "pm_card_chargeDeclinedStolenCard": (OutcomeKind.HARD_DECLINE, "stolen_card", "43"),
    "pm_card_chargeDeclinedLostCard": (OutcomeKind.HARD_DECLINE, "lost_card", "41"),
    "pm_card_chargeDeclinedExpiredCard": (OutcomeKind.HARD_DECLINE, "expired_card", "54"),
    "pm_card_chargeDeclined": (OutcomeKind.SOFT_DECLINE, "generic_decline", "05"),
    "pm_card_chargeDeclinedProcessingError": (OutcomeKind.PROCESSOR_ERROR, "processing_error", "96"),
    "pm_card_authenticationRequired": (OutcomeKind.AUTHENTICATION_REQUIRED, "authentication_required", "1A"),
}


@dataclass(frozen=True, slots=True)
class Outage:
    start: datetime
    end: datetime
    mode: str  # down | slow | errors

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


class LatencyModel:
    """Log-normal latency fitted to a median and a 99th percentile (z(0.99) = 2.326)."""

    def __init__(self, spec: Any) -> None:
        if isinstance(spec, int | float):
            self.p50, self.sigma = float(spec), 0.0
        elif isinstance(spec, Mapping):
            self.p50 = float(spec.get("p50", 0))
            p99 = float(spec.get("p99", self.p50))
            self.sigma = math.log(p99 / self.p50) / 2.326 if self.p50 > 0 and p99 > self.p50 else 0.0
        else:
            raise AdapterError(f"latency_ms must be a number or {{p50, p99}}, not {spec!r}")

    def sample(self, rng: random.Random) -> float:
        if self.p50 <= 0:
            return 0.0
        if self.sigma == 0:
            return self.p50
        return self.p50 * math.exp(rng.gauss(0.0, self.sigma))


def _parse_outages(raw: Sequence[Mapping[str, Any]]) -> list[Outage]:
    outages = []
    for item in raw:
        start = item["start"]
        if isinstance(start, str):
            start = datetime.fromisoformat(start.replace("Z", "+00:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        mode = str(item.get("mode", "down"))
        if mode not in ("down", "slow", "errors"):
            raise AdapterError(f"outage mode must be down, slow or errors, not {mode!r}")
        outages.append(Outage(start, start + timedelta(minutes=float(item.get("minutes", 0))), mode))
    return outages


# Authorizations the simulator remembers (see SimulatorAdapter.ledger_size).
DEFAULT_LEDGER_SIZE = 100_000


def _keep(ledger: OrderedDict[str, Any], key: str, value: Any, size: int) -> None:
    ledger[key] = value
    if len(ledger) > size:
        ledger.popitem(last=False)


# A card at the simulator: any token; a bare token on a payment is taken as the simulator's own.
SimulatorCredentials = TokenCredentials


class SimulatorAdapter:
    """A processor that lives in this process. Its `log` is the processor's own ledger of authorizations.

    It stands in for any processor, so it carries what any of them can: Connect fields, a network transaction id,
    metadata up to the router's own limit. Its errors are decided on arrival and charge nothing (its lookup says
    so), so they fail over at once.
    """

    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings) -> None:
        opts = settings.options
        self.name = settings.name
        self.timeout_s = settings.timeout_ms / 1000
        self.approval_rate = float(opts.get("approval_rate", 0.9))
        if not 0.0 <= self.approval_rate <= 1.0:
            raise AdapterError(f"{settings.name}: approval_rate must be between 0 and 1")
        self.approval_by: Mapping[str, Mapping[str, float]] = opts.get("approval_by", {}) or {}
        mix = dict(opts.get("decline_mix") or {"insufficient_funds": 0.5, "do_not_honor": 0.5})
        unknown = sorted(set(mix) - set(DECLINES))
        if unknown:
            raise AdapterError(f"{settings.name}: unknown decline codes in decline_mix: {', '.join(unknown)}")
        self._mix_codes = list(mix)
        self._mix_weights = [float(w) for w in mix.values()]
        self.latency = LatencyModel(opts.get("latency_ms", 0))
        self.outages = _parse_outages(opts.get("outages") or [])
        # False models a processor with no lookup by idempotency key (Adyen): it can only be asked again.
        self.supports_lookup = bool(opts.get("lookup", True))
        self._rng = random.Random(opts.get("seed", settings.name))
        # A real processor keeps its ledger on its own disks; this one lives in the router's process (`make run`,
        # benchmarks, soaks), so it keeps the latest `ledger_size` authorizations and forgets older ones, as a
        # processor forgets an idempotency key after its window (Stripe: 24 hours). Kept whole, the ledger held
        # about 700 bytes a payment for as long as the process ran.
        self.ledger_size = int(opts.get("ledger_size", DEFAULT_LEDGER_SIZE))
        if self.ledger_size < 1:
            raise AdapterError(f"{settings.name}: ledger_size must be at least 1")
        # attempt id -> outcome: a resend with the same idempotency key gets the first answer back.
        self.log: OrderedDict[str, Outcome] = OrderedDict()
        # Every authorization request that reached us, repeats included: what the processor would have logged.
        self.received: list[str] = []
        # The token each request carried, by attempt id: which of the card's credentials reached this processor.
        self.tokens: OrderedDict[str, str] = OrderedDict()
        self.authorizations_sent = 0
        self.captures: dict[str, int] = {}
        self.voids: set[str] = set()

    def approval_probability(self, card: CardInfo) -> float:
        rate = self.approval_rate
        for attr in ("brand", "country", "funding"):
            value = getattr(card, attr)
            table = self.approval_by.get(attr)
            if value and table and value in table:
                rate = min(rate, float(table[value]))
        return rate

    def _outage(self, at: datetime | None) -> Outage | None:
        if at is None or not self.outages:
            return None
        return next((o for o in self.outages if o.covers(at)), None)

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        self.received.append(req.attempt_id)
        if len(self.received) > 2 * self.ledger_size:
            del self.received[: -self.ledger_size]
        _keep(self.tokens, req.attempt_id, self._token(req), self.ledger_size)
        if req.attempt_id in self.log:
            return self.log[req.attempt_id]
        self.authorizations_sent += 1
        latency = self.latency.sample(self._rng)
        outage = self._outage(req.requested_at)
        if outage is not None and outage.mode == "down":
            return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="503", raw_message="service unavailable")
        if outage is not None and outage.mode == "slow":
            latency = max(latency * 20, self.timeout_s * 1000 * 1.5)
        if outage is not None and outage.mode == "errors" and self._rng.random() < 0.8:
            outcome = Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="500", raw_message="internal error")
        else:
            outcome = self._decide(req)
        outcome = Outcome(
            kind=outcome.kind,
            processor_reference=f"sim_{self.name}_{req.attempt_id}",
            authorization_code=outcome.authorization_code,
            decline_code=outcome.decline_code,
            network_decline_code=outcome.network_decline_code,
            raw_code=outcome.raw_code,
            raw_message=outcome.raw_message,
            latency_ms=latency,
            card=req.card,
            network_transaction_id=outcome.network_transaction_id,
        )
        # Like a real processor, the decision is made when the request arrives; a slow answer is slow on the way
        # back, so a caller that stops waiting has still been charged (and `lookup` will say so).
        _keep(self.log, req.attempt_id, outcome, self.ledger_size)
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        return outcome

    @staticmethod
    def _token(req: AuthorizationRequest) -> str:
        creds = req.credentials
        return creds.payment_method if isinstance(creds, TokenCredentials) else ""

    def _decide(self, req: AuthorizationRequest) -> Outcome:
        forced = _FORCED.get(self._token(req))
        if forced is not None:
            kind, decline, iso = forced
            return self._outcome(kind, decline, iso)
        if self._rng.random() < self.approval_probability(req.card):
            return self._outcome(OutcomeKind.APPROVED, None, None)
        code = self._rng.choices(self._mix_codes, self._mix_weights)[0]
        kind, iso = DECLINES[code]
        return self._outcome(kind, code, iso)

    def _outcome(self, kind: OutcomeKind, decline: str | None, iso: str | None) -> Outcome:
        if kind is OutcomeKind.APPROVED:
            return Outcome(
                kind,
                authorization_code=f"{self._rng.randrange(10**6):06d}",
                raw_code="00",
                raw_message="approved",
                network_transaction_id=f"{self._rng.randrange(10**15):015d}",
            )
        return Outcome(
            kind,
            decline_code=decline,
            network_decline_code=iso,
            raw_code=iso,
            raw_message=(decline or kind.value).replace("_", " "),
        )

    async def capture(self, req: CaptureRequest) -> Outcome:
        # Its references name the attempt (`sim_<processor>_<attempt id>`): one lookup, not a scan of the ledger.
        auth = self.log.get(req.processor_reference.removeprefix(f"sim_{self.name}_"))
        if auth is not None and auth.processor_reference != req.processor_reference:
            auth = None
        if auth is None or not auth.approved or req.processor_reference in self.voids:
            return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="404", raw_message="no such authorization")
        self.captures.setdefault(req.processor_reference, req.amount)
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def cancel(self, req: CancelRequest) -> Outcome:
        if req.processor_reference in self.captures:
            return Outcome(OutcomeKind.PROCESSOR_ERROR, raw_code="409", raw_message="already captured")
        self.voids.add(req.processor_reference)
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference, raw_code="00")

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        if not self.supports_lookup:
            return UNKNOWN
        found = self.log.get(req.attempt_id)
        # An error decided on arrival charged nothing: as good as never received.
        return None if found is None or found.kind.is_technical else found

    def scrub(self, transcript: str) -> str:
        return scrub_text(transcript)

    async def close(self) -> None:
        return None
