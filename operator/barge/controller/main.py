"""`barge operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import argparse
import logging
import os

import kopf
import kubernetes
import prometheus_client

from barge import metrics
from barge.config import Settings, settings_from_args
from barge.controller import handlers, leader

LEASE_NAME = "barge-operator"


def run_operator(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logging.basicConfig(level=handlers.log_level(settings.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    handlers.configure(settings)
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_address)
    elector = lead(settings) if settings.leader_election else None
    if elector is None:
        metrics.LEADER.set(1)
    try:
        kopf.run(
            standalone=settings.standalone,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
        )
    finally:
        if elector is not None:
            elector.release()
    return 0


def lead(settings: Settings) -> leader.LeaderElector:
    """Block until this replica holds the lease; exit at once if it is ever lost."""
    kubernetes.config.load_config()
    namespace = settings.leader_election_namespace or leader.default_namespace()
    elector = leader.LeaderElector.in_cluster(namespace, LEASE_NAME, settings.leader_election_lease_seconds)
    elector.acquire()

    def lost() -> None:
        logging.getLogger(__name__).critical("leadership lost: exiting so that no two replicas schedule")
        os._exit(1)

    elector.keep_renewing(lost)
    return elector
