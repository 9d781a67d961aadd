"""API keys: `sk_test_…` and `sk_live_…` secret keys from `PAYROUTE_API_KEYS`, held only as SHA-256 digests.

Keys are grouped by account: `acct_shop: sk_test_…, sk_live_…; acct_blog: sk_test_…`. A plain comma-separated
list is one account, `default`. An account sees only its own payments, records, events and idempotency keys;
its key's mode sets `livemode` within it.

Admin operations (`POST /v2/admin/config/reload`) take only a key from `PAYROUTE_ADMIN_KEYS` (comma-separated,
at least 16 characters each); an API key is refused there with a 403, and without admin keys nobody may call them
(SIGHUP and the file watcher still reload).

Restricted keys, `rk_test_…` and `rk_live_…` (read-only, as Stripe calls them), read the API and open the ops
console like a secret key of their account; any write with one is refused with a 403.

A presented key is hashed and compared with every stored digest in constant time, so neither the answer nor
how long it takes says which key, or how much of one, matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from router.errors import PayrouteError
from router.model.records import DEFAULT_ACCOUNT
from router.payments.idempotency import scope_for

ENV_VAR = "PAYROUTE_API_KEYS"
ADMIN_ENV_VAR = "PAYROUTE_ADMIN_KEYS"
_PREFIXES = {"sk_test_": False, "sk_live_": True, "rk_test_": False, "rk_live_": True}
_MIN_SECRET = 8  # characters after the prefix
_MIN_ADMIN = 16
_ACCOUNT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the account their key belongs to and the mode it is for."""

    livemode: bool
    key_digest: bytes = b""  # SHA-256 of the key presented: what rate limits are kept by
    account: str = DEFAULT_ACCOUNT
    read_only: bool = False  # a restricted (rk_) key

    @property
    def scope(self) -> str:
        """The idempotency scope: one per account and mode, shared by its keys of that mode (keys rotate, callers
        do not); never shared between accounts."""
        return scope_for(self.account, self.livemode)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def unauthorized(message: str, code: str) -> PayrouteError:
    return PayrouteError(message, type="invalid_request_error", code=code, status=401)


def read_only_refused() -> PayrouteError:
    return PayrouteError(
        "This API key is restricted (rk_…): it can read payments and open the console, not change anything. "
        "Use a secret key (sk_…) for writes.",
        code="insufficient_permissions",
        status=403,
    )


class ApiKeys:
    """The keys this sidecar accepts. Build with `ApiKeys.from_env()` (PAYROUTE_API_KEYS, PAYROUTE_ADMIN_KEYS)."""

    def __init__(
        self,
        digests: list[tuple[bytes, bool]],
        admin: list[bytes] | None = None,
        accounts: Mapping[bytes, str] | None = None,
        read_only: frozenset[bytes] = frozenset(),
    ) -> None:
        if not digests:
            raise ValueError(f"no API keys: set {ENV_VAR} to a comma-separated list of sk_test_/sk_live_ keys")
        self._digests = list(digests)
        self._accounts = dict(accounts or {})  # key digest -> account; absent: the default account
        self._admin = list(admin or [])
        self._read_only = read_only

    @classmethod
    def parse(cls, text: str, admin: str = "") -> ApiKeys:
        """`sk_test_…,sk_live_…` (one account) or `acct_a: sk_test_…, sk_live_…; acct_b: sk_test_…`."""
        digests: list[tuple[bytes, bool]] = []
        accounts: dict[bytes, str] = {}
        read_only: set[bytes] = set()
        groups = [g for g in text.split(";") if g.strip()]
        for group in groups:
            account, colon, keys = group.partition(":")
            if colon:
                account = account.strip()
                if not _ACCOUNT.match(account):
                    raise ValueError(
                        f"{ENV_VAR}: account #{groups.index(group) + 1} needs a name of letters, digits, _ or - "
                        "before its ':'"
                    )
                if account in accounts.values():
                    raise ValueError(f"{ENV_VAR}: account {account!r} is given twice")
            elif len(groups) > 1:
                raise ValueError(f"{ENV_VAR}: with several accounts, name each one: 'acct_a: sk_test_…; acct_b: …'")
            else:
                keys, account = group, DEFAULT_ACCOUNT
            for raw in keys.split(","):
                key = raw.strip()
                if not key:
                    continue
                mode = next((live for prefix, live in _PREFIXES.items() if key.startswith(prefix)), None)
                if mode is None or len(key) < len("sk_test_") + _MIN_SECRET:
                    # Never echo the key itself: say which one by position only.
                    position = len(digests) + 1
                    raise ValueError(
                        f"{ENV_VAR}: key #{position} is not an API key: use sk_test_…, sk_live_… (or rk_test_…, "
                        f"rk_live_… for read-only) with at least {_MIN_SECRET} characters after the prefix"
                    )
                digest = _digest(key)
                if digest in accounts and accounts[digest] != account:
                    raise ValueError(f"{ENV_VAR}: key #{len(digests) + 1} belongs to two accounts")
                digests.append((digest, mode))
                accounts[digest] = account
                if key.startswith("rk_"):
                    read_only.add(digest)
        admin_digests: list[bytes] = []
        for i, raw in enumerate(k.strip() for k in admin.split(",")):
            if not raw:
                continue
            if len(raw) < _MIN_ADMIN:
                raise ValueError(f"{ADMIN_ENV_VAR}: key #{i + 1} must be at least {_MIN_ADMIN} characters")
            if _digest(raw) in accounts:
                raise ValueError(f"{ADMIN_ENV_VAR}: key #{i + 1} is also an API key; give admins a key of their own")
            admin_digests.append(_digest(raw))
        return cls(digests, admin_digests, accounts, frozenset(read_only))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiKeys:
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ENV_VAR, ""), env.get(ADMIN_ENV_VAR, ""))

    @property
    def accounts(self) -> list[str]:
        return sorted(set(self._accounts.values()) or {DEFAULT_ACCOUNT})

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
        if found is None:
            return None
        return Caller(found, digest, self._accounts.get(digest, DEFAULT_ACCOUNT), digest in self._read_only)

    def authenticate_admin(self, authorization: str | None) -> None:
        """Let an admin key through; anything else is a 401 (no key, an unknown one) or a 403 (an API key)."""
        key = _key_from_header(authorization)
        if key is None:
            raise unauthorized(
                "You did not provide an admin key. Provide one of PAYROUTE_ADMIN_KEYS as 'Bearer <key>'.",
                "api_key_missing",
            )
        digest = _digest(key)
        admin = False
        for stored in self._admin:
            if hmac.compare_digest(digest, stored):
                admin = True
        if admin:
            return
        if self.identify(key) is not None:
            raise PayrouteError(
                "This operation needs an admin key (PAYROUTE_ADMIN_KEYS); API keys cannot call it.",
                code="insufficient_permissions",
                status=403,
            )
        raise unauthorized("Invalid admin key provided.", "api_key_invalid")

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
