"""Opaque, signed list positions: the `page` tokens in `next_page_url` and `previous_page_url`.

A token is `base64url(json).base64url(hmac)`: the position it names cannot be changed without the secret,
and it is bound to the list and the mode it came from, so a test-mode token never pages through live data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from router.errors import PayrouteError

_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bad_page() -> PayrouteError:
    return PayrouteError(
        "The page token is invalid: use next_page_url or previous_page_url exactly as returned.",
        code="parameter_invalid",
        param="page",
    )


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the page-token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, kind: str, livemode: bool, position: dict[str, Any]) -> str:
        body = _b64(json.dumps({"k": kind, "m": livemode, **position}, separators=(",", ":")).encode())
        return f"{body}.{_b64(self._mac(body))}"

    def decode(self, token: str, kind: str, livemode: bool) -> dict[str, Any]:
        """The position a token names; a token that was altered, or made for another list or mode, is a 400."""
        body, dot, mac = token.partition(".")
        if not dot or not body or not mac:
            raise bad_page()
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            raise bad_page() from None
        if not hmac.compare_digest(given, self._mac(body)):
            raise bad_page()
        try:
            payload = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            raise bad_page() from None
        if not isinstance(payload, dict) or payload.get("k") != kind or payload.get("m") is not livemode:
            raise bad_page()
        return payload
