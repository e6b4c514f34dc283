"""`barge dev cluster ...`: the local cluster for development and tests."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from barge.dev import build, cluster
from barge.dev.pools import PoolConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dev = subparsers.add_parser("dev", help="developer tools: the local cluster")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    cl = dev_sub.add_parser(
        "cluster",
        help="a local Kubernetes control plane with kwok node pools",
        description="Build (once, cached in $BARGE_CACHE or ~/.cache/barge) and run etcd, "
        "kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1.",
        epilog="example: barge dev cluster up && export KUBECONFIG=$(barge dev cluster kubeconfig)",
    )
    actions = cl.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start the cluster (or repair a half-started one)")
    up.add_argument("--pools", type=Path, help="node pool config (default: the built-in cpu and gpu pools)")
    up.add_argument("--default-rate-limits", action="store_true",
                    help="keep upstream client rate limits (20 QPS) in the controllers and scheduler")
    actions.add_parser("down", help="stop every process of the cluster and wipe its data")
    actions.add_parser("status", help="show which components run, as JSON")
    actions.add_parser("kubeconfig", help="print the path of the cluster's kubeconfig")
    actions.add_parser("build", help="build the binaries into the cache only")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            options = cluster.default_options(args.pools, 20 if args.default_rate_limits else 5000)
            print(cluster.up(options))
        elif args.action == "down":
            cluster.down()
        elif args.action == "status":
            report = cluster.status()
            print(json.dumps(report, indent=2))
            return 0 if report["up"] else 3
        elif args.action == "kubeconfig":
            print(cluster.kubeconfig_path())
        elif args.action == "build":
            build.ensure_built()
    except (cluster.ClusterError, build.BuildError, PoolConfigError) as exc:
        print(f"error: {exc}")
        return 2
    return 0
