"""What a decline means for a retry, read from the one decline table (`adapters.declines`).

An outcome may carry four codes, each read through that table by where it came from:

- `decline_code`: Stripe's decline vocabulary, which every adapter normalizes onto (`Outcome.decline_code`);
- `iso`: the ISO 8583 response code the issuer sent (`Outcome.network_decline_code`), read as the Stripe code it
  stands for;
- `mac`: Mastercard's Merchant Advice Code (`Outcome.network_advice_code`);
- `advice`: Stripe's `advice_code` (`Outcome.advice_code`).

`classify(outcome)` reads every code an outcome carries and combines them safely: any source that says "never
retry" wins, the class comes from the most specific code present, and delay floors (Mastercard advice codes
24-30) take the longest. DESIGN.md section 6 is the authority for what the networks require.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from adapters.base import Outcome, OutcomeKind
from adapters.declines import (
    ADVICE,
    DECLINE_CODES,
    ISO_TO_STRIPE,
    NETWORK_ADVICE,
    DeclineClass,
    DeclineRule,
    Source,
    decline_rule,
    normalize,
    rule,
)

# Every code the table knows, by source: a view of adapters.declines, for listing and tests.
RULES: Mapping[tuple[Source, str], DeclineRule] = {
    **{("decline_code", code): r for code, r in DECLINE_CODES.items()},
    **{("iso", iso): DECLINE_CODES[code] for iso, code in ISO_TO_STRIPE.items()},
    **{("mac", code): r for code, r in NETWORK_ADVICE.items()},
    **{("advice", code): r for code, r in ADVICE.items()},
}


def _r(cls: DeclineClass, meaning: str) -> DeclineRule:
    return DeclineRule(
        cls, cls not in (DeclineClass.HARD, DeclineClass.DATA, DeclineClass.AUTHENTICATION), meaning=meaning
    )


# When a decline carries no code we know, the outcome kind decides.
_BY_KIND: Mapping[OutcomeKind, DeclineRule] = {
    OutcomeKind.HARD_DECLINE: decline_rule(DeclineClass.HARD, "hard decline"),
    OutcomeKind.SOFT_DECLINE: decline_rule(DeclineClass.SOFT_GENERIC, "soft decline"),
    OutcomeKind.AUTHENTICATION_REQUIRED: decline_rule(DeclineClass.AUTHENTICATION, "authentication required"),
    OutcomeKind.PROCESSOR_ERROR: decline_rule(DeclineClass.TECHNICAL, "processor error"),
    OutcomeKind.TIMEOUT: decline_rule(DeclineClass.TECHNICAL, "processor timeout"),
}
NO_ANSWER = decline_rule(DeclineClass.TECHNICAL, "no processor could be asked")

# The class comes from the most specific code present: the normalized decline code, then the issuer's ISO code.
_CLASS_SOURCES: tuple[Source, ...] = ("decline_code", "iso")


@dataclass(frozen=True, slots=True)
class Decline:
    """What an outcome means for a retry, with the codes that decided it."""

    decline_class: DeclineClass
    retry: bool
    min_delay: timedelta
    codes: tuple[tuple[Source, str], ...] = ()

    @property
    def mac(self) -> str | None:
        return next((code for source, code in self.codes if source == "mac"), None)


def classify(outcome: Outcome | None) -> Decline:
    """The decline class and retry allowance of a failed attempt (None: no processor could be asked)."""
    if outcome is None:
        return Decline(NO_ANSWER.decline_class, NO_ANSWER.retry, NO_ANSWER.min_delay)
    by_kind = _BY_KIND.get(outcome.kind, NO_ANSWER)
    if outcome.kind.is_technical:
        # Nobody at the network decided anything; codes on a technical failure are the processor's own.
        return Decline(by_kind.decline_class, by_kind.retry, by_kind.min_delay)
    sent: tuple[tuple[Source, str | None], ...] = (
        ("decline_code", outcome.decline_code),
        ("iso", outcome.network_decline_code),
        ("mac", outcome.network_advice_code),
        ("advice", outcome.advice_code),
    )
    found = [((source, normalize(source, value)), r) for source, value in sent if value and (r := rule(source, value))]
    cls = next((r.decline_class for src in _CLASS_SOURCES for (s, _), r in found if s == src), None)
    if cls is None:
        cls = next((r.decline_class for _, r in found), by_kind.decline_class)
    retry = by_kind.retry and all(r.retry for _, r in found)
    if outcome.kind is OutcomeKind.AUTHENTICATION_REQUIRED:
        cls = DeclineClass.AUTHENTICATION
    elif not retry and cls not in (DeclineClass.DATA, DeclineClass.AUTHENTICATION):
        # Any "never retry" signal (a hard kind, a hard ISO code, MAC 03/21, do_not_try_again) makes it hard.
        cls = DeclineClass.HARD
    floor = max((r.min_delay for _, r in found), default=timedelta(0))
    return Decline(cls, retry, floor, tuple(key for key, _ in found))


__all__ = ["RULES", "Decline", "DeclineClass", "DeclineRule", "classify", "rule"]
