"""The hot path's faster code gives exactly what the code it replaced gave.

Each replaced function is kept here as it was (the reference) and compared with the new one over random inputs
that lean towards what matters: digit runs and card numbers, key prefixes, nesting, odd years and offsets.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from adapters import scrub as scrub_mod
from router import clock, ids
from router.http import metrics
from router.model import params as models

PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the references: the code as it was before the hot-path work ------------------------------------------------

_DIGIT_RUN = re.compile(r"(?<![0-9])(?<![0-9]\.)[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_GROUP = re.compile(r"[0-9]+")
_KEYS = re.compile(r"\b((?:sk|rk|pk|whsec)_(?:test|live)_)[0-9A-Za-z_]+")


def ref_pan_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
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
                if total >= 13 and scrub_mod._luhn(re.sub(r"[^0-9]", "", text[groups[i][0] : groups[j][1]])):
                    end = j
            if end is None:
                i += 1
            else:
                spans.append((groups[i][0], groups[end][1]))
                i = end + 1
    return spans


def ref_card_numbers(text: str, *, in_words: bool = False) -> list[str]:
    return [
        text[start:end]
        for start, end in ref_pan_spans(text)
        if in_words or not (scrub_mod._alnum(text[start - 1 : start]) or scrub_mod._alnum(text[end : end + 1]))
    ]


def ref_has_secret_key(text: str) -> bool:
    return any(m.group(1)[:2] != "pk" for m in _KEYS.finditer(text))


def ref_mask_pans(text: str) -> str:
    out: list[str] = []
    last = 0
    for start, end in ref_pan_spans(text):
        digits = re.sub(r"[^0-9]", "", text[start:end])
        out += [text[last:start], f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"]
        last = end
    return "".join(out) + text[last:]


def ref_scrub(text: str) -> str:
    text = scrub_mod._AUTH_HEADER.sub(r"\1[FILTERED]", text)
    text = scrub_mod._BEARER.sub(r"\1 [FILTERED]", text)
    text = _KEYS.sub(r"\1[FILTERED]", text)
    text = scrub_mod._JSON_FIELD.sub(r'\1"[FILTERED]"', text)
    text = scrub_mod._FORM_FIELD.sub(r"\1[FILTERED]", text)
    text = scrub_mod._FREE_CVC.sub(r"\1[FILTERED]", text)
    return ref_mask_pans(text)


def ref_refuse_card_data(value: Any, param: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{param}.{key}" if param else str(key)
            if param == "metadata" and models._CARD_FIELD_KEY.match(str(key)):
                raise models._ParamError(
                    "metadata", "Metadata cannot hold card verification codes or card numbers (by their key)."
                )
            if param and (ref_card_numbers(str(key)) or ref_has_secret_key(str(key))):
                raise models._ParamError(param, f"{param} has a key that looks like a card number or a secret key.")
            ref_refuse_card_data(item, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            ref_refuse_card_data(item, f"{param}[{i}]")
    elif isinstance(value, str):
        if ref_card_numbers(value):
            raise models._ParamError(
                param,
                f"{param} looks like it contains a card number. Card data is not accepted here: pass a saved "
                "payment method id in `payment_method`.",
            )
        if ref_has_secret_key(value):
            raise models._ParamError(param, f"{param} looks like it contains a secret API key; keys are never stored.")


def ref_base62(n: int) -> str:
    pairs = []
    for _ in range(12):
        n, digits = divmod(n, 3844)
        pairs.append(ids._PAIRS[digits])
    return "".join(pairs)


def ref_rfc3339(at: datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# -- inputs -------------------------------------------------------------------------------------------------------

FRAGMENTS = [
    "4242424242424242",
    "4242 4242 4242 4242",
    "4111-1111-1111-1111",
    "378282246310005",
    "4000056655665556",
    "6011111111111117",
    "1234567890123",
    "0.4111111111111111",
    "12 ",
    " 3",
    "sk_test_",
    "sk_" + "live_",
    "rk_test_",
    "pk_test_",
    "whsec_test_",
    "_test_",
    "_live_",
    "abc",
    "XYZ9",
    "req_75c6b2931157335618",
    "cvc: 737",
    "Bearer ",
    '"number": ',
    "card[number]=",
    "Authorization: ",
    "\n",
    "-",
    " ",
    ".",
    "é",
]
texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS) | st.text(alphabet="0123456789 -_.skt", max_size=6), max_size=8).map("".join),
    st.text(max_size=40),
    st.from_regex(r"[0-9 -]{10,30}", fullmatch=True),
)
keys = st.sampled_from(["cvc", "CVV2", "card_number", "pan", "order", "sk_test_abc", "4242424242424242"]) | texts
params = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def _verdict(check: Any, value: Any, param: str) -> tuple[str, str, str] | None:
    try:
        check(value, param)
    except models._ParamError as exc:
        return exc.param, exc.message, exc.code
    return None


# -- card data and secrets ------------------------------------------------------------------------------------------


@PROPS
@given(texts)
def test_card_numbers_and_secret_keys_are_found_as_before(text: str) -> None:
    assert scrub_mod.card_numbers(text) == ref_card_numbers(text)
    assert scrub_mod.card_numbers(text, in_words=True) == ref_card_numbers(text, in_words=True)
    assert scrub_mod.has_secret_key(text) == ref_has_secret_key(text)


@PROPS
@given(texts)
def test_the_digit_prefilter_never_skips_a_card_number(text: str) -> None:
    if not scrub_mod._may_hold_pan(text):
        assert ref_pan_spans(text) == []


@PROPS
@given(texts)
def test_scrub_masks_as_before_including_from_its_cache_of_clean_texts(text: str) -> None:
    expected = ref_scrub(text)
    assert scrub_mod.scrub(text) == expected
    assert scrub_mod.scrub(text) == expected  # the second time a clean text comes from the cache


def test_only_texts_scrub_leaves_unchanged_are_cached() -> None:
    pan = "card 4242424242424242 declined"
    scrub_mod.scrub(pan)
    scrub_mod.scrub("approved")
    assert pan not in scrub_mod._CLEAN
    assert "approved" in scrub_mod._CLEAN


def test_the_clean_text_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrub_mod, "_CLEAN", {})
    for i in range(scrub_mod._CLEAN_MAX_ENTRIES * 2 + 5):
        scrub_mod.scrub(f"message {i}")
    assert len(scrub_mod._CLEAN) <= scrub_mod._CLEAN_MAX_ENTRIES
    scrub_mod.scrub("x" * (scrub_mod._CLEAN_MAX_LEN + 1))
    assert "x" * (scrub_mod._CLEAN_MAX_LEN + 1) not in scrub_mod._CLEAN


@PROPS
@given(params, st.sampled_from(["", "metadata", "amount_details", "description"]))
def test_card_data_is_refused_with_the_same_verdict_as_before(value: Any, param: str) -> None:
    assert _verdict(models._refuse_card_data, value, param) == _verdict(ref_refuse_card_data, value, param)


@PROPS
@given(st.dictionaries(keys, params, max_size=5))
def test_card_data_in_a_create_body_is_refused_as_before(metadata: dict[str, Any]) -> None:
    body = {
        "amount": {"value": 100, "currency": "usd"},
        "cadence": "recurring",
        "customer": "cus_1",
        "payment_method": "pm_card_visa",
        "description": str(metadata)[:1000],
        "metadata": {str(k): str(v) for k, v in metadata.items()},
    }
    # As model_dump() hands it over: every field, None where not given.
    dumped = {name: body.get(name) for name in models.OffSessionPaymentCreateParams.model_fields}
    assert _verdict(models._refuse_card_data, dumped, "") == _verdict(ref_refuse_card_data, dumped, "")


def test_the_shortest_flagged_strings_are_still_flagged() -> None:
    # The checks' own cut-offs sit exactly at the shortest string each can flag.
    assert _verdict(models._refuse_card_data, {"d": "sk_test_x"}, "") is not None
    assert _verdict(models._refuse_card_data, {"d": "4242424242424"[:12] + "x"}, "") is None
    assert ref_has_secret_key("sk_test_x") and not ref_has_secret_key("sk_test_")


# -- ids ------------------------------------------------------------------------------------------------------------


@PROPS
@given(st.integers(min_value=0, max_value=ids._SPACE - 1))
def test_base62_writes_the_same_characters(n: int) -> None:
    assert ids._base62(n) == ref_base62(n)


def test_base62_edges() -> None:
    for n in (0, 1, 3843, 3844, ids._SIX - 1, ids._SIX, ids._SPACE - 1):
        assert ids._base62(n) == ref_base62(n)


def test_key_derived_and_seeded_ids_are_unchanged() -> None:
    # Golden values from before the change: a payment id derived from an Idempotency-Key must never change (a
    # retry across an upgrade finds the first try's payment by it), and seeded runs must stay reproducible.
    assert ids.IdGenerator.payment_for_key(False, "abc") == "osp_test_EelEe0GU4A8XzKoTNYaGwBjF"
    assert ids.IdGenerator.payment_for_key(True, "key-é") == "osp_live_8wOMtbhP9XNu1glbgUsbPXYp"
    g = ids.IdGenerator(seed=7)
    assert [g.new("event"), g.new("event"), g.payment(False)] == [
        "evt_I0l12jf530rzECh8aM4bPGhE",
        "evt_4W5GgUE0JGIszIGAFbbocl6F",
        "osp_test_vMATbzIdMpYovyB9XnjOaEXh",
    ]


def test_random_ids_keep_their_format() -> None:
    g = ids.IdGenerator()
    for kind, prefix in ids.PREFIXES.items():
        token = g.new(kind).removeprefix(prefix + "_")
        assert len(token) == 24 and set(token) <= set(ids._ALPHABET)
    assert re.fullmatch(r"osp_live_[0-9A-Za-z]{24}", g.payment(True))


def test_every_character_is_drawn_from_exactly_as_many_byte_values() -> None:
    kept = ids._BYTE_TO_CHAR[: ids._KEEP_BELOW]
    assert Counter(kept) == {ord(c): 4 for c in ids._ALPHABET}
    assert set(ids._DROPPED) == set(range(ids._KEEP_BELOW, 256))


def test_random_tokens_are_uniform_per_position(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1)
    monkeypatch.setattr("router.ids.os.urandom", rng.randbytes)
    draws = 12_400
    tokens = [ids._random_token() for _ in range(draws)]
    expected = draws / 62
    for pos in range(24):
        counts = Counter(t[pos] for t in tokens)
        chi2 = sum((counts.get(c, 0) - expected) ** 2 / expected for c in ids._ALPHABET)
        assert chi2 < 130, (pos, chi2)  # 61 degrees of freedom: p ~ 1e-6 at 130 (and the draw is seeded)


def test_a_draw_short_of_characters_draws_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # 9 dropped bytes leave 23 characters: not enough; the next 32 bytes are used instead.
    chunks = iter([bytes([255] * 9 + [0] * 23), bytes(range(32))])
    monkeypatch.setattr("router.ids.os.urandom", lambda n: next(chunks))
    assert ids._random_token() == ids._ALPHABET[:24]


# -- time -------------------------------------------------------------------------------------------------------------

offsets = st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))])


@PROPS
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), offsets)
def test_rfc3339_writes_the_same_text(at: datetime, tz: timezone | None) -> None:
    value = at.replace(tzinfo=tz) if tz is not None else at
    assert clock.rfc3339(value) == ref_rfc3339(value)


# -- metrics ----------------------------------------------------------------------------------------------------------


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("payroute_http_requests_total", labels) or 0.0


def test_record_request_counts_into_the_same_series_as_labels() -> None:
    before = _count("PATCH", "/hotpath-test", "418")
    hist_before = REGISTRY.get_sample_value(
        "payroute_http_request_duration_seconds_count", {"method": "PATCH", "route": "/hotpath-test"}
    )
    for _ in range(3):
        metrics.record_request("PATCH", "/hotpath-test", 418, 0.002)
    metrics.HTTP_REQUESTS.labels("PATCH", "/hotpath-test", "418").inc()
    assert _count("PATCH", "/hotpath-test", "418") == before + 4
    hist_after = REGISTRY.get_sample_value(
        "payroute_http_request_duration_seconds_count", {"method": "PATCH", "route": "/hotpath-test"}
    )
    assert hist_after == (hist_before or 0.0) + 3


def test_record_request_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_REQUEST_CHILDREN", {})
    monkeypatch.setattr(metrics, "_CHILDREN_MAX", 2)
    for status in (200, 201, 202):
        metrics.record_request("OPTIONS", "/hotpath-bound", status, 0.001)
    assert len(metrics._REQUEST_CHILDREN) == 2
    assert _count("OPTIONS", "/hotpath-bound", "202") >= 1


# -- cards ------------------------------------------------------------------------------------------------------------

TOKENS = st.sampled_from(["pm_card_visa", "pm_card_de", "pm_card_mastercard_debit", "pm_1Abc", "PM_CARD_AMEX"]) | texts


@PROPS
@given(TOKENS)
def test_card_from_token_answers_from_its_cache_as_it_computes(token: str) -> None:
    from router.routing.cards import card_from_token

    assert card_from_token(token) == card_from_token.__wrapped__(token)
    assert card_from_token(token) == card_from_token.__wrapped__(token)  # the second answer is the cached one


def ref_time_chars(ms: int) -> str:
    chars = []
    for _ in range(8):
        ms, digit = divmod(ms, 62)
        chars.append(ids._ALPHABET[digit])
    return "".join(reversed(chars))


@PROPS
@given(st.integers(min_value=0, max_value=62**8 - 1), st.integers(min_value=0, max_value=62**8 - 1))
def test_time_chars_write_the_same_characters_cached_or_not(ms: int, other: int) -> None:
    assert ids._time_chars(ms) == ref_time_chars(ms)
    assert ids._time_chars(ms) == ref_time_chars(ms), "the same millisecond again: from the cache"
    assert ids._time_chars(other) == ref_time_chars(other), "a new millisecond replaces the cached one"
    assert ids._time_chars(ms) == ref_time_chars(ms)


def test_record_attempt_and_event_ids_lead_with_their_time_and_sort_by_it() -> None:
    from router.ids import _ALPHABET, IdGenerator, _time_chars

    assert list(_ALPHABET) == sorted(_ALPHABET), "text order of the alphabet must be numeric order"
    # Millisecond stamps far apart and adjacent keep their order as text, in fixed width.
    stamps = [0, 1, 61, 62, 1_700_000_000_000, 1_700_000_000_001, 4_102_444_800_000]
    texts = [_time_chars(ms) for ms in stamps]
    assert texts == sorted(texts) and {len(t) for t in texts} == {8}
    ids = IdGenerator()
    made = [ids.new(kind) for kind in ("payment_record", "attempt", "event")]
    for made_id in made:
        _, token = made_id.split("_", 1)
        assert len(token) == 24 and set(token) <= set(_ALPHABET)
    # 16 random characters follow the time: two ids made in the same millisecond still differ.
    assert len({ids.new("event")[12:] for _ in range(1000)}) == 1000
    # A seeded generator keeps its reproducible sequence, time or not.
    assert IdGenerator(seed=3).new("event") == IdGenerator(seed=3).new("event")
