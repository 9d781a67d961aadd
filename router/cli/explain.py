"""`payroute explain`: which route a payment takes, by which strategy, and why each processor is in or out.

    payroute explain --config config/routing.yaml payment.json
    payroute explain --config config/routing.yaml '{"amount": {"value": 2500, "currency": "eur"}, ...}'

The payment is the body of a create request (the v2 OffSessionPayment create parameters), from a file, inline,
or `-` for stdin. Two extra keys are accepted: `id` (a weighted route orders by payment id, so pass a real one
to see its order) and `card: {brand, country, funding}` for a token the router cannot read those from.
`--breaker-open NAME` asks what happens while a processor's breaker is open.

    payroute explain --store sqlite:///payroute.db osp_test_…

With `--store`, a stored payment's retries instead: each attempt, and when the next retry is and why (the payday
rhythm or calendar feature the retry planner used), or why it stopped (`router.retry.explain`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from router.cli.check import close_adapters, table_or_issues
from router.errors import PayrouteError
from router.retry.explain import run_stored
from router.routing.breakers import OPEN
from router.routing.explain import explain, payment_from_params


def _read_payment(arg: str, stdin: TextIO) -> Any:
    if arg == "-":
        return json.loads(stdin.read())
    if arg.lstrip().startswith("{"):
        return json.loads(arg)
    return json.loads(Path(arg).read_text(encoding="utf-8"))


def add_parser(subparsers: Any) -> None:
    """Register `explain` on the CLI's subparsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="show the route, strategy and processor order a payment would get",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="the routing YAML file (required unless --store)")
    p.add_argument("--store", help="with a payment id (osp_…) for PAYMENT_JSON: its retries and why each is when it is")
    p.add_argument("payment", metavar="PAYMENT_JSON", help="create parameters: a file, inline JSON, or - for stdin")
    p.add_argument(
        "--breaker-open", action="append", default=[], metavar="PROCESSOR", help="treat this breaker as open"
    )
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.store:
        return run_stored(args.store, args.payment, args.json, out, err)
    if not args.config:
        print("explain: --config is required (or --store with a stored payment's id)", file=err)
        return 2
    table = table_or_issues(args.config, err)
    if table is None:
        return 1
    try:
        try:
            data = _read_payment(args.payment, sys.stdin)
        except (OSError, ValueError) as exc:
            print(f"cannot read the payment {args.payment!r}: {exc}", file=err)
            return 2
        try:
            payment = payment_from_params(data)
        except PayrouteError as exc:
            where = f" ({exc.param})" if exc.param else ""
            print(f"invalid payment{where}: {exc}", file=err)
            return 2
        unknown = [n for n in args.breaker_open if n not in table.config.processors]
        if unknown:
            print(f"--breaker-open: unknown processor {unknown[0]!r}", file=err)
            return 2
        result = explain(table, payment, breakers=dict.fromkeys(args.breaker_open, OPEN))
        print(json.dumps(result.to_dict(), indent=2) if args.json else result.render(), file=out)
        return 0
    finally:
        close_adapters(table)
