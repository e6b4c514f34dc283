"""The operator, assembled: the store, the rooms that read and write it, and the startup list.

Level-based: every action derives from the observed state (the store, with the decisions it
assumes until they are written), so a restart at any point converges; Kubernetes Jobs and pods
have deterministic names, so nothing is created twice. See docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from barge import metrics
from barge.config import Settings
from barge.controller.arrays import Arrays
from barge.controller.dependencies import Dependencies
from barge.controller.housekeeping import Housekeeping
from barge.controller.informer import Informer
from barge.controller.jobs import Jobs
from barge.controller.nodepools import NodePools
from barge.controller.records import JobKey
from barge.controller.router import KeyedLocks, Router
from barge.controller.scheduling import Scheduler
from barge.controller.shares import Shares
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.controller.summaries import Summaries
from barge.core.nodepools import parse_node_class
from barge.core.resources import Resources
from barge.core.states import TERMINAL
from barge.kube import SMALL_KINDS, Kube

log = logging.getLogger("barge.operator")
LIST_RETRY_SECONDS = 2.0
INDEX_POLL_SECONDS = 0.2


class Operator:
    def __init__(self, settings: Settings, kube: Kube, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.kube = kube
        self.clock = clock
        self.store = Store()
        self.locks = KeyedLocks()
        self.router = Router(self.store, self.kick, self.forget)
        self.dependencies = Dependencies(self.store)
        self.status = StatusWriter(settings, kube, self.store, clock, self.forget,
                                   finished=lambda record: self.jobs.finished(record))
        self.arrays = Arrays(settings, kube, self.store, self.status, self.locks, self.router, self.dependencies,
                             clock)
        self.jobs = Jobs(settings, self.store, self.status, self.locks, self.router, self.arrays,
                         self.dependencies, clock)
        self.router.reconcile = self.jobs.reconcile
        self.summaries = Summaries(self.store, self.status)
        self.nodepools = NodePools(kube, self.store, parse_node_class(settings.node_class),
                                   settings.warm_capacity_namespace)
        self.housekeeping = Housekeeping(settings, kube, self.store, self.router, self.arrays, clock)
        self.shares = Shares(self.store, self.status, clock)
        self.scheduler = Scheduler(settings, self.store, self.status, self.locks, self.jobs, self.arrays, clock,
                                   self._refresh, self.housekeeping.sweep, self.shares)
        self.informer = Informer(kube, settings.namespaces, self._on_event, self._on_relist)

    def _on_event(self, what: str, kind: str, body: dict[str, Any]) -> None:
        if what != "boundpods":
            self.router.on_event(what, kind, body)
        elif self.store.remember_bound_pod(body, deleted=kind == "DELETED"):
            self.kick()  # room freed on a node

    def _on_relist(self, what: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        if what != "boundpods":
            self.router.on_relist(what, namespace, items)
        else:
            self.store.relist_bound_pods(items)
            self.kick()

    async def _refresh(self, usage: dict[str, Resources]) -> None:
        """After a scheduling pass: NodePools follow the MANAGED environments, then every status."""
        await self.nodepools.sync(usage)
        await self.summaries.refresh(usage)

    def kick(self) -> None:
        """A scheduling pass is due."""
        self.scheduler.kick()

    def forget(self, key: JobKey) -> None:
        """A BatchJob is gone: so is everything held about it."""
        self.store.forget(key)
        self.arrays.forget(key)
        self.jobs.forget(key)
        self.scheduler.forget(key)
        self.kick()

    async def run_scheduler(self) -> None:
        await self.scheduler.run()

    async def initial_list(self) -> None:
        """Everything Barge created, listed once before anything is reconciled or scheduled, so a
        restart counts the quota in full; watches resumed from each list keep it current."""
        while True:
            try:
                versions = {what: await self.informer.list_into(what, remember) for what, remember in (
                    ("batchjobs", self.store.remember), ("jobs", self.store.remember_kube_job),
                    ("pods", self.store.remember_pod))}
                self.store.relist_bound_pods([])
                versions["boundpods"] = await self.informer.list_into("boundpods", self.store.remember_bound_pod,
                                                                      cluster_wide=True)
                break
            except Exception:
                log.exception("listing BatchJobs, Jobs and pods failed; retrying")
                await asyncio.sleep(LIST_RETRY_SECONDS)
        for what, at in versions.items():
            self.informer.follow(what, at)
        metrics.PLACEMENTS_RECOVERED.inc(self.store.adopt_placements())
        await self._await_small_kinds()
        await self.jobs.admit_placed_before_restart()
        self.store.listed.set()
        self.kick()
        for record in self.store.jobs():
            if record.state not in TERMINAL:
                self.router.request_reconcile(record.key)

    async def _await_small_kinds(self) -> None:
        """Reconciling needs the compute environments, queues and definitions, which kopf indexes from
        watches of its own: without them a job would look as if its queue were gone. Wait until the
        indexes hold every one that a list of ours finds (one deleted meanwhile drops out of the next list)."""
        while True:
            try:
                namespaces = self.settings.namespaces
                missing = [(what, key) for what in SMALL_KINDS for key in await self.kube.keys(what, namespaces)
                           if not self.store.indexed(what, key)]
                if self.store.nodes_known:
                    missing += [("nodes", name) for name in await self.kube.node_names()
                                if not self.store.indexed("nodes", name)]
                if not missing:
                    return
                log.debug("waiting for kopf to index %s", missing[:3])
            except Exception:
                log.exception("listing compute environments, queues and definitions failed; retrying")
            await asyncio.sleep(INDEX_POLL_SECONDS)
