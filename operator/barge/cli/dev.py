"""`barge dev cluster ...`: the local cluster for development and tests."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from barge.dev import build, cluster, images, realnode
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
    up.add_argument("--real-node", action="store_true",
                    help=f"also run one real node (kubelet + containerd; needs root), pool {realnode.POOL}, "
                    f"tainted {realnode.TAINT_KEY}=true:NoSchedule")
    up.add_argument("--karpenter", action="store_true",
                    help="also run Karpenter with its kwok provider (built once, pinned) and its CRDs, for "
                    "MANAGED compute environments; added to a running cluster without restarting it")
    actions.add_parser("down", help="stop every process of the cluster and wipe its data")
    restart = actions.add_parser(
        "restart", help="kill one component (SIGKILL) and start it again: a control-plane fault, on purpose",
        epilog="example: barge dev cluster restart etcd --down-seconds 10")
    restart.add_argument("component", choices=[c.name for c in cluster.COMPONENTS])
    restart.add_argument("--down-seconds", type=float, default=0.0, help="how long it stays down (default 0)")
    restart.add_argument("--compact", action="store_true",
                         help="compact etcd's history first, so watches resumed from before it get 410 Gone")
    actions.add_parser("status", help="show which components run, as JSON")
    actions.add_parser("kubeconfig", help="print the path of the cluster's kubeconfig")
    build_cmd = actions.add_parser("build", help="build the binaries into the cache only")
    build_cmd.add_argument("--all", action="store_true", help="also kubelet (the real node), helm, karpenter and kueue")
    build_cmd.add_argument("--only", type=_component_names, metavar="NAMES",
                           help=f"comma-separated subset of {','.join(c.name for c in build.ALL_COMPONENTS)}")
    helm = dev_sub.add_parser("helm", help="run the project's pinned helm (built once) against the local cluster",
                              epilog="example: barge dev helm -- lint helm/barge")
    helm.add_argument("helm_args", nargs=argparse.REMAINDER, help="arguments for helm")

    image = dev_sub.add_parser(
        "image", help="build images without a registry and load them into the real node",
        description="Build an image from a Dockerfile with buildah (FROM debian:bookworm-slim is made here with "
        "debootstrap) and import it into the real node's containerd. Cached by content: an unchanged "
        "Dockerfile and context is not rebuilt.",
        epilog="example: barge dev image build -t localhost/barge/operator:dev .")
    image_actions = image.add_subparsers(dest="action", required=True)
    image_build = image_actions.add_parser("build", help="build (if changed) and load into the real node")
    image_build.add_argument("context", type=Path, nargs="?", default=Path("."))
    image_build.add_argument("-f", "--file", type=Path, help="the Dockerfile (default: CONTEXT/Dockerfile)")
    image_build.add_argument("-t", "--tag", required=True, help="the image name, e.g. localhost/barge/operator:dev")
    image_build.add_argument("--no-load", action="store_true", help="build only; do not import into containerd")


def _component_names(text: str) -> tuple[build.Component, ...]:
    by_name = {c.name: c for c in build.ALL_COMPONENTS}
    unknown = [name for name in text.split(",") if name not in by_name]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown component {', '.join(unknown)}; known: {', '.join(by_name)}")
    return tuple(by_name[name] for name in text.split(","))


def run(args: argparse.Namespace) -> int:
    if args.dev_command == "image":
        return run_image(args)
    if args.dev_command == "helm":
        return run_helm(args.helm_args)
    try:
        if args.action == "up":
            options = cluster.default_options(args.pools, 20 if args.default_rate_limits else 5000, args.real_node,
                                              args.karpenter)
            print(cluster.up(options))
        elif args.action == "down":
            cluster.down()
        elif args.action == "restart":
            if args.compact:
                print(f"etcd compacted at revision {cluster.compact_etcd()}")
            cluster.restart_component(args.component, cluster.default_options(), args.down_seconds)
            print(f"{args.component} restarted")
        elif args.action == "status":
            report = cluster.status()
            print(json.dumps(report, indent=2))
            return 0 if report["up"] else 3
        elif args.action == "kubeconfig":
            print(cluster.kubeconfig_path())
        elif args.action == "build":
            if args.only:
                build.ensure_built(args.only)
            else:
                build.ensure_built(build.ALL_COMPONENTS if args.all else build.DEFAULT_COMPONENTS)
    except (cluster.ClusterError, build.BuildError, PoolConfigError, images.ImageError,
            realnode.RealNodeError) as exc:
        print(f"error: {exc}")
        return 2
    return 0


def run_image(args: argparse.Namespace) -> int:
    reason = realnode.unavailable_reason()
    if reason:
        print(f"error: cannot build images here: {reason}")
        return 2
    dockerfile = args.file or args.context / "Dockerfile"
    if not dockerfile.is_file():
        print(f"error: no Dockerfile at {dockerfile}")
        return 2
    try:
        realnode.install_packages(lambda m: print(m, flush=True))
        images.build_image(dockerfile, args.context, args.tag)
        print(f"{args.tag}: {images.image_size(args.tag)}")
        if not args.no_load:
            state = cluster.state_dir()
            if not realnode.containerd_ready(state):
                print("error: the real node is not running; start it with `barge dev cluster up --real-node` "
                      "(or pass --no-load)")
                return 2
            loaded = images.load_image(state, args.tag)
            print(f"{args.tag}: {'imported into' if loaded else 'already in'} the real node's containerd")
    except (images.ImageError, realnode.RealNodeError) as exc:
        print(f"error: {exc}")
        return 2
    return 0


def run_helm(helm_args: list[str]) -> int:
    try:
        build.ensure_built((build.HELM,))
    except build.BuildError as exc:
        print(f"error: {exc}")
        return 2
    env = {**os.environ}
    env.setdefault("KUBECONFIG", str(cluster.kubeconfig_path()))
    if helm_args[:1] == ["--"]:
        helm_args = helm_args[1:]
    return subprocess.run([str(build.binary("helm")), *helm_args], env=env).returncode
