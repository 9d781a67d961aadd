"""Masking of card data and secrets in processor transcripts, shared by every adapter's `scrub()`."""

from __future__ import annotations

import re

_SENSITIVE_FIELDS = (
    r"cvc|cvv|cvv2|cvc2|cid|security_?code|card_?verification(?:_?value)?|"
    r"api_?key|apikey|secret|password|private_?key|access_?token|client_?secret|"
    r"encrypted_?card_?number|encrypted_?security_?code|number|card_?number|pan|account_?number"
)
# JSON "key": "value" / "key": 123
_JSON_FIELD = re.compile(rf'("(?:{_SENSITIVE_FIELDS})"\s*:\s*)("(?:[^"\\]|\\.)*"|[0-9]+)', re.IGNORECASE)
# form-encoded key=value, including bracketed keys such as card[number]=...
_FORM_FIELD = re.compile(rf"((?:^|[&?\s])[\w\[\]]*?(?:\[|\b)(?:{_SENSITIVE_FIELDS})\]?=)([^&\s]*)", re.IGNORECASE)
_AUTH_HEADER = re.compile(
    r"((?:authorization|x-api-key|proxy-authorization|cko-secret-key)\s*:\s*)([^\r\n]+)", re.IGNORECASE
)
# A CVC named in free text ("cvc: 737", "CVV 1234"), as processors' error messages sometimes have it.
_FREE_CVC = re.compile(r"\b((?:cvc2?|cvv2?|security[ _]?code)(?:\s*[:=]\s*|\s+))[0-9]{3,4}\b", re.IGNORECASE)
_KEYS = re.compile(r"\b((?:sk|rk|pk|whsec)_(?:test|live)_)[0-9A-Za-z_]+")  # the whole key: ours may hold "_"
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


# Runs of digits, single spaces or dashes between them: a card number may be any stretch of whole groups in one.
# Not the fraction of a decimal number ("0.4111111111111111" is a float, not a card).
_DIGIT_RUN = re.compile(r"(?<![0-9])(?<![0-9]\.)[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_ASCII_DIGITS = "0123456789"
_PAN_MIN_DIGITS = 13
# What every match of _KEYS contains: a string without either cannot hold a key (the pattern is case-sensitive).
_KEY_MODES = ("_test_", "_live_")
# Texts scrub() left unchanged, so a processor's stock message ("approved") is not run through every pattern on
# every attempt. Only unchanged texts are kept: by definition they hold nothing that scrub() would mask.
_CLEAN: dict[str, None] = {}
_CLEAN_MAX_ENTRIES = 1024
_CLEAN_MAX_LEN = 256


def _may_hold_pan(text: str) -> bool:
    """False only when `text` has fewer ASCII digits than the shortest card number: then _pan_spans finds none.
    Counting digits in C is far cheaper than the regex and group walk, and nearly every parameter is digit-poor."""
    return len(text) >= _PAN_MIN_DIGITS and sum(map(text.count, _ASCII_DIGITS)) >= _PAN_MIN_DIGITS


def _pan_spans(text: str) -> list[tuple[int, int]]:
    """Where the card numbers are: stretches of whole digit groups, 13-19 digits in all, passing the Luhn check.
    A card number next to other numbers ("order 12 4111 1111 1111 1111 x 3") is found, not hidden by them."""
    spans: list[tuple[int, int]] = []
    if not _may_hold_pan(text):
        return spans
    for run in _DIGIT_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end()) for g in _GROUP.finditer(run.group(0))]
        i = 0
        while i < len(groups):
            end: int | None = None
            total = 0
            for j in range(i, len(groups)):
                total += groups[j][1] - groups[j][0]
                if total > 19:
                    break
                if total >= _PAN_MIN_DIGITS and _luhn(re.sub(r"[^0-9]", "", text[groups[i][0] : groups[j][1]])):
                    end = j
            if end is None:
                i += 1
            else:
                spans.append((groups[i][0], groups[end][1]))
                i = end + 1
    return spans


def _mask_pans(text: str) -> str:
    out: list[str] = []
    last = 0
    for start, end in _pan_spans(text):
        digits = re.sub(r"[^0-9]", "", text[start:end])
        out += [text[last:start], f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"]
        last = end
    return "".join(out) + text[last:]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_numbers(text: str, *, in_words: bool = False) -> list[str]:
    """The card numbers in `text`: 13-19 digits (spaces or dashes between them allowed) passing the Luhn check.
    Digits inside a word (a hex id such as `req_75c6b2931157335618`) count only with `in_words`: scrub() masks
    them anyway, but refusing input for them would refuse ordinary ids at random."""
    return [
        text[start:end]
        for start, end in _pan_spans(text)
        if in_words or not (_alnum(text[start - 1 : start]) or _alnum(text[end : end + 1]))
    ]


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def has_secret_key(text: str) -> bool:
    """Whether `text` holds something shaped like a Stripe-style secret, restricted or webhook key."""
    if _KEY_MODES[0] not in text and _KEY_MODES[1] not in text:
        return False
    return any(m.group(1)[:2] != "pk" for m in _KEYS.finditer(text))


# Every configured credential value this process holds (AdapterSettings registers them): masked wherever it shows
# up, even where no pattern knows its shape (an Adyen key in an exception message, a Braintree private key).
_KNOWN: set[str] = set()
_KNOWN_ORDER: list[str] = []
_KNOWN_MIN_LEN = 8


def remember_secret(value: str) -> None:
    """Mask `value` in everything scrub() sees from now on (short values are left alone: too many false hits)."""
    if len(value) < _KNOWN_MIN_LEN or value in _KNOWN:
        return
    _KNOWN.add(value)
    _KNOWN_ORDER.append(value)
    _KNOWN_ORDER.sort(key=len, reverse=True)  # the longest first, so a key inside another is not half-masked
    _CLEAN.clear()


def scrub(text: str) -> str:
    """Mask PANs (first six, last four kept), CVCs, API keys, bearer tokens, auth headers and known credentials."""
    if len(text) <= _CLEAN_MAX_LEN and text in _CLEAN:
        return text
    out = _scrub(text)
    for secret in _KNOWN_ORDER:
        if secret in out:
            out = out.replace(secret, "[FILTERED]")
    if out == text and len(text) <= _CLEAN_MAX_LEN:
        if len(_CLEAN) >= _CLEAN_MAX_ENTRIES:
            _CLEAN.clear()
        _CLEAN[text] = None
    return out


def _scrub(text: str) -> str:
    text = _AUTH_HEADER.sub(r"\1[FILTERED]", text)
    text = _BEARER.sub(r"\1 [FILTERED]", text)
    text = _KEYS.sub(r"\1[FILTERED]", text)
    text = _JSON_FIELD.sub(r'\1"[FILTERED]"', text)
    text = _FORM_FIELD.sub(r"\1[FILTERED]", text)
    text = _FREE_CVC.sub(r"\1[FILTERED]", text)
    return _mask_pans(text)
