"""`barge operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import argparse
import logging

import kopf
import prometheus_client

from barge.config import settings_from_args
from barge.controller import handlers


def run_operator(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    logging.basicConfig(level=handlers.log_level(settings.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    handlers.configure(settings)
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.metrics_address)
    kopf.run(
        standalone=settings.standalone,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
    )
    return 0
