"""Entry point of the `barge` command (also `kubectl-barge`)."""

from __future__ import annotations

import argparse
import sys

from barge import __version__
from barge.cli import dev


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="barge", description="AWS Batch's job model on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"barge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dev.add_parser(sub)
    operator = sub.add_parser("operator", help="run the Barge operator against the current kubeconfig")
    from barge.config import add_operator_arguments

    add_operator_arguments(operator)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return dev.run(args)
    if args.command == "operator":
        from barge.controller.main import run_operator

        return run_operator(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
