"""`payroute explain --store URL osp_…`: a stored payment's retries, attempt by attempt, and why the next one is
when it is (the rhythm or feature the planner used), or why it stopped.

It reads the store only (the payment and its attempt records); the planner's explanation was written with
the payment when it decided (`retry_details.reason`), so what is shown is what was decided, not a re-run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TextIO

from router.model.records import AttemptRecord, Payment
from router.retry.smart import class_of

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class PaymentReader(Protocol):
    async def get_payment(self, payment_id: str) -> Payment | None: ...

    async def list_attempts(self, payment_record: str) -> list[AttemptRecord]: ...


def _when(at: datetime) -> str:
    return f"{WEEKDAYS[at.weekday()]} {at:%Y-%m-%d %H:%M} UTC"


def _attempt_line(a: AttemptRecord) -> dict[str, Any]:
    codes = [c for c in (a.decline_code, a.network_decline_code and f"ISO {a.network_decline_code}") if c]
    if a.network_advice_code:
        codes.append(f"MAC {a.network_advice_code}")
    found = class_of(a)
    decline_class = found.value if found is not None else None
    return {
        "attempt": a.attempt_number,
        "at": a.created.isoformat(),
        "processor": a.processor,
        "outcome": a.outcome or a.state,
        "codes": codes,
        "decline_class": decline_class,
    }


async def explain_retries(store: PaymentReader, payment_id: str) -> dict[str, Any] | None:
    """The payment's retry story as data (None if no such payment)."""
    payment = await store.get_payment(payment_id)
    if payment is None:
        return None
    return story(payment, await store.list_attempts(payment.payment_record))


def story(payment: Payment, attempts: Sequence[AttemptRecord]) -> dict[str, Any]:
    """The retry story of a payment already read, with its attempts (the ops console has both at hand)."""
    return {
        "payment": payment.id,
        "status": payment.status.value,
        "retry_strategy": payment.retry_strategy,
        "retry_policy": payment.retry_policy,
        "attempts": [_attempt_line(a) for a in attempts],
        "next_attempt_at": payment.next_attempt_at.isoformat() if payment.next_attempt_at else None,
        "failure_reason": payment.failure_reason,
        "reason": payment.retry_reason,
    }


def render(story: dict[str, Any]) -> str:
    lines = [
        f"payment {story['payment']}: {story['status']}, retry strategy {story['retry_strategy']}"
        f"{' (policy ' + story['retry_policy'] + ')' if story['retry_policy'] else ''}"
    ]
    attempts: Sequence[dict[str, Any]] = story["attempts"]
    for a in attempts:
        at = datetime.fromisoformat(a["at"])
        codes = f" ({', '.join(a['codes'])})" if a["codes"] else ""
        cls = f", class {a['decline_class']}" if a["decline_class"] else ""
        lines.append(f"  attempt {a['attempt']}: {_when(at)} on {a['processor']}: {a['outcome']}{codes}{cls}")
    if story["next_attempt_at"]:
        lines.append(f"next retry: {_when(datetime.fromisoformat(story['next_attempt_at']))}")
    elif story["failure_reason"]:
        lines.append(f"stopped: {story['failure_reason']}")
    if story["reason"]:
        lines.append(f"why: {story['reason']}")
    return "\n".join(lines)


def run_stored(store_url: str, payment_id: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    """The CLI's entry: open the store, explain one payment's retries, close it."""
    from router.state.store import open_store

    async def go() -> dict[str, Any] | None:
        store = open_store(store_url)
        await store.open()
        try:
            return await explain_retries(store, payment_id)
        finally:
            await store.close()

    try:
        story = asyncio.run(go())
    except (OSError, ValueError) as exc:
        print(f"cannot read the store {store_url!r}: {exc}", file=err)
        return 2
    if story is None:
        print(f"no payment {payment_id!r} in {store_url}", file=err)
        return 1
    print(json.dumps(story, indent=2) if as_json else render(story), file=out)
    return 0
