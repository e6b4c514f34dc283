"""Entry point of the `barge` command (also `kubectl-barge`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from barge import __version__
from barge.cli import dev, imports, jobs


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="barge", description="AWS Batch's job model on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"barge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    jobs.add_parsers(sub)
    dev.add_parser(sub)
    imports.add_parser(sub)
    operator = sub.add_parser("operator", help="run the Barge operator against the current kubeconfig")
    from barge.config import add_operator_arguments

    add_operator_arguments(operator)
    aws_api = sub.add_parser(
        "aws-api", help="serve AWS Batch's API (boto3, the aws CLI) over Barge's kinds",
        description="An HTTP server speaking AWS Batch's REST-JSON API: requests signed with SigV4 by a key of "
        "the credentials file are run as that key's Kubernetes user (impersonation), so RBAC decides.",
        epilog="example: AWS_ENDPOINT_URL_BATCH=http://127.0.0.1:8787 aws batch describe-job-queues")
    from barge.awsapi.main import add_arguments as add_aws_api_arguments

    add_aws_api_arguments(aws_api)
    console = sub.add_parser("console", help="serve the Barge web console",
                             description="A web console: queues, compute environments, jobs, a job's detail and "
                             "logs, submit, cancel and terminate, live. On loopback it uses the local kubeconfig; "
                             "otherwise each user signs in with a bearer token and RBAC decides.",
                             epilog="example: barge console --port 8080")
    from barge.console.server import add_arguments as add_console_arguments

    add_console_arguments(console)
    bench = sub.add_parser(
        "bench", help="measure Barge against the local cluster's own ceiling",
        description="Brings up the local cluster (client rate limits of the controllers and the scheduler "
        "lifted to 5000 QPS), runs the operator as a local process and prints every figure as a table "
        "and as JSON.", epilog="example: barge bench --quick --only p1,p5")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (minutes instead of an hour)")
    bench.add_argument("--only", default="",
                       help="comma-separated subset of ceiling,p1,p2,p2side,p3,p4,p4fs,p5,managed")
    bench.add_argument("--p2side-jobs", type=positive_int, default=None,
                       help="jobs per phase of the p2side step (default: 2000 with --quick, else 10000)")
    bench.add_argument("--p2side-repeats", type=positive_int, default=None,
                       help="turns of the p2side step's three phases (default 2)")
    bench.add_argument("--p2side-systems", type=systems, default=None,
                       help="comma-separated subset of plain,barge,kueue for the p2side step (default: all three)")
    bench.add_argument("--array-to-completion", action="store_true",
                       help="P3 also runs the whole array to its end (hours at full size)")
    from barge.bench.run import OUT_DIR

    bench.add_argument("--out", type=Path, default=OUT_DIR / "results.json",
                       help="where to write the JSON, a file or a directory to write results.json into "
                       "(default: operator/barge/bench/out/results.json)")
    return parser


def systems(text: str) -> tuple[str, ...]:
    from barge.bench.side_by_side import SYSTEMS

    chosen = tuple(s for s in text.split(",") if s)
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{','.join(unknown) or 'nothing'} is not one of "
                                         f"{','.join(SYSTEMS)}")
    return tuple(s for s in SYSTEMS if s in chosen)


def results_path(out: Path) -> Path:
    """Where the benchmark writes its JSON; checked before a run of an hour, not after it."""
    if out.is_dir():
        out = out / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a"):  # writable now, or the error names the path before anything is measured
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return dev.run(args)
    if args.command in jobs.COMMANDS:
        return jobs.run(args)
    if args.command == "import-job-definition":
        return imports.run(args)
    if args.command == "aws-api":
        from barge.awsapi.main import run as run_aws_api

        return run_aws_api(args)
    if args.command == "bench":
        from barge.bench.run import run

        run(args.quick, [s for s in args.only.split(",") if s], results_path(args.out), args.array_to_completion,
            args.p2side_jobs, args.p2side_repeats, args.p2side_systems)
        return 0
    if args.command == "console":
        from barge.console.server import run as run_console

        return run_console(args)
    if args.command == "operator":
        from barge.controller.main import run_operator

        return run_operator(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
