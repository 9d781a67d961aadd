"""What the planner reads from the card's other payments: a probe's retry-after advice holds for its followers,
and a card whose cardholder canceled is closed to new payments until it is approved again."""

from datetime import timedelta

from router.config.schema import RetryPolicyConfig
from router.model.records import CardSnapshot
from router.retry import RetryPlanner
from tests.retry.planning import APPROVED, GENERIC, STOLEN, T0, MemoryHistory, payment, with_mac

D = timedelta(days=1)
H = timedelta(hours=1)


async def test_follower_replanned_inside_probe_mac_27_floor() -> None:
    history = MemoryHistory()
    history.add("osp_test_1", T0, GENERIC)  # the follower's own decline (day 0)
    probe_at = T0 + 2 * D
    history.add("osp_probe", probe_at, with_mac("27"))  # the probe: do_not_honor + MAC 27 (after 4 days)
    follower = payment(
        2,
        status="pending_retry",
        first_declined_at=T0,
        retry_strategy="smart",
        last_decline_class="soft_generic",
        card=CardSnapshot(brand="mastercard", fingerprint="fp_1"),
    )
    planner = RetryPlanner(history)
    decision = await planner.recheck(
        follower, RetryPolicyConfig(strategy="smart", window=timedelta(days=14)), probe_at + H
    )
    assert decision is not None and decision.retry_at is not None, decision
    assert decision.retry_at >= probe_at + 4 * D, (
        f"follower re-planned at {decision.retry_at}, {decision.retry_at - probe_at} after the card's MAC 27 decline; "
        f"reason: {decision.reason}"
    )


async def test_card_closed_by_an_instruction_until_the_card_is_approved_again() -> None:
    """A new payment's card is closed by another payment's Mastercard advice 21 (not by a stolen card's decline,
    which the issuer answers again), and open again once approved since."""
    history = MemoryHistory()
    fresh = payment(0, status="pending", first_declined_at=None, card=CardSnapshot(brand="visa", fingerprint="fp_1"))
    planner = RetryPlanner(history)
    history.add("osp_stolen", T0 - H, STOLEN)
    assert await planner.card_closed(fresh, T0) is None
    history.add("osp_canceled", T0, with_mac("21"))
    closed = await planner.card_closed(fresh, T0 + H)
    assert closed is not None and "osp_canceled" in closed
    history.add("osp_later", T0 + 2 * H, APPROVED)
    assert await planner.card_closed(fresh, T0 + 3 * H) is None


def test_which_attempts_are_checked_against_the_card_caps_and_so_take_turns() -> None:
    """A retry under any cap of its brand, a first try only under one that counts declines (Mastercard's): a Visa
    card's first tries, which no cap counts, do not wait for each other; a card with no fingerprint has no caps."""
    planner = RetryPlanner(MemoryHistory())

    def attempt(status: str, brand: str, fingerprint: str | None = "fp_1") -> bool:
        card = CardSnapshot(brand=brand, fingerprint=fingerprint)
        declined = T0 if status == "pending_retry" else None
        return planner.reads_caps(payment(1, status=status, first_declined_at=declined, card=card))

    assert attempt("pending", "mastercard") and attempt("pending_retry", "mastercard")
    assert attempt("pending_retry", "visa") and not attempt("pending", "visa")
    assert not attempt("pending_retry", "amex") and not attempt("pending_retry", "mastercard", fingerprint=None)
