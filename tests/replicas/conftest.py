"""Replicas as real processes on the real PostgreSQL and Redis (see tests/backends.py for the isolation)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import ROOT, pg_database, pg_schema_url, redis_url
from tests.replicas.fakeproc import FakeProcessor

__all__ = ["Replica", "fake", "pg_database", "pg_schema_url", "redis_url", "replicas"]

# A safety net so a broken replica fails the test instead of hanging it; never part of what is asserted.
STUCK_S = 60


class Replica:
    """A `python -m tests.replicas.replica` process: start, wait for ready, `go`, read its one JSON answer."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Replica:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("PAYROUTE_REDIS_URL", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.replicas.replica",
            json.dumps(self.job),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        line = await self._line()
        assert line == "ready", f"replica did not start: {line!r}"
        return self

    async def _line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), STUCK_S)
        return raw.decode().strip()

    def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def result(self) -> dict[str, Any]:
        line = await self._line()
        assert line, f"replica {self.job['owner']} exited without an answer"
        out: dict[str, Any] = json.loads(line)
        assert self.proc is not None
        assert await asyncio.wait_for(self.proc.wait(), STUCK_S) == 0
        return out

    async def kill(self) -> None:
        """SIGKILL: no finally blocks, no cleanup, connections dropped mid-request."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.proc.wait(), STUCK_S) == -signal.SIGKILL


@pytest.fixture
async def fake() -> AsyncIterator[FakeProcessor]:
    processor = FakeProcessor()
    await processor.start()
    yield processor
    await processor.stop()


@pytest.fixture
async def replicas() -> AsyncIterator[list[Replica]]:
    """Replicas started by a test; any still running at the end is killed."""
    started: list[Replica] = []
    yield started
    for r in started:
        if r.proc is not None and r.proc.returncode is None:
            r.proc.kill()
            await r.proc.wait()


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return str(path)
