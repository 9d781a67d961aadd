"""Keeping secrets out of the sidecar's logs, whoever writes the line.

Some log lines quote what a caller sent: aiohttp's access log has the request line (a key or a card number
pasted into a query string or path), and aiohttp's parser errors quote the offending header line (an oversized
`Authorization` header, key and all). `ScrubFilter` runs `adapters.scrub.scrub()` over the message and any
traceback of every record those loggers emit; `install()` attaches it (once) to each of them.

A filter on a logger sees only the records logged to that very logger, and a handler's filter only what reaches
that handler; a traceback from an adapter or a library logs wherever it likes. So `install()` also wraps the
root of all logging, the record factory: every record of every logger is scrubbed as it is made, before any
handler (added now or later) can see it. `adapters.scrub` knows every configured credential's value, so a key
that no pattern recognizes is masked too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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


class _ScrubbingFactory:
    """A LogRecord factory that scrubs each record as it is made (see the module docstring)."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        _FILTER.filter(record)
        return record


def install() -> None:
    """Scrub every log record, whoever writes it (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _ScrubbingFactory):
        logging.setLogRecordFactory(_ScrubbingFactory(factory))


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
