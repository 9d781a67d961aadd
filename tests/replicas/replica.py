"""One replica as its own process: `python -m tests.replicas.replica '<job as JSON>'`.

It opens `Router.open(config, store=<postgresql url>, redis=<url>)` with the fake processor's adapter and a
ManualClock at the job's `now`, prints `ready`, waits for `go` on stdin (so two replicas start their work
together), does the job, prints one JSON line with what it saw, and exits. Logs go to stderr.

Jobs (`op`):
- `create`: create every payment in `requests` ({key, params}) at once, each with its idempotency key;
- `drain`: call `run_due(limit)` until nothing is left to handle;
- `reconcile`: settle payments a dead replica left in processing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from datetime import datetime
from typing import Any

from adapters import registry
from router import ManualClock, PayrouteError, Router
from tests.replicas.fakeproc import FakeProcessorAdapter


async def _create(router: Router, job: dict[str, Any]) -> dict[str, Any]:
    async def one(request: dict[str, Any]) -> dict[str, Any]:
        try:
            payment = await router.create_payment(request["params"], idempotency_key=request["key"])
        except PayrouteError as exc:
            return {"key": request["key"], "error": exc.code, "status": exc.status}
        return {"key": request["key"], "id": payment["id"], "payment_status": payment["status"]}

    results = await asyncio.gather(*(one(r) for r in job["requests"]))
    return {"results": list(results)}


async def _drain(router: Router, job: dict[str, Any]) -> dict[str, Any]:
    handled = 0
    while True:
        n = await router.run_due(limit=job.get("limit", 5))
        if n == 0:
            break
        handled += n
    return {"handled": handled}


async def main(job: dict[str, Any]) -> None:
    registry.register("fakeproc", FakeProcessorAdapter)
    clock = ManualClock(datetime.fromisoformat(job["now"]))
    router = await Router.open(
        job["config"],
        store=job["store"],
        redis=job.get("redis"),
        clock=clock,
        owner=job["owner"],
        reconcile=False,
        deliver_webhooks=False,
    )
    try:
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected go, got {line!r}")
        if job["op"] == "create":
            out = await _create(router, job)
        elif job["op"] == "drain":
            out = await _drain(router, job)
        elif job["op"] == "reconcile":
            out = {"settled": await router.reconcile_stuck()}
        else:
            raise SystemExit(f"unknown op {job['op']!r}")
        out["breakers"] = router.breakers.states()
        out["shared_state_ok"] = router.shared_state_ok
        print(json.dumps(out), flush=True)
    finally:
        await router.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(json.loads(sys.argv[1])))
