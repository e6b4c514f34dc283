"""`barge operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time

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
    metrics_now = settings.metrics_port and not (settings.metrics_when_leading and settings.leader_election)
    if metrics_now:
        serve_metrics(settings.metrics_address, settings.metrics_port)
    elector = lead(settings) if settings.leader_election else None
    if settings.metrics_port and not metrics_now:
        serve_metrics(settings.metrics_address, settings.metrics_port)
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


def serve_metrics(address: str, port: int, retry_seconds: float = 5.0) -> None:
    """Serve /metrics; while the port is taken, keep trying in the background. Two replicas that share
    the host's network (the local cluster's real node) take turns: the standby serves once the leader exits."""
    log = logging.getLogger(__name__)

    def attempt() -> bool:
        try:
            prometheus_client.start_http_server(port, addr=address)
            return True
        except OSError:
            return False

    def retry() -> None:
        while not attempt():
            time.sleep(retry_seconds)
        log.info("metrics endpoint now serving on %s:%s", address, port)

    if not attempt():
        log.warning("metrics endpoint %s:%s is taken; serving there as soon as it is free", address, port)
        threading.Thread(target=retry, name="metrics-bind", daemon=True).start()


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
