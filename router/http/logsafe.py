"""Keeping secrets out of the sidecar's logs, whoever writes the line.

Some log lines quote what a caller sent: aiohttp's access log has the request line (a key or a card number
pasted into a query string or path), and aiohttp's parser errors quote the offending header line (an oversized
`Authorization` header, key and all). `ScrubFilter` runs `adapters.scrub.scrub()` over the message and any
traceback of every record those loggers emit; `install()` attaches it (once) to each of them.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from adapters.scrub import scrub

# The loggers that may quote a request: aiohttp's server, access and web loggers, and ours (access log, 500s).
LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "payroute.http")


class ScrubFilter(logging.Filter):
    """Rewrites a record in place: message scrubbed and args folded in, traceback rendered and scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = ScrubFilter()


def install() -> None:
    """Attach the filter to every logger that may quote a request (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# Longest path the access log writes whole; past it the path is cut (a 10 KB URL is not a log line).
MAX_LOGGED_PATH = 256


# The trace and span id of a request's server span, kept for its access log line (router.logformat writes them).
TRACE_IDS = web.RequestKey("trace_ids", tuple[str, str])


class AccessLogger(AbstractAccessLogger):
    """The sidecar's access log: method, path, status, size, time. Never the query string (keys and card numbers
    get pasted there), never a refused URL (a 414's 10 KB URL is what the 414 was for), and a long path cut."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        path = request.path
        if response.status == 414:
            path = f"<{len(request.raw_path)}-byte URL not logged>"
        elif len(path) > MAX_LOGGED_PATH:
            path = path[:MAX_LOGGED_PATH] + "…"
        ids = request.get(TRACE_IDS)
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            request.remote,
            request.method,
            path,
            response.status,
            response.body_length,
            time * 1000,
            extra={"trace_id": ids[0], "span_id": ids[1]} if ids is not None else None,
        )
