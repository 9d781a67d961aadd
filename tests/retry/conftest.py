"""Retry tests: a scripted processor whose answers per payment method are set by each test, and configs.

The scripted adapter is a real adapter (registered under the name `scripted`), not a mock: the engine calls it
through the same contract as any processor. Its scripts live at module level so a router reopened on the same
store (a restart) meets the same processor state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest

from adapters import registry
from adapters.base import (
    CARRIES_ANYTHING,
    AdapterSettings,
    AuthorizationRequest,
    CancelRequest,
    CaptureRequest,
    LookupRequest,
    Outcome,
    OutcomeKind,
    TokenCredentials,
)


@dataclass(frozen=True, slots=True)
class Call:
    processor: str
    attempt_id: str
    payment_method: str
    at: datetime | None


# payment method token -> outcomes still to give, first first; an empty script approves.
SCRIPTS: dict[str, list[Outcome]] = {}
CALLS: list[Call] = []
ANSWERS: dict[str, Outcome] = {}


class ScriptedAdapter:
    credentials_model = TokenCredentials
    capabilities = CARRIES_ANYTHING

    def __init__(self, settings: AdapterSettings) -> None:
        self.name = settings.name

    async def authorize(self, req: AuthorizationRequest) -> Outcome:
        if req.attempt_id in ANSWERS:
            return ANSWERS[req.attempt_id]
        token = req.credentials.payment_method if isinstance(req.credentials, TokenCredentials) else ""
        CALLS.append(Call(self.name, req.attempt_id, token, req.requested_at))
        script = SCRIPTS.get(token)
        outcome = script.pop(0) if script else Outcome(OutcomeKind.APPROVED, raw_code="00")
        outcome = Outcome(
            kind=outcome.kind,
            processor_reference=f"{self.name}_{req.attempt_id}",
            decline_code=outcome.decline_code,
            network_decline_code=outcome.network_decline_code,
            network_advice_code=outcome.network_advice_code,
            advice_code=outcome.advice_code,
            raw_code=outcome.raw_code,
            card=req.card,
        )
        ANSWERS[req.attempt_id] = outcome
        return outcome

    async def capture(self, req: CaptureRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def cancel(self, req: CancelRequest) -> Outcome:
        return Outcome(OutcomeKind.APPROVED, processor_reference=req.processor_reference)

    async def lookup(self, req: LookupRequest) -> Outcome | None:
        return ANSWERS.get(req.attempt_id)

    def scrub(self, transcript: str) -> str:
        return transcript

    async def close(self) -> None:
        return None


registry.register("scripted", ScriptedAdapter)


def soft(code: str = "insufficient_funds", iso: str = "51", mac: str | None = None) -> Outcome:
    return Outcome(OutcomeKind.SOFT_DECLINE, decline_code=code, network_decline_code=iso, network_advice_code=mac)


def hard(code: str = "stolen_card", iso: str = "43") -> Outcome:
    return Outcome(OutcomeKind.HARD_DECLINE, decline_code=code, network_decline_code=iso)


def script(token: str, *outcomes: Outcome) -> None:
    SCRIPTS[token] = list(outcomes)


def calls_for(token: str) -> list[Call]:
    return [c for c in CALLS if c.payment_method == token]


@pytest.fixture(autouse=True)
def fresh_scripts() -> Iterator[None]:
    SCRIPTS.clear()
    CALLS.clear()
    ANSWERS.clear()
    yield
    SCRIPTS.clear()
    CALLS.clear()
    ANSWERS.clear()


def config(policy: str, *, limits: str = "", extra_policies: str = "") -> str:
    """Two scripted processors: usd payments go to proc_a, eur payments to proc_b."""
    return f"""
version: 1
processors:
  proc_a: {{adapter: scripted, timeout_ms: 500}}
  proc_b: {{adapter: scripted, timeout_ms: 500}}
routes:
  - name: eur
    match: {{currency: [eur]}}
    processors: [proc_b]
  - name: default
    processors: [proc_a]
retry_policies:
  default: {policy}
{extra_policies}
{limits}
"""
