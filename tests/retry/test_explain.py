"""`payroute explain --store URL osp_…`: a stored payment's attempts and why its next retry is when it is."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from pathlib import Path

from router.cli.main import build_parser
from tests.conftest import START
from tests.retry.conftest import config, script, soft
from tests.retry.test_lifecycle import advance, open_router, subscription

D = timedelta(days=1)


def explain(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["explain", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


async def test_explain_shows_a_stored_payments_attempts_and_why_the_next_retry_is_then(tmp_path: Path) -> None:
    router = await open_router(tmp_path, config("{strategy: heuristic, max_attempts: 8, window: 30d}"))
    clock = await router.create_test_clock(START)  # Monday 2 November 2026, 09:00
    script("pm_card_visa_sub", soft(), soft())
    created = await router.create_payment(subscription("pm_card_visa_sub", clock["id"]))
    await advance(router, clock["id"], timedelta(0))
    stored = await router.get_payment(created["id"])
    await router.close()

    store = f"sqlite:///{tmp_path / 'payroute.db'}"
    # The CLI runs its own event loop: from this test's loop, in a thread.
    code, out, err = await asyncio.to_thread(explain, "--store", store, created["id"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"payment {created['id']}: pending_retry, retry strategy heuristic"
    assert lines[1].startswith("  attempt 1: Mon 2026-11-02 09:00 UTC on proc_a: soft_decline (insufficient_funds")
    assert "class soft_funds" in lines[1]
    assert lines[2] == "next retry: Sun 2026-11-15 09:00 UTC"
    assert lines[3] == f"why: {stored['retry_details']['reason']}"
    assert stored["retry_details"]["reason"].startswith("heuristic: soft_funds decline")

    code, out, _ = await asyncio.to_thread(explain, "--store", store, "--json", created["id"])
    story = json.loads(out)
    assert (code, story["status"], story["attempts"][0]["decline_class"]) == (0, "pending_retry", "soft_funds")

    code, _, err = await asyncio.to_thread(explain, "--store", store, "osp_test_missing")
    assert code == 1 and "no payment 'osp_test_missing'" in err


def test_explain_without_config_or_store_says_what_it_needs() -> None:
    code, _, err = explain("{}")
    assert code == 2 and "--config is required" in err
