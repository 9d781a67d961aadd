"""One call to a processor: the request built from the payment, sent under the processor's timeout (and a span),
asked about when its answer is unknown, and written down as a settled attempt record.

Nothing here decides what happens next; the engine does. Capture, void and the orphan sweep share `settle` and
`LOOKUP_TIMEOUT` so every kind of attempt is recorded the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram

from adapters.base import (
    UNKNOWN,
    AuthorizationRequest,
    Cadence,
    CardCredentials,
    CardInfo,
    LookupAnswer,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TransferData,
)
from adapters.base import Answer as Meaning
from router import tracing
from router.model.records import AttemptRecord, CardSnapshot, Payment
from router.retry.declines import classify
from router.routing.rules import Candidate

log = logging.getLogger("payroute.engine")

ATTEMPTS = Counter("payroute_authorization_attempts_total", "Processor authorization calls", ["processor", "outcome"])
ATTEMPT_LATENCY = Histogram(
    "payroute_attempt_latency_seconds",
    "Processor authorization call latency",
    ["processor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LOOKUP_TIMEOUT = timedelta(seconds=10)


def build_request(
    attempt: AttemptRecord, p: Payment, now: datetime, creds: CardCredentials, nti: str | None
) -> AuthorizationRequest:
    transfer = p.transfer_data or None
    return AuthorizationRequest(
        attempt_id=attempt.id,
        payment_id=p.id,
        amount=p.amount,
        currency=p.currency,
        cadence=Cadence(p.cadence),
        credentials=creds,
        capture_manual=p.capture_method == "manual",
        # The chain's id: given on the payment, else the one recorded on its stored payment method.
        network_transaction_id=p.network_transaction_id or nti,
        transfer_data=TransferData(str(transfer["destination"]), transfer.get("amount")) if transfer else None,
        application_fee_amount=p.application_fee_amount,
        on_behalf_of=p.on_behalf_of,
        mcc=p.mcc,
        statement_descriptor=p.statement_descriptor,
        statement_descriptor_suffix=p.statement_descriptor_suffix,
        description=p.description,
        metadata=p.metadata,
        card=CardInfo(p.card.brand, p.card.country, p.card.funding, p.card.fingerprint),
        requested_at=now,
        livemode=p.livemode,
    )


async def call(cand: Candidate, req: AuthorizationRequest) -> Outcome:
    """Send one authorization; every failure comes back as an Outcome, never as an exception."""
    if not tracing.enabled():
        return await _authorize(cand, req)
    attributes = tracing.call_attributes(cand.name, cand.config.adapter, req.attempt_id, req.payment_id)
    with tracing.span("payroute.processor.authorize", kind="client", attributes=attributes) as span:
        outcome = await _authorize(cand, req)
        kind = outcome.kind.value
        found = tracing.outcome_attributes(kind, outcome.decline_code, outcome.network_decline_code, outcome.latency_ms)
        tracing.set_attributes(span, found)
        if outcome.kind.is_technical:
            tracing.mark_error(span, kind)
        return outcome


async def _authorize(cand: Candidate, req: AuthorizationRequest) -> Outcome:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(cand.config.timeout_ms / 1000):
            outcome = await cand.adapter.authorize(req)
    except TimeoutError:
        return Outcome(
            OutcomeKind.TIMEOUT,
            raw_message=f"no answer within {cand.config.timeout_ms} ms",
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # An adapter must turn every answer into an Outcome; one that raised has a bug, not a decline, and may have
        # raised reading the answer to a request the processor acted on: unknown, asked before anything else.
        log.exception("adapter %s raised instead of answering", cand.name)
        return Outcome(
            OutcomeKind.PROCESSOR_ERROR,
            raw_message=cand.adapter.scrub(f"{type(exc).__name__}: {exc}"),
            latency_ms=(time.perf_counter() - started) * 1000,
            ambiguous=True,
        )
    if not outcome.latency_ms:
        outcome = replace(outcome, latency_ms=(time.perf_counter() - started) * 1000)
    return outcome


async def ask(
    cand: Candidate,
    attempt: AttemptRecord,
    now: datetime,
    unknown: Outcome,
    resend: AuthorizationRequest | None,
    notice: Mapping[str, Any] | None = None,
) -> Outcome:
    """Ask the processor whose answer is unknown what became of the attempt, before anything else is tried.

    An answer found is the outcome. "Never saw it" is a refusal: nothing was charged, so failing over is safe.
    A processor that cannot be asked by our key but deduplicates a resend under it (`UNKNOWN`) is sent `resend`,
    the same request byte for byte, when we still hold the card's credentials for it; only its approval or decline
    is taken as the answer. Anything else (a resend refused or unknown too, `NOT_YET`,
    no lookup answer, nothing to resend) leaves the outcome unknown. `notice`: what the processor told us of the
    attempt by webhook, kept in the store, for a processor that cannot be searched.
    """
    reference = unknown.processor_reference or attempt.processor_reference
    asked = LookupRequest(attempt.id, attempt.payment_id, reference, attempt.created, now, notice, attempt.currency)
    attributes = tracing.call_attributes(cand.name, cand.config.adapter, attempt.id, attempt.payment_id)
    with tracing.span("payroute.processor.lookup", kind="client", attributes=attributes) as span:
        try:
            async with asyncio.timeout(cand.config.timeout_ms / 1000):
                found = await cand.adapter.lookup(asked)
        except Exception:
            log.warning("asking %s about %s failed; the answer stays unknown", cand.name, attempt.id, exc_info=True)
            tracing.mark_error(span, "lookup failed")
            return unknown
        tracing.set_attributes(span, {"payroute.lookup.found": _found(found)})
    if found is None:
        return replace(
            unknown,
            never_charged=True,
            request_invalid=False,
            raw_message=f"{unknown.raw_message or unknown.kind.value}; asked: the processor never charged it",
        )
    if found is UNKNOWN:
        if resend is None:
            return unknown
        again = await call(cand, resend)
        # Only an approval or a decline answers for the first request. A resend refused (rate limited, credentials
        # changed since, any 4xx) says nothing of whether the first was processed: read as "never charged", it would
        # fail over and could charge the card a second time elsewhere.
        return again if again.answer in (Meaning.APPROVED, Meaning.DECLINED) else unknown
    if isinstance(found, Outcome) and found.answer is not Meaning.UNKNOWN:
        log.info("attempt %s at %s was unknown; asked, the processor says %s", attempt.id, cand.name, found.kind)
        return found
    return unknown


def _found(found: Outcome | LookupAnswer | None) -> str:
    """What a lookup said, for its span: an outcome's kind, that it never saw the attempt, or `unknown`/`not_yet`."""
    if found is None:
        return "never_seen"
    if isinstance(found, Outcome):
        return found.kind.value
    return found.value


# Labelled metric children per (processor, outcome kind): `labels()` hashes and locks on every call, a few
# microseconds an attempt. Both label sets are bounded (configured processors, the outcome taxonomy).
_ATTEMPT_CHILDREN: dict[tuple[str, OutcomeKind], tuple[Counter, Histogram]] = {}


def observe(processor: str, outcome: Outcome) -> None:
    children = _ATTEMPT_CHILDREN.get((processor, outcome.kind))
    if children is None:
        children = ATTEMPTS.labels(processor, outcome.kind.value), ATTEMPT_LATENCY.labels(processor)
        _ATTEMPT_CHILDREN[processor, outcome.kind] = children
    children[0].inc()
    children[1].observe(outcome.latency_ms / 1000)


def snapshot(card: CardInfo) -> CardSnapshot:
    return CardSnapshot(brand=card.brand, country=card.country, funding=card.funding, fingerprint=card.fingerprint)


def settle(attempt: AttemptRecord, o: Outcome, scrub: Callable[[str], str]) -> AttemptRecord:
    """The attempt record as the processor's answer leaves it; its texts pass the adapter's scrub."""
    card = attempt.card
    if o.card is not None:
        # The processor's word fills what we do not know of the card. Its fingerprint only stands in for a missing
        # one of ours: each processor fingerprints a card its own way, and taking theirs over ours split one card's
        # network caps (counted by fingerprint, across processors) into one count per processor it went to.
        c = o.card
        known = (card.brand, card.country, card.funding, card.fingerprint)
        merged = (
            card.brand or c.brand,
            card.country or c.country,
            card.funding or c.funding,
            card.fingerprint or c.fingerprint,
        )
        if merged != known:
            card = CardSnapshot(brand=merged[0], country=merged[1], funding=merged[2], fingerprint=merged[3])
    return attempt.model_copy(
        update={
            "state": "settled",
            "outcome": o.kind.value,
            "decline_class": None if o.approved else classify(o).decline_class.value,
            "processor_reference": o.processor_reference,
            "authorization_code": o.authorization_code,
            "decline_code": o.decline_code,
            "network_decline_code": o.network_decline_code,
            "network_advice_code": o.network_advice_code,
            "advice_code": o.advice_code,
            "raw_code": o.raw_code,
            "raw_message": scrub(o.raw_message) if o.raw_message else None,
            "latency_ms": o.latency_ms,
            "network_transaction_id": o.network_transaction_id,
            "card": card,
            "transcript": scrub(o.transcript) if o.transcript else None,
        }
    )
