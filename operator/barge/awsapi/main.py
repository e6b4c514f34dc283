"""`barge aws-api`: flags, and the server's start."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from barge.awsapi.identity import CredentialsError, load_credentials
from barge.awsapi.kubeapi import KubeApi, load_configuration
from barge.awsapi.server import AwsApi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to listen on (default 8787)")
    parser.add_argument("--namespace", default="default",
                        help="where job definitions and jobs go (default: default)")
    parser.add_argument("--credentials", type=Path, required=True,
                        help="YAML list of {accessKeyId, secretAccessKey, username, groups}: the keys that may "
                             "sign requests, and the Kubernetes user each acts as")
    parser.add_argument("--account-id", default="000000000000", help="the account in ARNs (default 000000000000)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        identities = load_credentials(args.credentials)
    except CredentialsError as exc:
        print(f"barge aws-api: {exc}", file=sys.stderr)
        return 2
    if not (args.account_id.isdigit() and len(args.account_id) == 12):
        print(f"barge aws-api: --account-id {args.account_id!r} must be 12 digits", file=sys.stderr)
        return 2
    api = AwsApi(KubeApi(load_configuration()), identities, args.namespace, args.account_id)
    web.run_app(api.app(), host=args.address, port=args.port, access_log=None,
                print=lambda _: print(f"barge aws-api: serving AWS Batch on http://{args.address}:{args.port} "
                                      f"(namespace {args.namespace})", flush=True))
    return 0
