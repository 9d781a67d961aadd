"""`make soak`'s verdict on memory and descriptors: a bounded slope against the work done, not a look at two
numbers."""

from __future__ import annotations

import random

from benchmarks.bench_soak import MAX_FD_SLOPE, MAX_RSS_SLOPE, Sample, _outage_answer, verdict


def _run(rss_per_payment_kb: float, fds_every: int = 0, seed: int = 1) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(40):
        payments = 100 * i
        rss = 80 + payments * rss_per_payment_kb / 1024 + rng.uniform(-1.5, 1.5)  # allocator noise
        fds = 30 + (payments // fds_every if fds_every else 0) + rng.choice([0, 1])
        out.append(Sample(t=3.0 * i, rss_mb=rss, fds=fds, sockets=fds - 20, requests=3 * payments, payments=payments))
    return out


def test_a_flat_noisy_run_passes() -> None:
    flat = verdict(_run(0.0), MAX_RSS_SLOPE, MAX_FD_SLOPE)
    assert flat.memory_flat and flat.fds_flat, flat.lines()
    assert abs(flat.rss_slope) < 0.5


def test_a_leak_of_a_few_kilobytes_per_payment_fails() -> None:
    leaking = verdict(_run(4.0), MAX_RSS_SLOPE, MAX_FD_SLOPE)
    assert not leaking.memory_flat
    assert 3.5 < leaking.rss_slope < 4.5  # MB per 1000 payments = KB per payment
    assert "GROWING" in leaking.lines()[0]


def test_a_descriptor_leak_fails() -> None:
    leaking = verdict(_run(0.0, fds_every=200), MAX_RSS_SLOPE, MAX_FD_SLOPE)
    assert leaking.memory_flat and not leaking.fds_flat


def test_only_a_capture_or_cancel_told_503_while_its_processor_is_down_is_set_apart() -> None:
    down = {"error": {"type": "api_error", "code": "processor_unavailable", "message": "breaker open"}}
    unknown = {"error": {"type": "api_error", "code": "processor_unknown", "message": "asked again"}}
    ours = {"error": {"type": "service_unavailable", "code": "service_unavailable", "message": "store down"}}
    capture = "/v2/payments/off_session_payments/osp_1/capture"
    assert _outage_answer(capture, 503, down) and _outage_answer(capture.replace("capture", "cancel"), 503, unknown)
    assert not _outage_answer(capture, 503, ours), "our own outage is a failure"
    assert not _outage_answer(capture, 500, down), "a 500 is never an answer"
    assert not _outage_answer("/v2/payments/off_session_payments", 503, down), "a create fails over instead"
