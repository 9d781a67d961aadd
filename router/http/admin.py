"""The operator's endpoints: config reload, metrics, health, readiness and the OpenAPI document."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from router.config.loader import ConfigError
from router.errors import PayrouteError
from router.http import metrics
from router.http.edge import reply
from router.http.openapi import build_openapi
from router.http.request import read_body
from router.http.sidecar import SIDECAR
from router.model.objects import dumps
from router.model.params import (
    NoParams,
    parse_params,
)

log = logging.getLogger("payroute.http")


async def reload_config(request: web.Request) -> web.StreamResponse:
    parse_params(NoParams, await read_body(request))
    router = request.app[SIDECAR].core()
    try:
        table = await router.reload()
    except ConfigError as exc:
        raise PayrouteError(
            f"The config was refused; version {router.config_version} stays in force. {exc}",
            code="config_invalid",
        ) from None
    return reply(
        dumps(
            {
                "object": "config",
                "version": table.version,
                "path": router.config_path,
                "routes": len(table.config.routes),
                "processors": len(table.config.processors),
            }
        )
    )


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    router = request.app[SIDECAR].router
    if router is not None:
        try:
            await metrics.refresh(router)
        except PayrouteError:
            log.warning("store unavailable while refreshing metrics")
    resp = web.Response(body=metrics.exposition())
    resp.content_type = "text/plain"
    resp.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return resp


async def healthz(request: web.Request) -> web.StreamResponse:
    return reply(dumps({"status": "ok"}))


async def readyz(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    router = sidecar.router
    checks = {
        "config": router is not None and router.config is not None,
        "store": router is not None and await router.store.ping(),
        "accepting": not sidecar.draining,
    }
    if router is None or not all(checks.values()):
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        raise PayrouteError(f"Not ready: {failing}.", type="service_unavailable", code="not_ready", status=503)
    # Redis down is degraded, not down: this replica still serves payments, on breakers of its own.
    checks["shared_state"] = await router.check_shared_state()
    degraded = [] if checks["shared_state"] else ["shared_state"]
    body = {"status": "ready", "checks": checks, "degraded": degraded, "config_version": router.config_version}
    return reply(dumps(body))


_OPENAPI: bytes | None = None


async def openapi(request: web.Request) -> web.StreamResponse:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = json.dumps(build_openapi(), indent=2).encode()
    return reply(_OPENAPI)
