"""The adapter contract: what the router asks of every processor, and the one answer shape it accepts.

Adapters import nothing from `router`; the router knows adapters only through this module and the
`payroute.adapters` entry-point group (see `adapters.registry`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError


class OutcomeKind(enum.StrEnum):
    APPROVED = "approved"
    SOFT_DECLINE = "soft_decline"
    HARD_DECLINE = "hard_decline"
    AUTHENTICATION_REQUIRED = "authentication_required"
    PROCESSOR_ERROR = "processor_error"
    TIMEOUT = "timeout"

    @property
    def is_technical(self) -> bool:
        """Technical failures say nothing about the card: they count against the breaker and fail over."""
        return self in (OutcomeKind.PROCESSOR_ERROR, OutcomeKind.TIMEOUT)

    @property
    def is_decline(self) -> bool:
        return self in (
            OutcomeKind.SOFT_DECLINE,
            OutcomeKind.HARD_DECLINE,
            OutcomeKind.AUTHENTICATION_REQUIRED,
        )


class Cadence(enum.StrEnum):
    RECURRING = "recurring"
    UNSCHEDULED = "unscheduled"


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What the router knows of the card behind a payment-method token; any field may be unknown."""

    brand: str | None = None  # visa, mastercard, amex, discover, ...
    country: str | None = None  # ISO 3166-1 alpha-2, upper case
    funding: str | None = None  # credit, debit, prepaid
    fingerprint: str | None = None  # stable per card, for network retry caps


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """One authorization attempt at one processor.

    `attempt_id` is the processor idempotency key: a resend of the same attempt carries the same id,
    so the processor answers with the first result instead of charging twice.
    """

    attempt_id: str
    payment_id: str
    amount: int  # minor units
    currency: str  # ISO 4217, lower case
    customer: str
    payment_method: str
    cadence: Cadence
    capture_manual: bool = False
    network_transaction_id: str | None = None
    previous_processor_reference: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    card: CardInfo = CardInfo()
    # The payment's own clock time (a test clock's frozen time in a sandbox); simulators read outage
    # windows against it, real processors ignore it.
    requested_at: datetime | None = None
    livemode: bool = False


@dataclass(frozen=True, slots=True)
class CaptureRequest:
    attempt_id: str  # the capture's own idempotency key
    payment_id: str
    processor_reference: str
    amount: int
    currency: str
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelRequest:
    attempt_id: str
    payment_id: str
    processor_reference: str
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LookupRequest:
    """Ask a processor what became of an attempt we may or may not have sent (crash reconciliation)."""

    attempt_id: str
    payment_id: str
    processor_reference: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A processor's answer, normalized. `decline_code` uses Stripe's vocabulary whatever the processor."""

    kind: OutcomeKind
    processor_reference: str | None = None
    authorization_code: str | None = None
    decline_code: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    advice_code: str | None = None  # Stripe's advice_code: try_again_later, do_not_try_again, ...
    raw_code: str | None = None
    raw_message: str | None = None
    latency_ms: float = 0.0
    network_transaction_id: str | None = None
    card: CardInfo | None = None
    # Scrubbed request/response text kept on the attempt record for support and audit.
    transcript: str | None = None
    # True when the processor said our request itself was wrong (a 4xx); logged loudly, not retried there.
    request_invalid: bool = False
    # True for a technical outcome after which the processor may still have acted on the request: the connection
    # broke after the request went out, or a 2xx answer could not be read. Like a timeout, it is not a "no": the
    # router asks what became of the attempt before failing over, and chases it later if nobody can say.
    ambiguous: bool = False

    @property
    def approved(self) -> bool:
        return self.kind is OutcomeKind.APPROVED


class LookupAnswer(enum.Enum):
    """What `lookup` says when it cannot tell whether the processor saw an attempt.

    Some processors (Adyen) cannot be asked by our key, but deduplicate on it: resending the same attempt with
    the same idempotency key returns the first result instead of charging again. Such an adapter answers
    `UNKNOWN`, and the engine resends the attempt under its original id rather than guessing.
    """

    UNKNOWN = "unknown"


UNKNOWN: Final = LookupAnswer.UNKNOWN


class AdapterError(Exception):
    """Raised for adapter misconfiguration at build time (never for a processor's answer)."""


_Options = TypeVar("_Options", bound=BaseModel)


def build_options(model: type[_Options], name: str, /, **fields: Any) -> _Options:
    """An adapter's typed options from its config block, or an AdapterError naming the processor and the field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise AdapterError(f"{name}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@runtime_checkable
class ProcessorAdapter(Protocol):
    name: str

    async def authorize(self, req: AuthorizationRequest) -> Outcome: ...

    async def capture(self, req: CaptureRequest) -> Outcome: ...

    async def cancel(self, req: CancelRequest) -> Outcome: ...

    async def lookup(self, req: LookupRequest) -> Outcome | LookupAnswer | None:
        """The result of an earlier attempt; None when the processor certainly never saw it; `UNKNOWN` when it
        cannot say but deduplicates a resend of the same attempt id. Raises when the processor cannot be reached
        (the engine then leaves the payment alone and asks again later); never answers with a technical Outcome.
        """
        ...

    def scrub(self, transcript: str) -> str: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """The processor's block from the config, as the adapter factory receives it.

    `options` holds the adapter-specific keys (approval_rate, merchant_account, ...), with `${ENV}`
    references already resolved; `credentials` values are secrets and must never be logged.
    """

    name: str
    adapter: str
    base_url: str | None = None
    timeout_ms: int = 8000
    credentials: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    currencies: frozenset[str] | None = None  # None: any currency


class AdapterFactory(Protocol):
    """What an entry point in `payroute.adapters` must resolve to: usually the adapter class itself."""

    def __call__(self, settings: AdapterSettings) -> ProcessorAdapter: ...
