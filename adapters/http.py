"""The HTTP transport every real adapter shares: one pooled `aiohttp.ClientSession` per processor, a deadline
per processor, and a scrubbed transcript of each exchange.

The transport never raises for what happens on the wire: a timeout, a reset connection or an unreadable body
come back as an `Exchange` with `failure` set, so an adapter can always turn the answer into an `Outcome`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import parse_qsl

import aiohttp
from pydantic import SecretStr

from adapters.base import Answer, Outcome, OutcomeKind

log = logging.getLogger("payroute.adapters.http")

# The adapter answers on its own a little before the engine's deadline, so a timeout still carries a transcript.
DEADLINE_SHARE = 0.9
MAX_TRANSCRIPT_BODY = 16_000

Failure = Literal["timeout", "connection"]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer (or the lack of one)."""

    status: int | None  # None when no HTTP answer arrived
    body: str
    latency_ms: float
    transcript: str  # already scrubbed
    failure: Failure | None = None
    processor: str = ""
    # False only when the request certainly never left (the connection could not be opened).
    maybe_sent: bool = True

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body)

    @property
    def server_error(self) -> bool:
        return self.status is not None and self.status >= 500

    @property
    def client_error(self) -> bool:
        return self.status is not None and 400 <= self.status < 500


class HttpTransport:
    """Pooled HTTP for one processor. Create it anywhere; the session opens on first use, inside the loop."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        timeout_ms: int,
        scrub: Callable[[str], str],
        auth_headers: Mapping[str, SecretStr] | None = None,
        headers: Mapping[str, str] | None = None,
        pool_size: int = 100,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.deadline_s = timeout_ms / 1000 * DEADLINE_SHARE
        self._scrub = scrub
        self._auth = dict(auth_headers or {})
        # The credentials as sent, and the token after a scheme ("Bearer sk_…"): masked wherever they show up in a
        # transcript, even when no pattern knows them (a processor echoing its key in an error message).
        self._secrets = sorted(
            {part for v in self._auth.values() for part in (v.get_secret_value(), _token(v.get_secret_value()))} - {""},
            key=len,
            reverse=True,
        )
        self._headers = dict(headers or {})
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.deadline_s),
                raise_for_status=False,
            )
        return self._session

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Exchange:
        """Send one request and wait for the whole answer, at most `deadline_s`."""
        url = f"{self.base_url}{path}"
        sent_headers = {**self._headers, **(headers or {})}
        body: str | None = None
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"))
            sent_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = form
            sent_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        wire_headers = {**sent_headers, **{k: v.get_secret_value() for k, v in self._auth.items()}}
        # Form bodies are shown decoded: percent-encoding would hide a card number from the scrubber.
        shown = "&".join(f"{k}={v}" for k, v in parse_qsl(form, keep_blank_values=True)) if form is not None else body
        request_text = _render_request(method, url, params, sent_headers, list(self._auth), shown)
        started = time.perf_counter()
        status: int | None = None
        text = ""
        failure: Failure | None = None
        maybe_sent = True
        try:
            async with asyncio.timeout(self.deadline_s):
                async with self._open().request(
                    method, url, data=body, headers=wire_headers, params=params, allow_redirects=False
                ) as resp:
                    status = resp.status
                    text = await resp.text(errors="replace")
        except TimeoutError:
            failure = "timeout"
        except aiohttp.ClientError as exc:
            failure = "connection"
            text = f"{type(exc).__name__}: {exc}"
            # A refused or unresolvable connection sent nothing; a reset or close after connecting may have
            # cut off the answer to a request the processor received and acted on.
            maybe_sent = not isinstance(exc, aiohttp.ClientConnectorError)
        latency = (time.perf_counter() - started) * 1000
        answer = f"<-- {status if status is not None else failure} ({latency:.0f} ms)\n{_cut(text)}"
        transcript = _unsay(self._scrub(f"{request_text}\n\n{answer}"), self._secrets)
        if failure is not None or (status is not None and status >= 500):
            log.warning("%s %s %s: %s after %.0f ms", self.name, method, path, status or failure, latency)
        else:
            log.debug("%s exchange:\n%s", self.name, transcript)
        return Exchange(
            status=status if failure is None else None,
            body=text,
            latency_ms=latency,
            transcript=transcript,
            failure=failure,
            processor=self.name,
            maybe_sent=maybe_sent,
        )

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _token(value: str) -> str:
    token = value.split(" ", 1)[-1].strip()
    return token if len(token) >= 8 else ""


def _unsay(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "[FILTERED]")
    return text


def _render_request(
    method: str,
    url: str,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str],
    secret_names: list[str],
    body: str | None,
) -> str:
    query = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
    lines = [f"--> {method} {url}{query}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"{k}: [FILTERED]" for k in secret_names]
    if body is not None:
        lines += ["", _cut(body)]
    return "\n".join(lines)


def _cut(text: str) -> str:
    if len(text) <= MAX_TRANSCRIPT_BODY:
        return text
    return f"{text[:MAX_TRANSCRIPT_BODY]}... [{len(text) - MAX_TRANSCRIPT_BODY} more characters]"


def settle(
    exchange: Exchange, from_wire: Callable[[int, Any], Outcome], answers: Mapping[int, Answer] | None = None
) -> Outcome:
    """An exchange as an Outcome: transport failures and unreadable answers become technical outcomes, the rest
    is the adapter's pure `from_wire(status, body)`. The outcome carries the latency and the scrubbed transcript.
    `answers` is the adapter's table of what each HTTP status means (see `status_answer`): a body we cannot read
    is judged by its status alone. A timeout, or a connection lost after the request left, is unknown.
    """
    if exchange.failure == "timeout":
        outcome = Outcome(OutcomeKind.TIMEOUT, raw_message=f"no answer within {exchange.latency_ms:.0f} ms")
    elif exchange.failure is not None or exchange.status is None:
        outcome = Outcome(
            OutcomeKind.PROCESSOR_ERROR,
            raw_message=f"connection failed: {exchange.body[:200]}",
            ambiguous=exchange.maybe_sent,
        )
    else:
        try:
            # An empty body (a bare 401 or 404, say) reaches from_wire as None.
            outcome = from_wire(exchange.status, exchange.json() if exchange.body.strip() else None)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
            log.error("%s answered HTTP %s with a body we cannot read: %s", exchange.processor, exchange.status, exc)
            outcome = replace(
                http_error(exchange.status, None, answers=answers),
                raw_message=f"unreadable answer (HTTP {exchange.status}): {exchange.body[:500]}",
            )
            if 200 <= exchange.status < 300:
                # A success we cannot read may be an authorization: find out before anyone else is asked.
                outcome = replace(outcome, ambiguous=True, request_invalid=False)
    return replace(outcome, latency_ms=exchange.latency_ms, transcript=exchange.transcript)


# A status an adapter's table does not name: a 5xx may come after the processor acted (a gateway or proxy lost its
# answer), and a success or redirect the adapter does not expect may be an authorization, so both are unknown; a
# 4xx says the processor refused our request before processing it.
def status_answer(status: int, answers: Mapping[int, Answer]) -> Answer:
    found = answers.get(status)
    if found is not None:
        return found
    return Answer.REFUSED if 400 <= status < 500 else Answer.UNKNOWN


def http_error(
    status: int, message: str | None, code: str | None = None, answers: Mapping[int, Answer] | None = None
) -> Outcome:
    """A processor's error answer that is not a card decline, read through the adapter's table of answers:
    refused (nothing charged; a 4xx other than 408/429 also says our request was wrong) or unknown (ask first)."""
    answer = status_answer(status, answers or {})
    return Outcome(
        OutcomeKind.PROCESSOR_ERROR,
        raw_code=code or str(status),
        raw_message=message or f"HTTP {status}",
        request_invalid=answer is Answer.REFUSED and 400 <= status < 500 and status not in (408, 429),
        ambiguous=answer is Answer.UNKNOWN,
    )
