"""How log lines look: text for a terminal, or one JSON object per line (`payroute --log-format json`) for a log
pipeline, each carrying the trace and span id of the request or retry it was written under when tracing is on.

A JSON line: `{"time", "level", "logger", "message", "trace_id", "span_id", "exception", ...extra}`, where
extra is whatever a caller passed as `logging`'s `extra=` (a payment id, a processor). The message and
traceback are the record's own, after any filter on the way (the sidecar's scrubbing filters run first).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from router import tracing

LogFormat = Literal["text", "json"]
ENV_VAR = "PAYROUTE_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Every attribute a bare LogRecord has: anything else on a record came from `extra=` and is written out.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = tracing.current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in line:
                line[key] = value
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: int = logging.INFO, fmt: str = "text", text_format: str = TEXT_FORMAT) -> None:
    """Send the root logger's lines to stderr as `fmt` says (json, else text; replacing handlers set before)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
