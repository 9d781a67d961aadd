"""`payroute`: the command line. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from router import checkcmd, explain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="payroute", description="Multiprocessor payments orchestration router")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    checkcmd.add_parser(sub)
    explain.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
