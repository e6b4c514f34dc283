"""A multi-node job's pods: created node by node as core.gangs says (the main node first, then the
others with its address), and what each node shows, for status.nodeProperties. The attempt's outcome
is followed by jobs.py from the main node's pod."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from barge.controller.records import EnvironmentRecord, JobRecord, placement
from barge.controller.store import Store
from barge.core import gangs, manifests
from barge.core.lifecycle import KubeJobObservation, PodObservation
from barge.kube import Kube

log = logging.getLogger("barge.gangs")


class Gangs:
    def __init__(self, kube: Kube, store: Store) -> None:
        self.kube = kube
        self.store = store

    async def start_nodes(self, record: JobRecord, kube_job: KubeJobObservation,
                          pods: Sequence[PodObservation]) -> bool:
        """Create the pods the attempt should have by now and does not; False when a create failed."""
        nodes = record.resolved.nodes
        assert nodes is not None
        indices, main_address = gangs.pods_to_create(nodes, pods, record.attempt)
        environment = self.store.environment(kube_job.environment or str(record.status.get("computeEnvironment")))
        if not indices or environment is None or not kube_job.uid:
            return True
        created = [await self._create(record, environment, kube_job, index, main_address) for index in indices]
        return all(created)

    async def _create(self, record: JobRecord, environment: EnvironmentRecord, kube_job: KubeJobObservation,
                      index: int, main_address: str | None) -> bool:
        where = placement(record, environment, None)
        pod = manifests.gang_node_pod(record.resolved, where, kube_job.name, kube_job.uid, index, main_address)
        try:
            await self.kube.create_pod(pod)  # one that exists already (a look before its event came) is kept
            return True
        except Exception as exc:
            log.warning("creating node %s of %s failed: %s", index, record.key, exc)
            return False

    async def stop_others(self, record: JobRecord, pods: Sequence[PodObservation]) -> None:
        """The main node ended: stop the other nodes still running."""
        nodes = record.resolved.nodes
        assert nodes is not None
        for name in gangs.still_running(nodes, pods, record.attempt):
            await self.kube.delete_pod(record.namespace, name)

    @staticmethod
    def status_patch(record: JobRecord, pods: Sequence[PodObservation]) -> dict[str, Any] | None:
        """status.nodeProperties when what the nodes show changed; None when it did not."""
        nodes = record.resolved.nodes
        assert nodes is not None
        shown = gangs.node_status(nodes, pods, record.attempt)
        return None if record.status.get("nodeProperties") == shown else shown
