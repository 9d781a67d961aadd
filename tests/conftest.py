"""Fixtures every test area shares: a fixed clock and a router on a throwaway SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from router import ManualClock, Router
from router.ids import IdGenerator

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

RouterFactory = Callable[..., Awaitable[Router]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def make_router(tmp_path: Path, clock: ManualClock) -> AsyncIterator[RouterFactory]:
    """Open routers from YAML text on a SQLite file in tmp_path; every router opened is closed afterwards."""
    opened: list[Router] = []

    async def make(
        config_text: str, *, db: str = "payroute.db", seed: int | None = None, payment_methods: Any = None
    ) -> Router:
        path = tmp_path / "routing.yaml"
        path.write_text(config_text)
        r = await Router.open(
            path,
            store=f"sqlite:///{tmp_path / db}",
            clock=clock,
            ids=IdGenerator(seed=seed),
            payment_methods=payment_methods,
        )
        opened.append(r)
        return r

    yield make
    for r in opened:
        await r.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Name any non-daemon thread still alive at the end: one keeps the interpreter (and CI) from exiting."""
    import threading

    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    for t in stuck:
        print(f"\nthread still running at exit: {t.name} ({type(t).__module__}.{type(t).__qualname__})")
