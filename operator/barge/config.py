"""The operator's configuration: one place, from flags with environment fallbacks (BARGE_*)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9090  # 0 disables the metrics endpoint
    metrics_when_leading: bool = False  # serve /metrics only once this replica leads
    api_concurrency: int = 32
    finished_job_retention_seconds: int = 7 * 24 * 3600  # 0 keeps finished BatchJobs forever
    kubernetes_job_ttl_seconds: int = 300
    reason_refresh_seconds: float = 30.0
    reason_updates_per_cycle: int = 200
    placement_report_seconds: float = 1.0
    starting_pod_report_seconds: float = 5.0  # the same, while the pod is on a node and starting normally
    running_report_seconds: float = 2.0  # a started container's RUNNING waits this long for its end...
    running_report_busy_starts: int = 20  # ...while this many containers started within that time
    startup_failure_seconds: float = 60.0  # a container that cannot start ends its attempt after this
    events: bool = True
    standalone: bool = True
    log_level: str = "INFO"
    leader_election: bool = False
    leader_election_namespace: str = ""  # empty: the pod's own namespace
    leader_election_lease_seconds: float = 15.0
    # The Karpenter node class of MANAGED environments' NodePools, group/Kind/name.
    node_class: str = "karpenter.k8s.aws/EC2NodeClass/default"
    warm_capacity_namespace: str = "default"  # where minvCpus' placeholder pods run


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BARGE_{name}", default)


def add_operator_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings()
    parser.add_argument("--namespace", action="append", dest="namespaces",
                        default=[n for n in _env("NAMESPACES", "").split(",") if n],
                        help="namespace to watch for JobDefinitions and BatchJobs (repeatable; "
                        "default: all; env BARGE_NAMESPACES=a,b)")
    parser.add_argument("--metrics-address", default=_env("METRICS_ADDRESS", d.metrics_address),
                        help="address of the Prometheus endpoint (env BARGE_METRICS_ADDRESS)")
    parser.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", str(d.metrics_port))),
                        help="port of the Prometheus endpoint, 0 to disable (env BARGE_METRICS_PORT)")
    parser.add_argument("--metrics-when-leading", action="store_true",
                        default=_env("METRICS_WHEN_LEADING", "false") == "true",
                        help="with --leader-elect, serve the Prometheus endpoint only once this replica leads: "
                        "replicas that share one network (hostNetwork) then never answer for each other "
                        "(env BARGE_METRICS_WHEN_LEADING=true)")
    parser.add_argument("--api-concurrency", type=int,
                        default=int(_env("API_CONCURRENCY", str(d.api_concurrency))),
                        help="concurrent Kubernetes API writes (env BARGE_API_CONCURRENCY)")
    parser.add_argument("--finished-job-retention", type=int,
                        default=int(_env("FINISHED_JOB_RETENTION", str(d.finished_job_retention_seconds))),
                        help="seconds a SUCCEEDED/FAILED BatchJob is kept; 0 keeps them forever "
                        "(env BARGE_FINISHED_JOB_RETENTION)")
    parser.add_argument("--kubernetes-job-ttl", type=int,
                        default=int(_env("KUBERNETES_JOB_TTL", str(d.kubernetes_job_ttl_seconds))),
                        help="seconds after a job finished that Barge deletes its Kubernetes Jobs and "
                        "pods; the BatchJob keeps its status after they are gone (env BARGE_KUBERNETES_JOB_TTL)")
    parser.add_argument("--placement-report-seconds", type=float,
                        default=float(_env("PLACEMENT_REPORT_SECONDS", str(d.placement_report_seconds))),
                        help="longest a placed job waits for its pod before STARTING is written; the "
                        "Kubernetes Job is created first, and most jobs go to RUNNING in one write "
                        "(env BARGE_PLACEMENT_REPORT_SECONDS)")
    parser.add_argument("--starting-pod-report-seconds", type=float,
                        default=float(_env("STARTING_POD_REPORT_SECONDS", str(d.starting_pod_report_seconds))),
                        help="the same, for a job whose pod is already on a node with no container failing to "
                        "start: its STARTING is written with RUNNING unless the container takes longer "
                        "(env BARGE_STARTING_POD_REPORT_SECONDS)")
    parser.add_argument("--running-report-seconds", type=float,
                        default=float(_env("RUNNING_REPORT_SECONDS", str(d.running_report_seconds))),
                        help="while containers start busily (--running-report-busy-starts), how long after a "
                        "container starts its RUNNING is written; a container that ends sooner has its end "
                        "written instead, in one write, with the RUNNING Event still posted "
                        "(env BARGE_RUNNING_REPORT_SECONDS)")
    parser.add_argument("--running-report-busy-starts", type=int,
                        default=int(_env("RUNNING_REPORT_BUSY_STARTS", str(d.running_report_busy_starts))),
                        help="containers seen starting within --running-report-seconds from which RUNNING waits "
                        "for a container's end; fewer, and RUNNING is written as soon as it is seen "
                        "(env BARGE_RUNNING_REPORT_BUSY_STARTS)")
    parser.add_argument("--startup-failure-seconds", type=float,
                        default=float(_env("STARTUP_FAILURE_SECONDS", str(d.startup_failure_seconds))),
                        help="how long a container may wait with a reason that means it cannot start "
                        "(ErrImagePull, ImagePullBackOff, CreateContainerConfigError, ...) before its attempt "
                        "ends, as AWS ends it (env BARGE_STARTUP_FAILURE_SECONDS)")
    parser.add_argument("--no-events", action="store_true", default=_env("EVENTS", "true") == "false",
                        help="do not post Kubernetes Events (env BARGE_EVENTS=false)")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", d.log_level),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                        help="DEBUG, INFO, WARNING or ERROR (env BARGE_LOG_LEVEL)")
    parser.add_argument("--leader-elect", action="store_true", dest="leader_election",
                        default=_env("LEADER_ELECT", "false") == "true",
                        help="run only while holding the Lease 'barge-operator' (for more than one replica; "
                        "env BARGE_LEADER_ELECT=true)")
    parser.add_argument("--leader-election-namespace",
                        default=_env("LEADER_ELECTION_NAMESPACE", d.leader_election_namespace),
                        help="namespace of the Lease (default: the pod's own; env BARGE_LEADER_ELECTION_NAMESPACE)")
    parser.add_argument("--leader-election-lease-seconds", type=float,
                        default=float(_env("LEADER_ELECTION_LEASE_SECONDS", str(d.leader_election_lease_seconds))),
                        help="how long a standby waits for a silent leader before taking over")
    parser.add_argument("--warm-capacity-namespace",
                        default=_env("WARM_CAPACITY_NAMESPACE", d.warm_capacity_namespace),
                        help="namespace of the placeholder pods that keep MANAGED environments' minvCpus warm "
                        "(env BARGE_WARM_CAPACITY_NAMESPACE)")
    parser.add_argument("--node-class", default=_env("NODE_CLASS", d.node_class),
                        help="Karpenter node class of MANAGED compute environments' NodePools, as group/Kind/name "
                        "(kwok: karpenter.kwok.sh/KWOKNodeClass/default; env BARGE_NODE_CLASS)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        namespaces=tuple(args.namespaces),
        metrics_address=args.metrics_address,
        metrics_port=args.metrics_port,
        metrics_when_leading=args.metrics_when_leading,
        api_concurrency=args.api_concurrency,
        finished_job_retention_seconds=args.finished_job_retention,
        kubernetes_job_ttl_seconds=args.kubernetes_job_ttl,
        placement_report_seconds=args.placement_report_seconds,
        starting_pod_report_seconds=args.starting_pod_report_seconds,
        running_report_seconds=args.running_report_seconds,
        running_report_busy_starts=args.running_report_busy_starts,
        startup_failure_seconds=args.startup_failure_seconds,
        events=not args.no_events,
        log_level=args.log_level,
        leader_election=args.leader_election,
        leader_election_namespace=args.leader_election_namespace,
        leader_election_lease_seconds=args.leader_election_lease_seconds,
        node_class=args.node_class,
        warm_capacity_namespace=args.warm_capacity_namespace,
    )
