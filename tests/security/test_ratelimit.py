"""Per-key rate limiting: a token bucket per API key digest, answered with a v2 429 and `Retry-After`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from router import ManualClock
from router.http.ratelimit import DEFAULT_BURST, DEFAULT_RATE, RateLimit, RateLimiter
from tests.http.conftest import LIVE_KEY, TEST_KEY, TEST_KEY_2, assert_error
from tests.security.conftest import MakeApi

PATH = "/v2/payments/off_session_payments"


async def test_a_key_over_its_burst_gets_a_429_with_retry_after_until_tokens_return(
    make_api: MakeApi, clock: ManualClock
) -> None:
    api = await make_api(RateLimit(rate=2, burst=3))
    for _ in range(3):
        status, _ = await api.get(PATH)
        assert status == 200
    resp = await api.client.get(PATH, headers=api.headers())
    body = await resp.json()
    assert_error(resp.status, body, 429, "rate_limit", "rate_limit", None)
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "Request-Id" in resp.headers
    assert TEST_KEY not in await resp.text()

    clock.advance(0.4)  # 0.8 of a token: still empty
    assert (await api.get(PATH))[0] == 429
    clock.advance(0.1)  # one whole token back
    assert (await api.get(PATH))[0] == 200
    assert (await api.get(PATH))[0] == 429
    clock.advance(3600)  # refills to the burst, never past it
    assert [(await api.get(PATH))[0] for _ in range(4)] == [200, 200, 200, 429]


async def test_posts_count_and_a_limited_create_has_no_side_effect(make_api: MakeApi) -> None:
    api = await make_api(RateLimit(rate=1, burst=1))
    assert (await api.post(PATH, {"amount": {"value": 1, "currency": "usd"}}))[0] == 400  # a token spent
    status, body, headers = await api.post(
        PATH,
        {"amount": {"value": 1999, "currency": "usd"}, "cadence": "recurring", "customer": "c", "payment_method": "pm"},
    )
    assert_error(status, body, 429, "rate_limit", "rate_limit", None)
    assert headers["Retry-After"] == "1"
    assert await api.router.payment_counts() == {}


async def test_each_key_has_its_own_bucket(make_api: MakeApi) -> None:
    api = await make_api(RateLimit(rate=1, burst=2))
    assert [(await api.get(PATH, key=TEST_KEY))[0] for _ in range(3)] == [200, 200, 429]
    # Another key of the same mode, and a live key, are not held back by the first.
    assert [(await api.get(PATH, key=TEST_KEY_2))[0] for _ in range(3)] == [200, 200, 429]
    assert [(await api.get(PATH, key=LIVE_KEY))[0] for _ in range(3)] == [200, 200, 429]


async def test_bad_keys_and_open_endpoints_are_not_metered(make_api: MakeApi) -> None:
    api = await make_api(RateLimit(rate=1, burst=1))
    for _ in range(5):
        assert (await api.get(PATH, key="sk_test_not_a_key_at_all_00"))[0] == 401
        assert (await api.client.get("/healthz")).status == 200
        assert (await api.client.get("/metrics")).status == 200
    assert (await api.get(PATH))[0] == 200  # the real key's bucket is untouched
    assert len(api.sidecar.limiter or []) == 1


def test_the_limiter_holds_digests_not_keys_and_stays_bounded() -> None:
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(rate=1, burst=1), clock, max_buckets=100)
    for i in range(1000):
        limiter.take(f"digest-{i}".encode())
    assert len(limiter) == 100
    # The oldest were dropped; a dropped key starts again with a full bucket.
    assert limiter.take(b"digest-0") is None


def test_retry_after_covers_the_wait() -> None:
    clock = ManualClock()
    limiter = RateLimiter(RateLimit(rate=0.1, burst=1), clock)
    assert limiter.take(b"k") is None
    wait = limiter.take(b"k")
    assert wait == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/s", RateLimit(100, 100)),
        ("2.5/s:10", RateLimit(2.5, 10)),
        (" 50 / s : 7 ", RateLimit(50, 7)),
        ("off", None),
        ("OFF", None),
        ("0.5/s", RateLimit(0.5, 1)),
    ],
)
def test_rate_limit_spec(text: str, expected: RateLimit | None) -> None:
    assert RateLimit.parse(text) == expected


@pytest.mark.parametrize("text", ["", "100", "100/m", "0/s", "1/s:0", "-1/s", "fast", "1e9999/s"])
def test_a_bad_rate_limit_spec_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="PAYROUTE_RATE_LIMIT"):
        RateLimit.parse(text)


def test_the_default_is_on() -> None:
    assert RateLimit.from_env({}) == RateLimit(DEFAULT_RATE, DEFAULT_BURST)
    assert RateLimit.from_env({"PAYROUTE_RATE_LIMIT": "off"}) is None
    assert RateLimit.from_env({"PAYROUTE_RATE_LIMIT": "5/s:9"}) == RateLimit(5, 9)


def test_serve_refuses_a_bad_rate_limit_before_starting(tmp_path: Path) -> None:
    env = {**os.environ, "PAYROUTE_API_KEYS": TEST_KEY, "PAYROUTE_RATE_LIMIT": "lots"}
    cmd = [sys.executable, "-m", "router.cli.main", "serve", "--config", str(tmp_path / "none.yaml"), "--port", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "PAYROUTE_RATE_LIMIT" in done.stderr and "Traceback" not in done.stderr
