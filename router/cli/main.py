"""The `payroute` command: `serve`, `check`, `explain`, `replay`. Each subcommand registers its arguments and a `run`.

payroute serve --config FILE [--host 127.0.0.1] [--port 8080] [--store sqlite:///payroute.db] [--workers N|auto]
payroute check FILE
payroute explain --config FILE PAYMENT_JSON
payroute replay --config NEW.yaml --store URL [--since 7d]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from router import logformat
from router.cli import check as checkcmd
from router.cli import explain
from router.cli import replay as replaycmd

Command = Callable[[argparse.Namespace], int]


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP sidecar (Stripe v2 Off-Session Payments dialect)",
        description=(
            "Run the HTTP sidecar. API keys come from PAYROUTE_API_KEYS (comma-separated sk_test_…/sk_live_…, or "
            "grouped by account: 'acct_a: sk_test_…; acct_b: sk_test_…'); admin keys from PAYROUTE_ADMIN_KEYS."
        ),
    )
    p.add_argument("--config", required=True, metavar="FILE", help="routing config (YAML)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0 picks a free one)")
    p.add_argument("--store", default="sqlite:///payroute.db", help="store URL (default sqlite:///payroute.db)")
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long in-flight requests may take to finish (default 30)",
    )
    p.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="processes serving the one port (SO_REUSEPORT); 'auto': one per core (default 1)",
    )
    p.add_argument("--no-access-log", action="store_true", help="do not log a line per request")
    p.add_argument("--no-scheduler", action="store_true", help="do not run due retries in this process")
    p.add_argument("--no-watch", action="store_true", help="do not reload when the config file changes")
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from router.http.server import ServeOptions, run_sidecar
    from router.http.workers import supervise, worker_count
    from router.state.store import in_one_process

    try:
        workers = worker_count(args.workers)
    except ValueError as exc:
        print(f"payroute serve: {exc}", file=sys.stderr)
        return 2
    if workers > 1 and in_one_process(args.store):
        # Each worker would hold a database of its own: one Idempotency-Key sent to two of them would charge twice.
        print(
            f"payroute serve: {workers} workers need a store they share (a SQLite file or PostgreSQL);"
            f" {args.store} lives in one process's memory",
            file=sys.stderr,
        )
        return 2
    options = ServeOptions(
        config=args.config,
        host=args.host,
        port=args.port,
        store=args.store,
        shutdown_timeout=args.shutdown_timeout,
        scheduler=not args.no_scheduler,
        watch_interval_s=None if args.no_watch else 2.0,
        access_log=not args.no_access_log,
    )

    def ready(address: str) -> None:
        more = f" ({workers} workers)" if workers > 1 else ""
        print(f"payroute sidecar listening on {address}{more}", file=sys.stderr, flush=True)

    if workers == 1:
        return run_sidecar(options, on_ready=ready)
    try:
        return supervise(options, workers, on_ready=ready, verbose=args.verbose)
    except OSError as exc:
        print(f"payroute serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1


# Subcommands, in the order `payroute --help` lists them.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_serve,
    checkcmd.add_parser,
    explain.add_parser,
    replaycmd.add_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payroute", description="Multiprocessor payments orchestration router.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get(logformat.ENV_VAR, "text"),
        help="text lines, or one JSON object per line with the trace id when tracing is on "
        f"(default text, or ${logformat.ENV_VAR})",
    )
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logformat.configure(logging.DEBUG if args.verbose else logging.INFO, args.log_format)
    os.environ[logformat.ENV_VAR] = args.log_format  # `serve --workers N` starts processes that log the same way
    command: Command = args.run
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
