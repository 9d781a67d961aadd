"""Object ids with Stripe-style type prefixes, from one generator that tests and benchmarks can seed."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LENGTH = 24  # 24 base62 characters: about 143 bits of randomness
_SPACE = len(_ALPHABET) ** _LENGTH
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # base 3844: two characters per division
_SIX = len(_ALPHABET) ** 6  # six characters per big-integer division; the rest is small-integer work
# Random bytes to characters: a byte below 248 (4 x 62) maps to one of the 62 characters, each hit by exactly 4
# byte values, so every kept byte is a uniform character; bytes 248-255 are dropped (rejection sampling).
_KEEP_BELOW = 4 * len(_ALPHABET)
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(_KEEP_BELOW)) + bytes(256 - _KEEP_BELOW)
_DROPPED = bytes(range(_KEEP_BELOW, 256))
# 32 bytes leave fewer than 24 characters about once in 2.4 million draws; then another 32 are drawn.
_DRAW = 32
# Records, attempts and events lead with the time they were made, in milliseconds (8 base-62 characters,
# sortable as text until the year 8888), then 16 random characters (95 bits). Their primary keys then grow at the
# end of the index instead of landing on a random page each: a quarter less written to SQLite's log per create
# (benchmarks/bench_sidecar.py). Payment ids stay wholly random or derived from the Idempotency-Key.
_TIME_CHARS = 8

PREFIXES = {
    "payment": "osp",
    "payment_record": "pr",
    "attempt": "par",
    "event": "evt",
    "test_clock": "clock",
    "capture": "cap",
    "payment_method": "pm",
}


class IdGenerator:
    """Random ids by default; a seeded generator gives reproducible ids for simulations."""

    def __init__(self, seed: int | None = None, secret: bytes | None = None) -> None:
        self._rng: random.Random | None = random.Random(seed) if seed is not None else None
        # This installation's secret (Router.open reads it from the store): it keys the ids derived from
        # Idempotency-Keys. None: the unkeyed derivation (a router built without a store's secret).
        self.secret = secret

    def _token(self) -> str:
        # A seeded generator keeps its exact sequence (simulations and their reports depend on it).
        return _random_token() if self._rng is None else _base62(self._rng.randrange(_SPACE))

    def payment(self, livemode: bool) -> str:
        return f"osp_{'live' if livemode else 'test'}_{self._token()}"

    def payment_for(self, livemode: bool, material: str) -> str:
        """The one id a create under an Idempotency-Key can have (`material`: the key, with its account's scope): a
        retry after a crash finds the payment the first try wrote. Keyed with this install's secret, so the same
        key names another id on every install: an id cannot be guessed from what a client sends."""
        if self.secret is None:
            return self.payment_for_key(livemode, material)
        mac = hmac.new(self.secret, f"osp\0{livemode}\0{material}".encode(), hashlib.sha256).digest()
        return f"osp_{'live' if livemode else 'test'}_{_base62(int.from_bytes(mac, 'big') % _SPACE)}"

    @staticmethod
    def payment_for_key(livemode: bool, idempotency_key: str) -> str:
        """The one id a create with this Idempotency-Key can have: a retry after a crash finds the payment the
        first try wrote instead of creating a second one."""
        n = int.from_bytes(hashlib.sha256(f"osp\0{livemode}\0{idempotency_key}".encode()).digest(), "big") % _SPACE
        return f"osp_{'live' if livemode else 'test'}_{_base62(n)}"

    def new(self, kind: str) -> str:
        """A time-led id (see _TIME_CHARS); from a seeded generator, its reproducible random sequence."""
        if self._rng is not None:
            return f"{PREFIXES[kind]}_{self._token()}"
        return f"{PREFIXES[kind]}_{_time_chars(time.time_ns() // 1_000_000)}{_random_token()[_TIME_CHARS:]}"


_last_time: tuple[int, str] = (-1, "")  # the millisecond last written and its text: one create makes five ids in one


def _time_chars(ms: int) -> str:
    """`ms` as _TIME_CHARS base-62 characters, most significant first, so that text order is time order."""
    global _last_time
    last = _last_time  # one read of one tuple: another thread's write cannot pair a time with another's text
    if last[0] == ms:
        return last[1]
    rest, d0 = divmod(ms, 3844)
    rest, d1 = divmod(rest, 3844)
    rest, d2 = divmod(rest, 3844)
    text = _PAIRS[rest % 3844] + _PAIRS[d2] + _PAIRS[d1] + _PAIRS[d0]
    _last_time = (ms, text)
    return text


def _random_token() -> str:
    """24 independent uniform characters from the OS's randomness: the same distribution as one draw below 62**24
    written in base 62 (what this was), at a fraction of the cost of the big-integer arithmetic."""
    while True:
        chars = os.urandom(_DRAW).translate(_BYTE_TO_CHAR, _DROPPED)
        if len(chars) >= _LENGTH:
            return chars[:_LENGTH].decode("ascii")


def _base62(n: int) -> str:
    """`n` below 62**24 as 24 base-62 characters, least significant pair first (the order payment ids derived
    from an Idempotency-Key were first written in: it must never change)."""
    pairs: list[str] = []
    for _ in range(_LENGTH // 6):
        n, six = divmod(n, _SIX)
        rest, low = divmod(six, 3844)
        high, mid = divmod(rest, 3844)
        pairs += (_PAIRS[low], _PAIRS[mid], _PAIRS[high])
    return "".join(pairs)
