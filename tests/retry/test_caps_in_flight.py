"""The network rules the engine keeps with answers still out: an authorization awaiting its answer counts as a
possible decline toward the card's caps; "try again later" advice stops a cascade; an adapter that raises may have
charged, so the processor is asked before any other is tried."""

import asyncio
from datetime import timedelta
from pathlib import Path

from adapters import registry
from adapters.base import (
    AuthorizationRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)
from router import ManualClock, Router
from tests.conftest import START
from tests.retry.conftest import ANSWERS, ScriptedAdapter, calls_for, script, soft

H = timedelta(hours=1)
GATE: dict[str, asyncio.Event] = {}
ENTERED: dict[str, asyncio.Event] = {}


class GatedAdapter(ScriptedAdapter):
    """The scripted adapter, but a call for a gated token waits at the processor until released."""

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        token = req.credentials.payment_method if isinstance(req.credentials, TokenCredentials) else ""
        key = token
        if key in GATE and not ENTERED[key].is_set():  # only the first call after gating waits
            ENTERED[key].set()
            await GATE[key].wait()
        return await super().authorize(req)


registry.register("gated", GatedAdapter)


def body(token: str, cus: str = "cus_1") -> dict[str, object]:
    return {
        "amount": {"value": 1999, "currency": "usd"},
        "cadence": "recurring",
        "customer": cus,
        "payment_method": token,
    }


async def open_router(tmp_path: Path, text: str, clock: ManualClock) -> Router:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return await Router.open(path, store=f"sqlite:///{tmp_path / 'p.db'}", clock=clock, deliver_webhooks=False)


MC = """
version: 1
processors:
  proc_a: {adapter: gated, timeout_ms: 5000}
routes:
  - name: default
    processors: [proc_a]
retry_policies:
  default: {strategy: scheduled, schedule: [1h, 1h, 1h, 1h], max_attempts: 5, window: 14d}
network_limits: {mastercard_declines_24h: 2}
"""


async def test_mastercard_in_flight_attempt_counts_as_a_possible_decline(tmp_path: Path) -> None:
    """Mastercard: at most N declines per card in 24 h ('a retry that could produce one decline too many is not
    made'). An attempt still waiting for its answer is not counted as a possible decline, so a retry of another
    payment on the card goes out alongside it and the card ends with N+1 declines in 24 h."""
    clock = ManualClock(START)
    router = await open_router(tmp_path, MC, clock)
    token = "pm_card_mastercard_shared"
    script(token, *[soft("do_not_honor", "05")] * 10)
    await router.create_payment(body(token))  # decline 1, retry due in 1 h
    clock.advance(H)
    key = token
    GATE[key], ENTERED[key] = asyncio.Event(), asyncio.Event()
    y_task = asyncio.create_task(router.create_payment(body(token, "cus_2")))  # first try of Y, in flight
    await asyncio.wait_for(ENTERED[key].wait(), 5)
    await router.run_due()  # X's retry: recheck sees 1 decline < 2 -> sends
    GATE[key].set()
    await y_task
    await router.close()
    times = [c.at for c in calls_for(token) if c.at is not None]
    assert len(times) == 2, f"{len(times)} declines of one Mastercard card within {max(times) - min(times)}"


CASCADE = """
version: 1
processors:
  proc_a: {adapter: scripted, timeout_ms: 500}
  proc_b: {adapter: scripted, timeout_ms: 500}
routes:
  - name: default
    processors: [proc_a, proc_b]
    cascade_on: [do_not_honor, generic_decline]
retry_policies:
  default: {strategy: heuristic}
"""


async def test_no_cascade_after_try_again_later_advice(tmp_path: Path) -> None:
    """MAC 02 ('cannot approve at this time, try again later') and Stripe advice_code try_again_later say: not
    now. The engine reattempts the same card at once at the next processor."""
    clock = ManualClock(START)
    router = await open_router(tmp_path, CASCADE, clock)
    script("pm_card_mastercard_m02", soft("do_not_honor", "05", mac="02"))
    await router.create_payment(body("pm_card_mastercard_m02"))
    script(
        "pm_card_visa_tal",
        Outcome(OutcomeKind.SOFT_DECLINE, decline_code="generic_decline", advice_code="try_again_later"),
    )
    await router.create_payment(body("pm_card_visa_tal"))
    await router.close()
    got = (
        [c.processor for c in calls_for("pm_card_mastercard_m02")],
        [c.processor for c in calls_for("pm_card_visa_tal")],
    )
    assert got == (["proc_a"], ["proc_a"]), got


class ChargesThenRaises(ScriptedAdapter):
    """The processor authorizes (its answer can be looked up), then the adapter raises reading the answer: a bug in
    its own mapping code, after the money moved."""

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        ANSWERS[req.attempt_id] = Outcome(OutcomeKind.APPROVED, processor_reference=f"ch_{req.attempt_id}")
        raise IndexError("list index out of range")


registry.register("charges_then_raises", ChargesThenRaises)

RAISES = """
version: 1
processors:
  proc_a: {adapter: charges_then_raises, timeout_ms: 500}
  proc_b: {adapter: scripted, timeout_ms: 500}
routes:
  - name: default
    processors: [proc_a, proc_b]
retry_policies:
  default: {strategy: heuristic}
"""


async def test_adapter_that_raised_is_asked_before_failing_over(tmp_path: Path) -> None:
    """The exception is not "never charged": the payment is the approval proc_a made, and proc_b is never called."""
    clock = ManualClock(START)
    router = await open_router(tmp_path, RAISES, clock)
    p = await router.create_payment(body("pm_card_visa_raise"))
    await router.close()
    assert p["status"] == "succeeded"
    assert calls_for("pm_card_visa_raise") == []  # proc_b, the scripted one, saw nothing


async def test_two_first_tries_of_one_card_sent_together_do_not_both_pass_a_cap_with_one_slot(tmp_path: Path) -> None:
    """Two new payments of one Mastercard card created at the same moment, one decline left under its 24 h cap:
    each read the card's declines before the other's attempt was written, so both went out and the card ended
    one decline over. One is sent; the other waits for a slot."""
    clock = ManualClock(START)
    router = await open_router(tmp_path, MC, clock)
    token = "pm_card_mastercard_together"
    script(token, *[soft("do_not_honor", "05")] * 10)
    await router.create_payment(body(token))  # decline 1 of 2
    clock.advance(timedelta(minutes=1))
    y, z = await asyncio.gather(
        router.create_payment(body(token, "cus_2")), router.create_payment(body(token, "cus_3"))
    )
    await router.close()
    assert len(calls_for(token)) == 2, "one of the two was sent, not both"
    assert sorted((y["status"], z["status"])) == ["pending", "pending_retry"], (y["status"], z["status"])


async def test_a_card_whose_attempt_waits_at_its_processor_holds_back_none_of_its_other_payments(
    tmp_path: Path,
) -> None:
    """The card's turn ends once an attempt is written down, before its processor is called: another payment of
    the card is checked against the caps (the one in flight counted) and sent while the first still waits."""
    clock = ManualClock(START)
    router = await open_router(tmp_path, MC, clock)
    token = "pm_card_mastercard_slow"
    script(token, soft("do_not_honor", "05"), soft("do_not_honor", "05"))
    GATE[token], ENTERED[token] = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(router.create_payment(body(token)))
    await asyncio.wait_for(ENTERED[token].wait(), 5)  # at the processor, its answer held back
    other = await asyncio.wait_for(router.create_payment(body(token, "cus_2")), 5)
    assert not waiting.done()
    GATE[token].set()
    first = await waiting
    await router.close()
    assert (first["status"], other["status"]) == ("pending_retry", "pending_retry")
    assert len(calls_for(token)) == 2
