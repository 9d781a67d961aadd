"""How often the event loop ran other work while a call was awaited: a call that never lets it through scores 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


@asynccontextmanager
async def turns_beside() -> AsyncIterator[Callable[[], int]]:
    """Run a task beside the block that counts its own turns; yields a function of the turns taken so far."""
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)  # one turn of the loop, then the next

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    start = turns
    try:
        yield lambda: turns - start
    finally:
        task.cancel()
