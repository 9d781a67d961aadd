"""API keys: `sk_test_…` and `sk_live_…` secret keys from `PAYROUTE_API_KEYS`, held only as SHA-256 digests.

A presented key is hashed and compared with every stored digest in constant time, so neither the answer nor
how long it takes says which key, or how much of one, matched. The key's mode sets `livemode`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from router.errors import PayrouteError

ENV_VAR = "PAYROUTE_API_KEYS"
_PREFIXES = {"sk_test_": False, "sk_live_": True}
_MIN_SECRET = 8  # characters after the prefix


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the mode their key is for."""

    livemode: bool
    key_digest: bytes = b""  # SHA-256 of the key presented: what rate limits are kept by

    @property
    def scope(self) -> str:
        """The idempotency scope: one per mode, shared by every key of that mode (keys rotate, callers do not)."""
        return "live" if self.livemode else "test"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def unauthorized(message: str, code: str) -> PayrouteError:
    return PayrouteError(message, type="invalid_request_error", code=code, status=401)


class ApiKeys:
    """The keys this sidecar accepts. Build with `ApiKeys.parse(os.environ["PAYROUTE_API_KEYS"])`."""

    def __init__(self, digests: list[tuple[bytes, bool]]) -> None:
        if not digests:
            raise ValueError(f"no API keys: set {ENV_VAR} to a comma-separated list of sk_test_/sk_live_ keys")
        self._digests = list(digests)

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        digests: list[tuple[bytes, bool]] = []
        for raw in text.split(","):
            key = raw.strip()
            if not key:
                continue
            mode = next((live for prefix, live in _PREFIXES.items() if key.startswith(prefix)), None)
            if mode is None or len(key) < len("sk_test_") + _MIN_SECRET:
                # Never echo the key itself: say which one by position only.
                position = len(digests) + 1
                raise ValueError(
                    f"{ENV_VAR}: key #{position} is not a secret key: use sk_test_… or sk_live_… "
                    f"with at least {_MIN_SECRET} characters after the prefix"
                )
            digests.append((_digest(key), mode))
        return cls(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def derive_secret(self, purpose: str) -> bytes:
        """A secret every replica holding the same keys derives alike (for signing page tokens)."""
        material = b"".join(sorted(d + (b"L" if live else b"T") for d, live in self._digests))
        return hmac.new(material, f"payroute:{purpose}".encode(), hashlib.sha256).digest()

    def identify(self, presented: str) -> Caller | None:
        """The caller a key belongs to, or None. Every stored digest is compared, whatever matched first."""
        digest = _digest(presented)
        found: bool | None = None
        for stored, livemode in self._digests:
            if hmac.compare_digest(digest, stored):
                found = livemode
        return None if found is None else Caller(found, digest)

    def authenticate(self, authorization: str | None) -> Caller:
        """Check an `Authorization` header (`Bearer <key>`, or Basic with the key as user name, as Stripe takes)."""
        key = _key_from_header(authorization)
        if key is None:
            raise unauthorized(
                "You did not provide an API key. Provide it in the Authorization header as 'Bearer <key>'.",
                "api_key_missing",
            )
        caller = self.identify(key)
        if caller is None:
            raise unauthorized("Invalid API Key provided.", "api_key_invalid")
        return caller


def _key_from_header(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None
