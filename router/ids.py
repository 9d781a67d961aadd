"""Object ids with Stripe-style type prefixes, from one generator that tests and benchmarks can seed."""

from __future__ import annotations

import hashlib
import random
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24  # 24 base62 characters: about 143 bits of randomness
_SPACE = len(_ALPHABET) ** _LENGTH
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # base 3844: two characters per division

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
        # One draw below 62**24 written in base 62: uniform over the same ids as 24 draws of one character, at a
        # tenth of the cost (ids were a third of create_payment's time in benchmarks/bench_overhead.py).
        return _base62(secrets.randbelow(_SPACE) if self._rng is None else self._rng.randrange(_SPACE))

    def payment(self, livemode: bool) -> str:
        return f"osp_{'live' if livemode else 'test'}_{self._token()}"

    @staticmethod
    def payment_for_key(livemode: bool, idempotency_key: str) -> str:
        """The one id a create with this Idempotency-Key can have: a retry after a crash finds the payment the
        first try wrote instead of creating a second one."""
        n = int.from_bytes(hashlib.sha256(f"osp\0{livemode}\0{idempotency_key}".encode()).digest(), "big") % _SPACE
        return f"osp_{'live' if livemode else 'test'}_{_base62(n)}"

    def new(self, kind: str) -> str:
        return f"{PREFIXES[kind]}_{self._token()}"


def _base62(n: int) -> str:
    """`n` below 62**24 as 24 base-62 characters, two at a time."""
    pairs = []
    for _ in range(_LENGTH // 2):
        n, digits = divmod(n, 3844)
        pairs.append(_PAIRS[digits])
    return "".join(pairs)
