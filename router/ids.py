"""Object ids with Stripe-style type prefixes, from one generator that tests and benchmarks can seed."""

from __future__ import annotations

import random
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24  # 24 base62 characters: about 143 bits of randomness

PREFIXES = {
    "payment": "osp",
    "payment_record": "pr",
    "attempt": "par",
    "event": "evt",
    "test_clock": "clock",
    "capture": "cap",
}


class IdGenerator:
    """Random ids by default; a seeded generator gives reproducible ids for simulations."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng: random.Random | None = random.Random(seed) if seed is not None else None

    def _token(self) -> str:
        if self._rng is None:
            return "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        return "".join(self._rng.choice(_ALPHABET) for _ in range(_LENGTH))

    def payment(self, livemode: bool) -> str:
        return f"osp_{'live' if livemode else 'test'}_{self._token()}"

    def new(self, kind: str) -> str:
        return f"{PREFIXES[kind]}_{self._token()}"
