"""The configuration's schema: what a routing file may say, as frozen pydantic models.

`router.config.loader` reads a YAML file into a `Config` (with `${ENV}` references and errors that name file,
line, column and reason); `router.routing.rules` compiles it into a routing table.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from router.config.learning import (
    DEFAULT_AMOUNT_BANDS,
    DEFAULT_CHANGE_HALF_LIFE,
    DEFAULT_CHANGE_MIN,
    DEFAULT_CHANGE_Z,
    DEFAULT_HALF_LIFE,
    DEFAULT_HEALTH_WINDOW,
    DEFAULT_LEVELS,
    DEFAULT_STRENGTHS,
    check_levels,
)
from router.money import is_currency

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _to_duration(v: Any) -> Any:
    return parse_duration(v) if isinstance(v, str | int | float) else v


def parse_duration(value: str | int | float) -> timedelta:
    """'14d', '36h', '90m', '30s'; a bare number is seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d, w), e.g. '14d'")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


# A duration field: '14d', '36h', a bare number of seconds, or a timedelta.
Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_to_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerConfig(_Strict):
    fail_max: Annotated[int, Field(ge=1)] = 5
    reset_timeout_s: Annotated[float, Field(gt=0)] = 30.0


class CostConfig(_Strict):
    """What one authorization costs: `percent` of the amount plus a `fixed` fee in the payment's minor units.

    `fixed_by_currency` overrides `fixed` per currency (`{jpy: 40}`): 30 cents and 30 yen are not the same fee.
    """

    percent: Annotated[float, Field(ge=0, le=100)] = 0.0
    fixed: Annotated[int, Field(ge=0)] = 0  # minor units
    fixed_by_currency: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)

    @field_validator("fixed_by_currency")
    @classmethod
    def _fee_currencies(cls, v: dict[str, int]) -> dict[str, int]:
        out = {c.lower(): fee for c, fee in v.items()}
        bad = [c for c in out if not is_currency(c)]
        if bad:
            raise ValueError(f"unknown currency {bad[0]!r}")
        return out

    def fixed_for(self, currency: str) -> int:
        return self.fixed_by_currency.get(currency, self.fixed)

    def of(self, amount: int, currency: str | None = None) -> float:
        """The fee in minor units of the payment's currency."""
        fixed = self.fixed if currency is None else self.fixed_for(currency)
        return amount * self.percent / 100 + fixed


# Keys every processor block may carry; any other key is an adapter option, checked by the adapter itself.
PROCESSOR_COMMON_KEYS = frozenset({"adapter", "base_url", "credentials", "timeout_ms", "breaker", "cost", "currencies"})


def _currency_codes(v: list[str] | None) -> list[str] | None:
    """ISO 4217 codes as the router keeps them (lower case); an unknown one is refused."""
    if v is None:
        return v
    out = [c.lower() for c in v]
    bad = [c for c in out if not is_currency(c)]
    if bad:
        raise ValueError(f"unknown currency {bad[0]!r}")
    return out


class ProcessorConfig(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    adapter: Annotated[str, Field(min_length=1)]
    base_url: str | None = None
    credentials: dict[str, SecretStr] = Field(default_factory=dict)
    timeout_ms: Annotated[int, Field(ge=1, le=120_000)] = 8000
    breaker: BreakerConfig = BreakerConfig()
    cost: CostConfig = CostConfig()
    currencies: list[str] | None = None
    # Whose money it moves: true takes live-mode payments only, false test-mode ones only; unset, what its adapter
    # tells from its endpoint and credentials (`adapters.base.livemode_of`), and both when it cannot tell.
    livemode: bool | None = None

    _currencies = field_validator("currencies")(lambda v: _currency_codes(v))

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AmountRange(_Strict):
    """Bounds on the amount in minor units; `{gte: 100, lt: 500000}` is 1.00 up to, not including, 5000.00."""

    gte: int | None = None
    gt: int | None = None
    lte: int | None = None
    lt: int | None = None

    @model_validator(mode="after")
    def _sane(self) -> AmountRange:
        if self.gte is not None and self.gt is not None:
            raise ValueError("give gte or gt, not both")
        if self.lte is not None and self.lt is not None:
            raise ValueError("give lte or lt, not both")
        low, high = self.bounds
        if low is None and high is None:
            raise ValueError("an amount range needs at least one of gte, gt, lte, lt")
        if low is not None and high is not None and low > high:
            raise ValueError("the amount range is empty: no amount can match it")
        return self

    @property
    def bounds(self) -> tuple[int | None, int | None]:
        """Inclusive (low, high); None where open."""
        low = self.gte if self.gte is not None else (self.gt + 1 if self.gt is not None else None)
        high = self.lte if self.lte is not None else (self.lt - 1 if self.lt is not None else None)
        return low, high


class CustomerMatch(_Strict):
    """`{prefix: cus_vip_}` or `{in: [cus_1, cus_2]}` (one of the two)."""

    prefix: Annotated[str, Field(min_length=1)] | None = None
    any_of: list[str] | None = Field(default=None, alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one(self) -> CustomerMatch:
        if (self.prefix is None) == (self.any_of is None):
            raise ValueError("give exactly one of prefix or in")
        if self.any_of is not None and not self.any_of:
            raise ValueError("an empty customer list matches nothing")
        return self


FUNDING = frozenset({"credit", "debit", "prepaid"})


def _as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class RouteMatch(_Strict):
    """Conditions a payment must meet, all of them, for the route to take it.

    `customer` as a string is a prefix, as a list the exact ids. Card conditions (`brand`, `country`, `funding`)
    only match a payment whose payment method tells that detail: an unknown brand matches no `brand` list.
    """

    currency: list[str] | None = None
    cadence: Literal["recurring", "unscheduled"] | list[Literal["recurring", "unscheduled"]] | None = None
    amount: AmountRange | None = None
    metadata: dict[str, str] | None = None
    customer: CustomerMatch | list[str] | str | None = None
    brand: list[str] | None = None
    country: list[str] | None = None
    funding: list[str] | None = None

    @field_validator("currency", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("brand", "country", "funding", mode="before")
    @classmethod
    def _card_one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_text(cls, v: Any) -> Any:
        # Metadata values are strings on the payment; `plan: 3` in YAML means "3".
        if isinstance(v, dict):
            return {k: _as_text(x) for k, x in v.items()}
        return v

    @field_validator("currency", "brand", "country", "funding", "cadence")
    @classmethod
    def _nonempty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("an empty list matches nothing; leave the key out to match any value")
        return v

    @field_validator("brand")
    @classmethod
    def _brands(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [b.lower() for b in v]

    @field_validator("country")
    @classmethod
    def _countries(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        out = [c.upper() for c in v]
        bad = [c for c in out if len(c) != 2 or not c.isalpha()]
        if bad:
            raise ValueError(f"country {bad[0]!r} is not an ISO 3166-1 alpha-2 code")
        return out

    @field_validator("funding")
    @classmethod
    def _funding(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        out = [f.lower() for f in v]
        bad = [f for f in out if f not in FUNDING]
        if bad:
            raise ValueError(f"funding {bad[0]!r} is not one of credit, debit, prepaid")
        return out

    _currencies = field_validator("currency")(lambda v: _currency_codes(v))


Strategy = Literal["priority", "weighted", "success_rate", "least_cost"]


class RouteConfig(_Strict):
    name: Annotated[str, Field(min_length=1)]
    match: RouteMatch | None = None
    strategy: Strategy = "priority"
    processors: list[str] | dict[str, Annotated[float, Field(ge=0)]]
    cascade_on: list[str] = Field(default_factory=list)
    # What success_rate maximizes: approvals, or approval probability x amount - the processor's cost.
    objective: Literal["approvals", "net_revenue"] = "approvals"

    @field_validator("processors")
    @classmethod
    def _nonempty(cls, v: list[str] | dict[str, float]) -> list[str] | dict[str, float]:
        if not v:
            raise ValueError("a route needs at least one processor")
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError("a processor is listed twice")
        return v

    @property
    def processor_names(self) -> list[str]:
        return list(self.processors)

    @model_validator(mode="after")
    def _weights(self) -> RouteConfig:
        if self.strategy == "weighted" and isinstance(self.processors, dict) and sum(self.processors.values()) <= 0:
            raise ValueError("weighted route needs a positive total weight")
        return self


RetryStrategy = Literal["none", "scheduled", "heuristic", "smart", "best_available"]


class RetryPolicyConfig(_Strict):
    strategy: RetryStrategy = "best_available"
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    window: Duration = timedelta(days=14)
    schedule: list[timedelta] | None = None
    # smart's stop rule: no retry when no moment left in the window has at least this (calibrated) chance.
    stop_below: Annotated[float, Field(ge=0, lt=1)] = 0.025

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, list):
            raise ValueError("schedule must be a list of durations, e.g. [1d, 3d, 5d]")
        return [parse_duration(x) if isinstance(x, str | int | float) else x for x in v]

    @model_validator(mode="after")
    def _needs_schedule(self) -> RetryPolicyConfig:
        if self.strategy == "scheduled" and not self.schedule:
            raise ValueError("a scheduled policy needs a schedule")
        return self


class NetworkLimits(_Strict):
    visa_reattempts_30d: Annotated[int, Field(ge=0)] = 15
    mastercard_declines_24h: Annotated[int, Field(ge=0)] = 10
    mastercard_declines_30d: Annotated[int, Field(ge=0)] = 35


MIN_WEBHOOK_SECRET = 16


class WebhookConfig(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    events: list[str] = Field(default_factory=lambda: ["*"])
    secret: SecretStr
    enabled: bool = True
    # Whose events it receives (PAYROUTE_API_KEYS' account names); absent: every account's, as before accounts.
    accounts: Annotated[list[str], Field(min_length=1)] | None = None

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        # Every delivery is signed with it (HMAC-SHA256): an empty or short one (a variable substituted as nothing)
        # lets anyone sign events the endpoint would believe.
        if len(v.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise ValueError(f"a webhook secret signs every delivery: at least {MIN_WEBHOOK_SECRET} characters")
        return v


MAX_HEALTH_WINDOW = timedelta(minutes=10)


class SuccessRateConfig(_Strict):
    """How routes with `strategy: success_rate` learn (`router.routing.success_rate`, `.estimate`, `.stats`).

    - `segments`: the card segment levels evidence is kept for, coarsest first, each keeping every dimension of
      the one before (`router.routing.segments`); `amount_bands`: the bounds (minor units) of the `amount` band.
    - `half_life`: how fast evidence fades (stable differences between processors); `change_half_life`: the
      fast clock that sees a change within minutes; `change_z`: how many standard errors recent evidence must
      depart by (on at least `change_min` recent answers) to count as a change.
    - `prior_strength`: how many answers a level's parent weighs as, when shrinking a thin segment toward it;
      `prior`: the approval rate assumed with no evidence at all. One strength per level, coarse to fine: the
      processor on every route (toward every processor's rate on the route, or `prior` before there is any),
      the route, then each segment level (the last repeats for deeper levels).
    - `probe`: the least share of a segment's payments each healthy processor gets first (how a processor
      demoted by its declines is seen recovering); `hedge`: the share given to a processor is `hedge` times the
      probability it beats the best one, squared (lower concentrates on the best sooner).
    - A processor whose latest `demote_after_errors` calls, on any route and within the last `health_window`,
      all failed technically (processor errors, timeouts) is put behind the healthy processors until an answer
      breaks the run or the failures age out of the window; 0 turns this off (the breaker alone then keeps
      traffic away)."""

    health_window: Duration = DEFAULT_HEALTH_WINDOW
    demote_after_errors: Annotated[int, Field(ge=0, le=100)] = 2
    segments: list[list[str]] = Field(default_factory=lambda: [list(level) for level in DEFAULT_LEVELS])
    amount_bands: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: list(DEFAULT_AMOUNT_BANDS), max_length=32
    )
    half_life: Duration = DEFAULT_HALF_LIFE
    change_half_life: Duration = DEFAULT_CHANGE_HALF_LIFE
    change_z: Annotated[float, Field(gt=0)] = DEFAULT_CHANGE_Z
    change_min: Annotated[float, Field(ge=1)] = DEFAULT_CHANGE_MIN
    prior: Annotated[float, Field(gt=0, lt=1)] = 0.5
    prior_strength: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: list(DEFAULT_STRENGTHS), min_length=1
    )
    probe: Annotated[float, Field(ge=0, le=0.2)] = 0.01
    hedge: Annotated[float, Field(ge=0, le=1)] = 0.5

    @field_validator("segments")
    @classmethod
    def _levels(cls, v: list[list[str]]) -> list[list[str]]:
        reason = check_levels(v)
        if reason is not None:
            raise ValueError(reason)
        return v

    @model_validator(mode="after")
    def _clocks(self) -> SuccessRateConfig:
        if not timedelta(minutes=1) <= self.change_half_life < self.half_life <= timedelta(days=7):
            raise ValueError("want 1m <= change_half_life < half_life <= 7d")
        return self

    @field_validator("health_window")
    @classmethod
    def _window_bounds(cls, v: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= v <= MAX_HEALTH_WINDOW:
            raise ValueError("health_window must lie between 1s and 10m")
        return v


class RetentionConfig(_Strict):
    """How long finished bookkeeping is kept before the scheduler's housekeeping deletes it
    (`router.state.outbox.retention`).

    `null` keeps that kind forever. Payments, payment records and attempt records are never purged: they are the
    merchant's records, not bookkeeping."""

    # DESIGN.md promises a key lives at least 24 hours; a shorter setting would break that promise.
    idempotency_keys: OptionalDuration = timedelta(hours=24)
    # Settled (delivered or given-up) webhook deliveries and their attempts; a pending one only once its endpoint
    # is no longer configured (nothing would ever send it).
    webhook_deliveries: OptionalDuration = timedelta(days=30)
    # Events, as Stripe keeps them: 30 days. An event no endpoint's cursor has passed, one a pending delivery
    # still needs, and events of payments on test clocks (sandbox time, not the router's) are kept.
    events: OptionalDuration = timedelta(days=30)
    # What processors told us by webhook of attempts (Adyen's AUTHORISATION): needed only while the attempt is open,
    # which a processor settles within days.
    processor_notices: OptionalDuration = timedelta(days=30)
    # How often the housekeeping runs, on the router's clock.
    interval: Duration = timedelta(minutes=10)

    @field_validator("idempotency_keys")
    @classmethod
    def _keys_live_a_day(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v < timedelta(hours=24):
            raise ValueError("idempotency_keys must be at least 24h: keys are promised to live that long")
        return v

    @field_validator("webhook_deliveries", "events")
    @classmethod
    def _at_least_a_day(cls, v: timedelta | None) -> timedelta | None:
        if v is not None and v < timedelta(days=1):
            raise ValueError("must be at least 1d (or null to keep forever)")
        return v

    @field_validator("interval")
    @classmethod
    def _interval_bounds(cls, v: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= v <= timedelta(days=1):
            raise ValueError("interval must lie between 10s and 1d")
        return v


class Config(_Strict):
    version: Literal[1] = 1
    processors: dict[str, ProcessorConfig]
    routes: list[RouteConfig]
    retry_policies: dict[str, RetryPolicyConfig] = Field(default_factory=lambda: {"default": RetryPolicyConfig()})
    network_limits: NetworkLimits = NetworkLimits()
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    success_rate: SuccessRateConfig = SuccessRateConfig()
    retention: RetentionConfig = RetentionConfig()

    @model_validator(mode="after")
    def _references(self) -> Config:
        if not self.processors:
            raise ValueError("at least one processor is required")
        names = [r.name for r in self.routes]
        if "default" not in names:
            raise LocatedError(("routes",), "a route named 'default' is required (it catches every payment)")
        for i, route in enumerate(self.routes):
            if route.name in names[:i]:
                first = names.index(route.name)
                raise LocatedError(
                    ("routes", i, "name"), f"duplicate route name {route.name!r} (first at routes[{first}])"
                )
            if route.name == "default" and route.match is not None:
                raise LocatedError(
                    ("routes", i, "match"), "the default route takes every payment no other route took: no match"
                )
            for p in route.processor_names:
                if p not in self.processors:
                    raise LocatedError(("routes", i, "processors"), f"unknown processor {p!r}")
        if "default" not in self.retry_policies:
            raise LocatedError(("retry_policies",), "a retry policy named 'default' is required")
        urls = [w.url for w in self.webhooks]
        for i, url in enumerate(urls):
            if url in urls[:i]:
                # Deliveries and the fan-out cursor are kept per URL: two entries would share one queue, and each
                # take events meant for the other (or sign them with its own secret).
                raise LocatedError(
                    ("webhooks", i, "url"),
                    f"webhooks[{urls.index(url)}] has this url already: one entry per url (list its events there)",
                )
        return self

    def policy(self, name: str | None) -> RetryPolicyConfig:
        return self.retry_policies.get(name or "default") or self.retry_policies["default"]

    # Where each part of the file sits, for errors found after validation (an adapter refusing its options).
    _file: str = PrivateAttr(default="<config>")
    _marks: dict[tuple[str | int, ...], tuple[int, int]] = PrivateAttr(default_factory=dict)

    @property
    def file(self) -> str:
        return self._file

    def placed(self, file: str, marks: dict[tuple[str | int, ...], tuple[int, int]]) -> Config:
        """This config, knowing the file it was read from and where each of its parts sits in it."""
        self._file = file
        self._marks = marks
        return self

    def locate(self, *loc: str | int) -> tuple[int, int]:
        """(line, column) of the nearest located part of `loc` in the file; (0, 0) for a config built in code."""
        while loc:
            if loc in self._marks:
                return self._marks[loc]
            loc = loc[:-1]
        return self._marks.get((), (0, 0))


class LocatedError(ValueError):
    """A whole-file check that knows which part of the file it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
