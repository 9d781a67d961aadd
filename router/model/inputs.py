"""What every value a caller sends must be before anything reads it, on every way in and for every store.

- Nesting is bounded (`MAX_DEPTH`): a body nested a thousand deep is a clear 400, not a `RecursionError` in
  whatever walks it next.
- No control characters: PostgreSQL refuses a NUL in text (a 500 there) while SQLite stores it as sent, so the
  same request would answer differently per store; other control characters only ever mean a mangled or
  hostile value. Free text (`description`, metadata values) may keep tab, line feed and carriage return.
- Identifiers in paths and query strings follow the same rule (`check_identifier`).

Each refusal names the parameter by its dotted path (`metadata.note`, `amount_details.line_items[0].product_name`).
"""

from __future__ import annotations

import re
from typing import Any

from router.errors import PayrouteError

MAX_DEPTH = 16  # the deepest create parameter (amount_details.line_items[i].tax.total_tax_amount) is 5
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # tab, LF and CR allowed
_CONTROL_IN_TEXT = re.compile(f"[{_TEXT_CONTROL}]")
# In a JSON text: a backslash (the only way an escape can put a character in a string) or a refused character.
_NOT_PLAIN = re.compile(f"[\\\\{_TEXT_CONTROL}]")
_TEXT_FIELDS = ("description",)
_TEXT_MAPS = ("metadata",)  # every value of these maps is free text


def _is_text(path: str) -> bool:
    if path in _TEXT_FIELDS:
        return True
    head, dot, _ = path.partition(".")
    return bool(dot) and head in _TEXT_MAPS


def control_character(param: str) -> PayrouteError:
    return PayrouteError(f"{param} contains a control character (such as NUL); send printable text.", param=param)


def check_text(value: str, param: str) -> None:
    """Refuse a control character in one string parameter (tab and line breaks allowed in free text)."""
    pattern = _CONTROL_IN_TEXT if _is_text(param) else _ANY_CONTROL
    if pattern.search(value):
        raise control_character(param)


def check_identifier(value: str, param: str) -> None:
    """An id from a path or a query string: no control character at all."""
    if _ANY_CONTROL.search(value):
        raise control_character(param)


def check_body(body: Any, text: str) -> None:
    """`check_params` on a body parsed from the JSON `text`, skipped when the text alone shows it would pass: every
    string (key or value) of a JSON text with no backslash is a piece of that text as it stands, a strict decoder
    refuses a raw tab, line feed or carriage return inside a string, and so no string holds a refused character
    when the text holds none; and nothing nests deeper than the text has `{` and `[`, in strings or not."""
    if _NOT_PLAIN.search(text) is not None or text.count("{") + text.count("[") >= MAX_DEPTH:
        check_params(body)


def check_params(body: Any) -> None:
    """Walk a parsed request body once (iteratively, so depth itself cannot overflow the walk): nesting at most
    MAX_DEPTH, and no control character in any key or string value."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            check_text(value, path)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise PayrouteError(
                f"The request nests objects and arrays more than {MAX_DEPTH} deep.",
                param=path or None,
                code="parameter_invalid",
            )
        if isinstance(value, dict):
            for k, item in value.items():
                child = f"{path}.{k}" if path else str(k)
                if _ANY_CONTROL.search(k):
                    raise PayrouteError(
                        f"{path or 'The request body'} has a key with a control character (such as NUL).",
                        param=path or None,
                    )
                stack.append((item, child, depth + 1))
        else:
            for i, item in enumerate(value):
                stack.append((item, f"{path}[{i}]", depth + 1))
