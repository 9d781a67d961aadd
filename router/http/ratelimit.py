"""Per-key rate limiting and request header limits for the sidecar.

Rate limiting: one token bucket per API key, keyed by the key's SHA-256 digest (the key itself is never held).
A bucket holds up to `burst` tokens and refills at `rate` tokens per second; each authenticated request takes
one. An empty bucket answers 429 in the v2 error shape (`type: rate_limit`, `code: rate_limit`) with a
`Retry-After` header: whole seconds until a token is back. Time comes from a `router.clock.Clock`, so tests
move it with `ManualClock`. Configure with `PAYROUTE_RATE_LIMIT`: `<rate>/s` or `<rate>/s:<burst>` (default
`100/s:200`), or `off`.

Header limits: aiohttp's parser refuses a header line over `PARSER_MAX_FIELD` bytes, or more than
`PARSER_MAX_HEADERS` headers, with a plain-text 400 before the app sees the request. Below those hard limits the
sidecar enforces tighter ones in the v2 shape: at most `MAX_HEADERS` headers, `MAX_HEADER_FIELD` bytes per
header, `MAX_HEADER_BYTES` in all (431 `request_header_fields_too_large`), and a URL of at most `MAX_URL` bytes
(414 `request_uri_too_long`).
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass

from router.clock import Clock
from router.errors import PayrouteError

ENV_VAR = "PAYROUTE_RATE_LIMIT"
DEFAULT_RATE = 100.0
DEFAULT_BURST = 200
# Buckets kept at most (least recently used dropped first): bounded memory whatever keys are presented.
MAX_BUCKETS = 10_000

MAX_HEADERS = 64
MAX_HEADER_FIELD = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_URL = 8 * 1024
# aiohttp's own limits, the backstop behind ours (its defaults are 8190 bytes and 128 headers).
PARSER_MAX_FIELD = 16 * 1024
PARSER_MAX_HEADERS = 128
HANDLER_ARGS = {
    "max_field_size": PARSER_MAX_FIELD,
    "max_line_size": PARSER_MAX_FIELD,
    "max_headers": PARSER_MAX_HEADERS,
}

_SPEC = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*s\s*(?::\s*([0-9]+)\s*)?$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    rate: float  # tokens per second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """`100/s`, `100/s:200` (rate per second, burst), or `off` (None)."""
        if text.strip().lower() == "off":
            return None
        match = _SPEC.match(text)
        if match is None:
            raise ValueError(f"{ENV_VAR}: expected '<rate>/s', '<rate>/s:<burst>' or 'off', got {text!r}")
        rate = float(match.group(1))
        burst = int(match.group(2)) if match.group(2) else max(1, math.ceil(rate))
        try:
            return cls(rate, burst)
        except ValueError as exc:
            raise ValueError(f"{ENV_VAR}: {exc}") from None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RateLimit | None:
        env = os.environ if environ is None else environ
        text = env.get(ENV_VAR)
        return cls(DEFAULT_RATE, DEFAULT_BURST) if text is None else cls.parse(text)


class RateLimiter:
    """Token buckets per key digest. `take(digest)` returns None when the request may go, else the seconds
    until it could."""

    def __init__(self, limit: RateLimit, clock: Clock, *, max_buckets: int = MAX_BUCKETS) -> None:
        self.limit = limit
        self.clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # digest -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, digest: bytes) -> float | None:
        now = self.clock.now().timestamp()
        tokens, at = self._buckets.pop(digest, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + max(0.0, now - at) * self.limit.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[digest] = (tokens, now)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.limit.rate


class RateLimited(PayrouteError):
    """The 429; `retry_after` is the `Retry-After` header's value (whole seconds, at least 1)."""

    def __init__(self, wait_s: float) -> None:
        self.retry_after = str(max(1, math.ceil(wait_s)))
        super().__init__(
            f"Too many requests with this API key; retry after {self.retry_after} s.",
            type="rate_limit",
            code="rate_limit",
            status=429,
        )


def check_headers(raw_headers: tuple[tuple[bytes, bytes], ...], url_length: int) -> None:
    """Raise the v2 error for a request over the sidecar's URL or header limits."""
    if url_length > MAX_URL:
        raise PayrouteError(
            f"The request URL must be at most {MAX_URL} bytes.", code="request_uri_too_long", status=414
        )
    if len(raw_headers) > MAX_HEADERS:
        raise _headers_too_large(f"at most {MAX_HEADERS} headers are accepted")
    total = 0
    for name, value in raw_headers:
        size = len(name) + len(value) + 4  # "name: value\r\n"
        if size > MAX_HEADER_FIELD:
            raise _headers_too_large(f"each header must be at most {MAX_HEADER_FIELD} bytes")
        total += size
    if total > MAX_HEADER_BYTES:
        raise _headers_too_large(f"the headers must be at most {MAX_HEADER_BYTES} bytes in all")


def _headers_too_large(why: str) -> PayrouteError:
    # Never name or echo the header: it may be the Authorization one.
    return PayrouteError(f"Request header fields too large: {why}.", code="request_header_fields_too_large", status=431)
