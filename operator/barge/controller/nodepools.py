"""MANAGED compute environments' Karpenter NodePools: created, updated and deleted to match the
environments, and what they provisioned read back for the environments' status. At most one sync
every SYNC_SECONDS, after a scheduling pass; Karpenter does the provisioning itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from barge.controller.records import EnvironmentRecord
from barge.controller.store import Store
from barge.core import nodepools as rules
from barge.core.resources import Resources
from barge.kube import Kube

log = logging.getLogger("barge.nodepools")
SYNC_SECONDS = 2.0
DISCOVERY_SECONDS = 30.0  # Karpenter installed after Barge is found within this long
UNSERVED = ("Karpenter's NodePool API (karpenter.sh/v1 nodepools) is not served by this cluster: "
            "MANAGED compute environments need Karpenter installed; use type UNMANAGED to run on existing nodes")


class NodePools:
    def __init__(self, kube: Kube, store: Store, node_class: rules.NodeClassRef, warm_namespace: str) -> None:
        self.kube = kube
        self.store = store
        self.node_class = node_class
        self.warm_namespace = warm_namespace
        self._priority_class = False
        self._synced_at = float("-inf")
        self._discovered_at = float("-inf")

    async def sync(self, usage: Mapping[str, Resources]) -> None:
        """`usage`: what jobs hold in each environment, as the scheduling pass just counted it."""
        now = time.monotonic()
        if now - self._synced_at < SYNC_SECONDS:
            return
        self._synced_at = now
        try:
            await self._discover(now)
            if self.store.nodepools_unserved is None:
                await self._converge(usage)
        except Exception:
            log.exception("syncing Karpenter NodePools failed; retrying after the next scheduling pass")

    async def _discover(self, now: float) -> None:
        if now - self._discovered_at < DISCOVERY_SECONDS:
            return
        self._discovered_at = now
        self.store.nodepools_unserved = None if await self.kube.nodepools_served() else UNSERVED

    async def _converge(self, usage: Mapping[str, Resources]) -> None:
        listed = await self.kube.list_nodepools(rules.ENVIRONMENT_LABEL)
        if listed is None:  # Karpenter was removed since the last discovery
            self.store.nodepools_unserved = UNSERVED
            return
        managed = {e.name: e for e in self.store.environments() if e.managed and e.invalid_reason is None}
        current = {(p.get("metadata") or {}).get("labels", {}).get(rules.ENVIRONMENT_LABEL): p for p in listed}
        for name, environment in managed.items():
            wanted = rules.nodepool_manifest(name, environment.spec.get("computeResources") or {}, self.node_class)
            if rules.differs(wanted, current.get(name)):
                log.info("applying NodePool %s", wanted["metadata"]["name"])
                await self.kube.apply_nodepool(wanted, exists=name in current)
        present = {e.name for e in self.store.environments()}
        in_use = {name for name, used in usage.items() if not used.is_zero()}
        for name in rules.retired((str(n) for n in current if n not in managed), present, in_use):
            log.info("deleting NodePool %s: its environment is gone and its jobs are done", name)
            await self.kube.delete_nodepool(current[name]["metadata"]["name"])
        await self._keep_warm(managed)
        self.store.provisioned = rules.provisioned(await self.kube.list_nodes(rules.ENVIRONMENT_LABEL))

    async def _keep_warm(self, managed: dict[str, EnvironmentRecord]) -> None:
        """minvCpus of placeholder pods per MANAGED environment (see core.nodepools)."""
        wanted = {name: manifest for name, e in managed.items() if (manifest := rules.warm_deployment(
            name, e.uid, e.spec.get("computeResources") or {}, self.warm_namespace)) is not None}
        current = {(d.get("metadata") or {}).get("labels", {}).get(rules.ENVIRONMENT_LABEL): d
                   for d in await self.kube.list_deployments(self.warm_namespace, rules.ENVIRONMENT_LABEL)}
        if wanted and not self._priority_class:
            await self.kube.ensure_priority_class(rules.warm_priority_class())
            self._priority_class = True
        for name, manifest in wanted.items():
            if rules.warm_differs(manifest, current.get(name)):
                log.info("applying warm capacity %s", manifest["metadata"]["name"])
                await self.kube.apply_deployment(manifest, exists=name in current)
        for name, deployment in current.items():
            if name not in wanted:
                await self.kube.delete_deployment(self.warm_namespace, deployment["metadata"]["name"])
