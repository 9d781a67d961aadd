"""Object ids with Stripe-style type prefixes, from one generator that tests and benchmarks can seed."""

from __future__ import annotations

import random
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24  # 24 base62 characters: about 143 bits of randomness
_SPACE = len(_ALPHABET) ** _LENGTH

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
        # One draw below 62**24 written in base 62: uniform over the same ids as 24 draws of one character,
        # at a tenth of the cost (ids were a third of create_payment's time in benchmarks/bench_overhead.py).
        n = secrets.randbelow(_SPACE) if self._rng is None else self._rng.randrange(_SPACE)
        chars = []
        for _ in range(_LENGTH):
            n, digit = divmod(n, 62)
            chars.append(_ALPHABET[digit])
        return "".join(chars)

    def payment(self, livemode: bool) -> str:
        return f"osp_{'live' if livemode else 'test'}_{self._token()}"

    def new(self, kind: str) -> str:
        return f"{PREFIXES[kind]}_{self._token()}"
