"""The HTTP sidecar: Stripe's v2 Off-Session Payments dialect over the same `Router` the library uses."""

from router.http.app import create_app
from router.http.auth import ApiKeys
from router.http.pagination import PageTokens
from router.http.server import ServeOptions, serve
from router.http.sidecar import Sidecar

__all__ = ["ApiKeys", "PageTokens", "ServeOptions", "Sidecar", "create_app", "serve"]
