"""The retry planner: the guards every strategy obeys, around the strategy the policy puts in force.

After a failed attempt, `decide` answers "retry at T, or stop and why":
1. the outcome is classified through the decline table (`router.retry.declines`): a hard decline, a data error
   or `authentication_required` is never retried (`rejected_by_partner`);
2. strategy `none` stops after one attempt;
3. `max_attempts` reached ends in `retries_exhausted`;
4. the strategy proposes a time, never earlier than a Mastercard advice-code floor;
5. the network caps for the card (counted across processors and payments) push it later if full;
6. a time past the window (first decline + policy window) ends in `exceeded_retry_window`.

`best_available` resolves, per decline class and card, to the strategy the evidence supports: `smart` when its
population model has enough retries of the class or the card's own history settles a payday rhythm, else
`heuristic`; the decision says which and why. `smart` retries of payments sharing a card go as a group
(`router.retry.groups`): one probe, the others just after it and only if it found the money.

`recheck` runs the time-dependent guards again when a retry falls due, because other payments on the same
card may have used up a cap in the meantime, or a probe on the card may have found no money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from adapters.base import Outcome, OutcomeKind
from adapters.declines import ISO_TO_STRIPE, normalize
from router.config.schema import NetworkLimits, RetryPolicyConfig
from router.model.records import Payment
from router.model.states import Status
from router.retry import caps
from router.retry.declines import Decline, DeclineClass, classify
from router.retry.groups import CardAttempt, CardGroups, ProbeResult
from router.retry.rhythm import Observation
from router.retry.smart import CardEvidence, LearnedAttempt, SmartStrategy, class_of, decline_of
from router.retry.strategies import Heuristic, NoRetry, RetryContext, Scheduled, Strategy
from router.state.store.base import CardActivity


class RetryHistory(Protocol):
    """What the planner reads from the store."""

    async def card_activity(self, fingerprint: str, since: datetime) -> CardActivity: ...

    async def card_declines(self, fingerprint: str, since: datetime, limit: int) -> list[datetime]:
        """The declines among the card's newest `limit` attempts since `since`, oldest first."""
        ...

    async def attempt_stats(
        self, since: datetime, limit: int, until: datetime | None = None
    ) -> Sequence[LearnedAttempt]: ...


@runtime_checkable
class EvidenceSource(Protocol):
    """The card's and customer's settled attempts across all their payments (newest first), for smart."""

    async def card_history(
        self, fingerprint: str | None, customer: str | None, since: datetime, limit: int
    ) -> Sequence[LearnedAttempt]: ...


# How far back a card's own history is read (within retention), and how much of it.
EVIDENCE_LOOKBACK = timedelta(days=120)
EVIDENCE_LIMIT = 80
# How many of a card's newest attempts a new payment's first try reads for its decline caps.
FIRST_TRY_LOOKBACK = 200
# How many of a card's newest answers a new payment reads for a decline that closed the card: after one, the card's
# payments are neither sent nor retried, so it is among the newest few unless many were in flight together.
CLOSED_LOOKBACK = 8


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry_at: datetime | None  # None: stop
    failure_reason: str | None  # set when stopping
    strategy: str  # the strategy in force: none, scheduled, heuristic, smart
    decline_class: str | None = None
    expected_success: float | None = None  # smart's estimate for the chosen time
    reason: str | None = None  # when and why (which rhythm or feature), or why it stops


class RetryPlanner:
    def __init__(
        self,
        history: RetryHistory | None = None,
        *,
        limits: NetworkLimits | None = None,
        smart: SmartStrategy | None = None,
        evidence: EvidenceSource | None = None,
        groups: CardGroups | None = None,
    ) -> None:
        self.history = history
        self.limits = limits or NetworkLimits()
        self.smart = smart or SmartStrategy(history)
        self.evidence = evidence if evidence is not None else _evidence_of(history)
        self.groups = groups or CardGroups()
        self.heuristic = Heuristic()
        self.scheduled = Scheduled()
        self.none = NoRetry()

    def strategy_for(
        self,
        payment: Payment,
        policy: RetryPolicyConfig,
        decline: Decline,
        card: CardEvidence | None = None,
        now: datetime | None = None,
    ) -> tuple[Strategy, str | None]:
        """The strategy in force, and for `best_available` why it resolved so."""
        if payment.retry_strategy_requested == "none" or policy.strategy == "none":
            return self.none, None
        if policy.strategy == "scheduled":
            return self.scheduled, None
        if policy.strategy == "heuristic":
            return self.heuristic, None
        if policy.strategy == "smart":
            return self.smart, None
        cls = decline.decline_class
        learned = self.smart.model.observations(cls)
        if self.smart.ready(cls):
            return self.smart, f"best_available: smart ({learned} {cls.value} retries learned)"
        if cls is DeclineClass.SOFT_FUNDS and now is not None:
            # The rhythm model starts from the heuristic's own paydays (business-day-adjusted 1st and 15th, and
            # Fridays) and adds this card's and customer's history: never less informed than the heuristic.
            rhythm, weight = self.smart.card_rhythm(card, now)
            return self.smart, f"best_available: smart (payday rhythm {rhythm.describe()}, {weight:.0%})"
        return self.heuristic, (
            f"best_available: heuristic ({learned} of {self.smart.min_observations} {cls.value} retries learned)"
        )

    async def decide(
        self,
        payment: Payment,
        outcome: Outcome | None,
        policy: RetryPolicyConfig,
        now: datetime,
        limits: NetworkLimits | None = None,
    ) -> RetryDecision:
        decline = classify(outcome)
        cls = decline.decline_class
        learning = policy.strategy in ("smart", "best_available") and payment.retry_strategy_requested != "none"
        card: CardEvidence | None = None
        if learning and decline.retry:
            await self._refresh(payment, now)
            card = await self.card_evidence(payment, now)
        strategy, resolved = self.strategy_for(payment, policy, decline, card, now)

        def stop(reason: str, why: str | None = None) -> RetryDecision:
            return RetryDecision(None, reason, strategy.name, cls.value, reason=_join(resolved, why))

        if not decline.retry:
            return stop("rejected_by_partner", f"{cls.value} decline: never retried")
        if strategy.name == "none":
            return stop("retries_exhausted" if cls is DeclineClass.TECHNICAL else "rejected_by_partner")
        if payment.attempts >= policy.max_attempts:
            return stop("retries_exhausted", f"{policy.max_attempts} attempts made")
        window_end = (payment.first_declined_at or now) + policy.window
        ctx = RetryContext(payment, decline, policy, now, now + decline.min_delay, window_end)
        if ctx.earliest > window_end:
            return stop("exceeded_retry_window", "the advice-code wait ends after the retry window")
        expected = None
        why: str | None = None
        if isinstance(strategy, SmartStrategy):
            choice = strategy.choose(ctx, card)
            proposed: datetime | None = choice.at
            expected = choice.expected_success
            why = choice.reason
        else:
            proposed = await strategy.propose(ctx)
            if proposed is not None:
                why = f"{strategy.name}: {cls.value} decline, retry {_ago(proposed - now)} later"
        if proposed is None:
            return stop("retries_exhausted", why)
        if decline.min_delay and proposed <= ctx.earliest:
            why = _join(why, f"Mastercard advice code {decline.mac}: not before {_ago(decline.min_delay)}")
        declined_at = now if outcome is not None and outcome.kind.is_decline else None
        at = await self._within_caps(payment, max(proposed, ctx.earliest), limits, declined_at)
        if at is None or at > window_end:
            return stop("exceeded_retry_window", _join(why, "the network caps leave no slot inside the window"))
        if at > max(proposed, ctx.earliest):
            why = _join(why, f"moved to {at:%Y-%m-%d %H:%M} UTC by the card's network caps")
        if isinstance(strategy, SmartStrategy) and payment.card.fingerprint:
            placed, probe = self.groups.place(payment.card.fingerprint, payment.id, at, now)
            if probe is not None:
                later = await self._within_caps(payment, placed, limits, declined_at)
                if later is not None and later <= window_end:
                    why = _join(why, f"follows {probe}, this card's probe, by {_ago(later - at)}")
                    at = later
        return RetryDecision(at, None, strategy.name, cls.value, expected, _join(resolved, why))

    async def recheck(
        self, payment: Payment, policy: RetryPolicyConfig, now: datetime, limits: NetworkLimits | None = None
    ) -> RetryDecision | None:
        """Before a due retry is sent: None to go ahead, else a later time or a stop."""
        strategy = payment.retry_strategy
        window_end = (payment.first_declined_at or now) + policy.window
        if now > window_end:
            return RetryDecision(None, "exceeded_retry_window", strategy, payment.last_decline_class)
        stopped = await self._card_never_again(payment, now)
        if stopped is not None:
            return RetryDecision(None, "rejected_by_partner", strategy, payment.last_decline_class, reason=stopped)
        replanned = await self._after_probe(payment, policy, now, window_end)
        if replanned is not None:
            return replanned
        at = await self._within_caps(payment, now, limits)
        if at == now:
            return None
        if at is None or at > window_end:
            return RetryDecision(None, "exceeded_retry_window", strategy, payment.last_decline_class)
        return RetryDecision(at, None, strategy, payment.last_decline_class, reason="held by the card's network caps")

    async def card_closed(self, payment: Payment, now: datetime) -> str | None:
        """Why a new payment's card may not be tried at all: within the networks' 30 days another of its payments
        was declined with an instruction against any further try (Mastercard advice 03 or 21, the cardholder's
        revocation R0/R1/R3, an issuer's do_not_try_again), and the card was approved nowhere since: Mastercard
        charges for each try after 03/21. A lost, stolen or expired card's decline ends that payment and the retries
        of the card's others; a new payment is still sent and the issuer answers it (the card may be renewed under
        its number)."""
        return await self._closed_by_another(payment, now - caps.LONGEST_WINDOW, CLOSED_LOOKBACK, retries=False)

    async def _card_never_again(self, payment: Payment, now: datetime) -> str | None:
        """Why the card may never be retried, when another of its payments was declined for good (lost, stolen,
        closed, Mastercard advice 03/21) within the networks' window before this one's first decline, or since,
        and the card was approved nowhere after it: a card the networks forbid retrying is so for every payment on
        it (DESIGN.md section 6), not only the one that heard it, and whichever heard it first."""
        since = (payment.first_declined_at or now) - caps.LONGEST_WINDOW
        return await self._closed_by_another(payment, since, EVIDENCE_LIMIT)

    async def _closed_by_another(
        self, payment: Payment, since: datetime, limit: int, *, retries: bool = True
    ) -> str | None:
        """Another payment's decline of the card since `since` (among its newest `limit` answers) with no approval
        of it after: for `retries`, any hard one; for a new payment, one that instructs against any further try."""
        fingerprint = payment.card.fingerprint
        if self.evidence is None or not fingerprint:
            return None
        # The card's newest answer first: most cards were approved last, which settles it on one row (every create
        # asks this; the `limit` newest answers, each taken out of its record's JSON, were 7% of a create's CPU on
        # a card paying again and again).
        newest = await self.evidence.card_history(fingerprint, None, since, 1)
        if not newest or (newest[0].payment_id != payment.id and newest[0].outcome == OutcomeKind.APPROVED.value):
            return None
        for r in await self.evidence.card_history(fingerprint, None, since, limit):  # newest first
            if r.payment_id == payment.id:
                continue
            if r.outcome == OutcomeKind.APPROVED.value:
                return None  # approved since: the card lives (a new card under the same number, say)
            if _final(r) if retries else _instructed(r):
                return f"the card was declined for good on {r.payment_id} ({r.decline_code or r.outcome})"
        return None

    async def _after_probe(
        self, payment: Payment, policy: RetryPolicyConfig, now: datetime, window_end: datetime
    ) -> RetryDecision | None:
        """A smart follower whose card's probe just found no money is planned again, that decline as evidence."""
        fingerprint = payment.card.fingerprint
        if payment.retry_strategy != "smart" or self.evidence is None or not fingerprint:
            return None
        since = now - 2 * self.groups.gap
        rows = await self.evidence.card_history(fingerprint, None, since, EVIDENCE_LIMIT)
        attempts = [_card_attempt(r) for r in rows if r.outcome is not None]
        if self.groups.result(payment.id, payment.last_decline_class, attempts, since) is not ProbeResult.DECLINED:
            return None
        cls = DeclineClass(payment.last_decline_class or DeclineClass.SOFT_GENERIC.value)
        # The probe's own advice holds for the card (Mastercard 24-30: retry after an hour to ten days).
        earliest = now
        for r in rows:  # newest first: the probe's decline
            probe_decline = decline_of(r) if r.payment_id != payment.id else None
            if probe_decline is not None:
                earliest = max(now, r.created + probe_decline.min_delay)
                break
        decline = Decline(cls, True, earliest - now)
        await self._refresh(payment, now)
        card = await self.card_evidence(payment, now)
        ctx = RetryContext(payment, decline, policy, now, earliest, window_end)
        choice = self.smart.choose(ctx, card)
        if choice.at is None:
            return RetryDecision(None, "retries_exhausted", "smart", cls.value, reason=choice.reason)
        at, probe = self.groups.place(fingerprint, payment.id, choice.at, now)
        why = _join("the card's probe found no money", choice.reason)
        if probe is not None:
            why = _join(why, f"follows {probe}")
        # The caps are checked again when this new time falls due.
        return RetryDecision(at, None, "smart", cls.value, choice.expected_success, why)

    async def card_evidence(self, payment: Payment, now: datetime) -> CardEvidence | None:
        """The card's and customer's money evidence across their payments, for smart."""
        fingerprint = payment.card.fingerprint
        if self.evidence is None or not (fingerprint or payment.customer):
            return None
        rows = await self.evidence.card_history(fingerprint, payment.customer, now - EVIDENCE_LOOKBACK, EVIDENCE_LIMIT)
        observations: list[Observation] = []
        last_approval: datetime | None = None
        for r in rows:
            if r.outcome is None or r.state != "settled" or r.created > now:
                continue
            cls = class_of(r)
            if cls is None:
                observations.append(Observation(r.created, True))
                last_approval = r.created if last_approval is None else max(last_approval, r.created)
            elif cls is DeclineClass.SOFT_FUNDS:
                observations.append(Observation(r.created, False))
        return CardEvidence(fingerprint or payment.customer, tuple(observations), last_approval)

    async def allows_now(
        self,
        payment: Payment,
        now: datetime,
        limits: NetworkLimits | None = None,
        *,
        declined_at: datetime | None = None,
    ) -> bool:
        """May the card be tried again right now (a cascade to another processor) within the network caps?"""
        return await self._within_caps(payment, now, limits, declined_at) == now

    async def _refresh(self, payment: Payment, now: datetime) -> None:
        """Bring smart's model up to `now`, on the router's own time only: one model serves every account and mode,
        and a test clock's sandbox time, days ahead, would leave it reading nothing older."""
        if payment.test_clock is None:
            await self.smart.refresh(now)

    def reads_caps(self, payment: Payment) -> bool:
        """Whether this payment's next attempt is checked against its card's network caps. Such attempts of one
        card take turns (router.payments.turns); a Visa card's first tries, which no cap counts, do not wait for
        each other."""
        return bool(self._caps_of(payment, first_try=payment.status == Status.PENDING))

    def _caps_of(self, payment: Payment, *, first_try: bool) -> tuple[caps.Cap, ...]:
        """The caps an attempt of this payment is checked against: a retry (or a cascade) every cap of its brand, a
        first try those that count declines (Mastercard's; Visa counts reattempts, which a first try is not). None
        without the card's fingerprint or a history to count in."""
        if self.history is None or not payment.card.fingerprint:
            return ()
        brand_caps = caps.caps_for(payment.card.brand)
        return tuple(c for c in brand_caps if c.counts == "declines") if first_try else brand_caps

    async def first_try_at(self, payment: Payment, now: datetime, limits: NetworkLimits | None = None) -> datetime:
        """When a new payment's first try may go: now, unless the card's decline caps (Mastercard: declined
        authorizations per card in 24 hours and in 30 days, whatever transaction they were) are full; then when a
        slot frees, or in 30 days if a cap of zero never frees one. Visa's cap counts reattempts of a declined
        payment, which a new payment's first try is not."""
        fingerprint = payment.card.fingerprint
        if self.history is None or not fingerprint or not self._caps_of(payment, first_try=True):
            return now  # no query at all for a card whose brand counts no declines (Visa, Amex, unknown)
        limits = limits or self.limits
        # A bounded read: the card's newest FIRST_TRY_LOOKBACK attempts, not every one of 30 days (a card paying
        # thousands of times, a business card or a load test's test card, made each create read them all). A
        # partial index of declines alone made the read exact but cost every create 9% more instructions
        # (callgrind, keyed create on SQLite): too much for a second line of defence behind the retry caps.
        declines = await self.history.card_declines(fingerprint, now - caps.LONGEST_WINDOW, FIRST_TRY_LOOKBACK)
        at = caps.next_allowed(payment.card.brand, CardActivity(declines, declines), now, limits, "declines")
        return at if at is not None else now + caps.LONGEST_WINDOW

    async def _within_caps(
        self,
        payment: Payment,
        at: datetime,
        limits: NetworkLimits | None,
        declined_at: datetime | None = None,
    ) -> datetime | None:
        fingerprint = payment.card.fingerprint
        if self.history is None or not fingerprint or not self._caps_of(payment, first_try=False):
            return at
        since = min(at, declined_at or at) - caps.LOOKBACK
        activity = await self.history.card_activity(fingerprint, since)
        if declined_at is not None:
            # The attempt just declined is settled in the same write as this decision: count it now.
            activity = caps.with_decline(activity, declined_at)
        return caps.next_allowed(payment.card.brand, activity, at, limits or self.limits)


def _evidence_of(history: object) -> EvidenceSource | None:
    return history if isinstance(history, EvidenceSource) else None


# Declines that instruct against any further try on the card by this merchant (router.retry.planner.card_closed).
_INSTRUCTIONS = frozenset(
    {"revocation_of_authorization", "revocation_of_all_authorizations", "stop_payment_order", "do_not_try_again"}
)
_INSTRUCTING_ADVICE = frozenset({"03", "21"})


def _instructed(r: LearnedAttempt) -> bool:
    """A decline carrying an instruction against any further try: Mastercard advice 03/21, a revocation or stop
    order (as a decline code, or as the issuer's ISO code R0/R1/R3 beside a generic one), or an issuer's
    do_not_try_again (as a decline code or as Stripe's advice code)."""
    iso = ISO_TO_STRIPE.get(normalize("iso", r.network_decline_code)) if r.network_decline_code else None
    return (
        (r.decline_code or "") in _INSTRUCTIONS
        or iso in _INSTRUCTIONS
        or (r.network_advice_code or "") in _INSTRUCTING_ADVICE
        or r.advice_code == "do_not_try_again"
    )


def _final(r: LearnedAttempt) -> bool:
    """A settled decline that forbids any retry of the card (by the same table every decline is read with): a hard
    one. A data or authentication decline forbids retrying that payment only (its amount, its currency, its
    customer's presence), not the card's other payments."""
    decline = decline_of(r)
    return decline is not None and decline.decline_class is DeclineClass.HARD


def _card_attempt(r: LearnedAttempt) -> CardAttempt:
    cls = class_of(r)
    return CardAttempt(r.payment_id, r.created, cls is None, cls.value if cls is not None else None)


def _join(*parts: str | None) -> str | None:
    found = [p for p in parts if p]
    return "; ".join(found) if found else None


def _ago(delta: timedelta) -> str:
    hours = delta / timedelta(hours=1)
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"
