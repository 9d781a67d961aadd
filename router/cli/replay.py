"""`payroute replay`: what a changed routing config would have done to the traffic a store logged.

    payroute replay --config NEW.yaml --store sqlite:///payroute.db --since 7d
    payroute replay --config NEW.yaml --store postgresql://... --since 36h --json

Reads the settled attempts of the window (each carries its processor's propensity), takes the first call of each
payment attempt as a logged decision, and estimates NEW's first-call authorization rate (doubly robust, with a
95% interval), its traffic share and fee per processor, and where NEW would send payments the logs never tried
(`router.routing.replay` says how and within which limits). Nothing is sent to any processor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from router.cli.check import close_adapters, table_or_issues
from router.config.schema import parse_duration
from router.routing.replay import READ_LIMIT, LoggedDecision, decisions_from, replay
from router.state.store import open_store
from router.state.store.sql import Store


def add_parser(subparsers: Any) -> None:
    """Register `replay` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="estimate what a changed config would have done to the logged traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="NEW.yaml", help="the routing config to evaluate")
    p.add_argument("--store", required=True, metavar="URL", help="the store the traffic was logged in")
    p.add_argument("--since", default="7d", help="how far back to read (default 7d; 36h, 90m, ...)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        window = parse_duration(args.since)
    except ValueError as exc:
        print(f"--since: {exc}", file=err)
        return 2
    table = table_or_issues(args.config, err)
    if table is None:
        return 1
    try:
        until = datetime.now(UTC)
        try:
            decisions = asyncio.run(_read(args.store, until - window, until))
        except (OSError, ValueError) as exc:
            print(f"cannot read the store {args.store!r}: {exc}", file=err)
            return 2
        if not decisions:
            print(f"no logged decisions in the last {args.since}: nothing to replay", file=err)
            return 1
        result = replay(decisions, table)
        print(json.dumps(result.to_dict(), indent=2) if args.json else result.render(args.config), file=out)
        return 0
    finally:
        close_adapters(table)


async def _read(url: str, since: datetime, until: datetime) -> list[Any]:
    store = open_store(url)
    await store.open()
    try:
        return await logged_decisions(store, since, until)
    finally:
        await store.close()


async def logged_decisions(store: Store, since: datetime, until: datetime) -> list[LoggedDecision]:
    """The routing decisions `store`'s attempt records logged between `since` and `until`, oldest first."""
    return decisions_from(await store.attempt_stats(since, READ_LIMIT, until=until))
