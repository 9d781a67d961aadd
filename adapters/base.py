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
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from adapters.scrub import remember_secret


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


class Answer(enum.StrEnum):
    """What an answer means for the money, the one question the engine asks before failing over.

    Each adapter keeps, as data in its module, the table of which of its processor's answers are which.
    """

    APPROVED = "approved"
    DECLINED = "declined"  # the issuer (or the processor for it) said no: nothing charged, the retry engine decides
    REFUSED = "refused"  # refused before processing (connection refused, a documented not-processed 4xx, 429)
    UNKNOWN = "unknown"  # may have charged: ask the same processor before anyone else is asked


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


class CardCredentials(BaseModel):
    """One processor's credentials for one card (its customer and its token), never another processor's.

    Each adapter declares its own subclass as `credentials_model`; tokens are `SecretStr`, so a request, a record
    or a log line shows them masked. `shown()` is what an API may return: every secret cut to its last four.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def shown(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name] = last4(value.get_secret_value())
            elif value is not None:
                out[name] = str(value)
        return out

    @classmethod
    def from_token(cls, customer: str | None, token: str) -> CardCredentials | None:
        """Credentials from a bare token given on a payment (no stored payment method): None unless this
        processor can tell the token is its own. A token is one processor's; the others must never receive it."""
        return None


_Credentials = TypeVar("_Credentials", bound=CardCredentials)


def credentials_for(req: AuthorizationRequest, model: type[_Credentials]) -> _Credentials | None:
    """The request's credentials if they are this processor's kind, else None (the adapter then refuses to send)."""
    return req.credentials if isinstance(req.credentials, model) else None


def no_credentials(processor: str) -> Outcome:
    """What an adapter answers, without a call, to a request that carries no credentials of its kind."""
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        raw_code="no_credentials",
        raw_message=f"{processor} holds no credentials for this card",
        request_invalid=True,
    )


class TokenCredentials(CardCredentials):
    """A card as a bare token, for processors that take any token: the simulator and test doubles. A bare token
    given on a payment becomes these for such a processor, and for no other."""

    payment_method: str = Field(min_length=1)
    customer: str | None = None

    @classmethod
    def from_token(cls, customer: str | None, token: str) -> TokenCredentials | None:
        return cls(payment_method=token, customer=customer) if token else None


def last4(secret: str) -> str:
    return f"…{secret[-4:]}" if len(secret) > 4 else "…"


@dataclass(frozen=True, slots=True)
class TransferData:
    """Connect destination charge: the connected account and the amount sent to it (None: all of it)."""

    destination: str
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    """What a processor takes as metadata. `reserved_keys` are keys the adapter adds itself (they count
    against `max_keys`); `sent` is False when the adapter sends no metadata at all (it stays with the router)."""

    max_keys: int
    max_key_length: int | None = None
    max_value_length: int | None = None
    reserved_keys: frozenset[str] = frozenset()
    sent: bool = True

    def problem(self, metadata: Mapping[str, str]) -> tuple[str, str] | None:
        """(param, reason) for the first way `metadata` breaks these limits, or None."""
        if not self.sent or not metadata:
            return None
        room = self.max_keys - len(self.reserved_keys)
        if len(metadata) > room:
            return "metadata", f"can hold at most {room} keys at this processor."
        for key, value in metadata.items():
            if key in self.reserved_keys:
                return f"metadata.{key}", "is a key the router sets itself at this processor."
            if self.max_key_length is not None and len(key) > self.max_key_length:
                return f"metadata.{key}", f"keys can be at most {self.max_key_length} characters at this processor."
            if self.max_value_length is not None and len(value) > self.max_value_length:
                limit = self.max_value_length
                return f"metadata.{key}", f"values can be at most {limit} characters at this processor."
        return None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a processor can carry, declared by its adapter so the router refuses at create what it could not
    send, instead of dropping it in silence."""

    metadata: MetadataLimits
    connect: bool = False  # transfer_data, application_fee_amount, on_behalf_of (destination charges)
    network_transaction_id: bool = False  # takes the scheme reference of an earlier payment on MIT requests
    mcc: bool = False  # takes a merchant category code per request (not only the account's own)


# What a processor that stands in for any other (the simulator, a test double) can carry.
CARRIES_ANYTHING = Capabilities(
    metadata=MetadataLimits(max_keys=50), connect=True, network_transaction_id=True, mcc=True
)


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
    cadence: Cadence
    # THIS processor's credentials for the card (its customer and its token), never another processor's: the
    # only card data an adapter receives.
    credentials: CardCredentials
    capture_manual: bool = False
    network_transaction_id: str | None = None  # of the first customer-initiated payment: the MIT chain
    previous_processor_reference: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    card: CardInfo = CardInfo()
    transfer_data: TransferData | None = None
    application_fee_amount: int | None = None
    on_behalf_of: str | None = None
    mcc: str | None = None  # the merchant category code this payment asks for (only to processors that take one)
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
    # When the request went out and when we ask, on the router's clock: a processor whose search lags (Stripe)
    # can say "never saw it" only once the lag has passed.
    sent_at: datetime | None = None
    asked_at: datetime | None = None
    # What the processor told us of this attempt by its own webhook, as `accept_notification` handed it over and the
    # router kept it (shared by every replica, kept across reloads), or None.
    notice: Mapping[str, Any] | None = None
    # The payment's currency (ISO, lowercase): an answer in another is no answer for it.
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One attempt's answer in a processor's webhook, as the adapter read it (signature checked): the router keeps
    `body` and hands it back on `LookupRequest.notice` when it asks about `attempt_id`."""

    attempt_id: str
    body: Mapping[str, Any]


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
    # True once the processor, asked about a technical outcome, said it never charged the card: a refusal now.
    never_charged: bool = False

    @property
    def approved(self) -> bool:
        return self.kind is OutcomeKind.APPROVED

    @property
    def answer(self) -> Answer:
        """What this outcome means for the money (see `Answer`)."""
        if self.kind is OutcomeKind.APPROVED:
            return Answer.APPROVED
        if self.kind.is_decline:
            return Answer.DECLINED
        if not self.never_charged and (self.kind is OutcomeKind.TIMEOUT or self.ambiguous):
            return Answer.UNKNOWN
        return Answer.REFUSED


class LookupAnswer(enum.Enum):
    """What `lookup` says when it cannot tell whether the processor saw an attempt.

    Some processors (Adyen) cannot be asked by our key, but deduplicate on it: resending the same attempt with
    the same idempotency key returns the first result instead of charging again. Such an adapter answers
    `UNKNOWN`, and the engine resends the attempt under its original id rather than guessing.
    """

    UNKNOWN = "unknown"
    # Cannot say yet, and a resend would NOT be deduplicated (Checkout.com keeps no idempotent result for a
    # request answered 5xx): ask again later, send nothing.
    NOT_YET = "not_yet"


UNKNOWN: Final = LookupAnswer.UNKNOWN
NOT_YET: Final = LookupAnswer.NOT_YET


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
    """What the core calls. An adapter may also have `livemode: bool | None` (see `livemode_of`): whether its
    endpoint and credentials move real money, so that test-mode payments never reach them (nor live ones a
    sandbox)."""

    name: str

    @property
    def credentials_model(self) -> type[CardCredentials]:
        """The model of this processor's credentials for one card (what a payment method holds for it)."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What this processor can carry: the router refuses at create what it could not send."""
        ...

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


def livemode_of(adapter: object) -> bool | None:
    """Whose money an adapter moves, as it can tell from its own endpoint and credentials: True for a live
    processor (real cards, real money), False for a processor's sandbox, None when it cannot tell (a local fake, a
    custom endpoint, the simulator). An adapter says so with a `livemode` attribute; one without it cannot tell."""
    value = getattr(adapter, "livemode", None)
    return value if isinstance(value, bool) else None


def host_mode(url: str, live: tuple[str, ...], sandbox: tuple[str, ...]) -> bool | None:
    """`livemode_of` from an endpoint: True when its host is one of `live` (or ends with one that starts with a dot
    or a dash: an account's own prefix before it), False for `sandbox` likewise, None for any other host."""
    host = (urlsplit(url).hostname or "").lower()

    def among(hosts: tuple[str, ...]) -> bool:
        return any(host == h or (h[:1] in ".-" and host.endswith(h)) for h in hosts)

    return True if among(live) else False if among(sandbox) else None


# Credential keys that name an account rather than prove who we are: kept, not masked in transcripts.
NOT_SECRET = frozenset({"merchant_account", "merchant_account_id", "processing_channel_id"})


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
    # Plain strings are accepted and wrapped: what is kept is SecretStr, so repr() and str() show no secret.
    credentials: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    currencies: frozenset[str] | None = None  # None: any currency

    def __post_init__(self) -> None:
        wrapped = {k: v if isinstance(v, SecretStr) else SecretStr(str(v)) for k, v in self.credentials.items()}
        for key, value in wrapped.items():
            if key not in NOT_SECRET:
                remember_secret(value.get_secret_value())
        object.__setattr__(self, "credentials", wrapped)

    def secret(self, key: str, default: str = "") -> str:
        """One credential, exposed: the single place an adapter reads a secret's value."""
        value = self.credentials.get(key)
        return value.get_secret_value() if value is not None else default


class AdapterFactory(Protocol):
    """What an entry point in `payroute.adapters` must resolve to: usually the adapter class itself."""

    def __call__(self, settings: AdapterSettings) -> ProcessorAdapter: ...
