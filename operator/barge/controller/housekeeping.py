"""Work that time alone makes due: attempts past their timeout, finished BatchJobs past their
retention, and the Kubernetes Jobs of finished arrays (the TTL controller never sees those finish)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from barge.config import Settings
from barge.controller.arrays import Arrays
from barge.controller.router import Router
from barge.controller.store import Store
from barge.core import job as rules
from barge.core import manifests
from barge.core.states import PENDING, RUNNING, TERMINAL
from barge.core.times import parse_time
from barge.kube import Kube


class Housekeeping:
    def __init__(self, settings: Settings, kube: Kube, store: Store, router: Router, arrays: Arrays,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.kube = kube
        self.store = store
        self.router = router
        self.arrays = arrays
        self.clock = clock

    async def sweep(self) -> None:
        now = self.clock()
        retention = self.settings.finished_job_retention_seconds
        work: list[Any] = []
        for record in self.store.jobs():
            if record.state == RUNNING and rules.timed_out(record, now):
                self.router.request_reconcile(record.key)
            elif (record.state == PENDING and self.arrays.following(record.key)
                  and (record.status.get("resolved") or {}).get("timeoutSeconds")):
                self.router.request_reconcile(record.key)  # children's timeout clocks
            elif record.state in TERMINAL:
                stopped = parse_time(record.status.get("stoppedAt"))
                if stopped is None:
                    continue
                if retention and now - stopped > retention:
                    work.append(self.kube.delete_batchjob(record.namespace, record.name))
                elif (rules.array_size(record) is not None and now - stopped > self.settings.kubernetes_job_ttl_seconds
                      and self.store.kube_jobs(record.uid)):
                    work.append(self.kube.delete_job(record.namespace, manifests.array_job_name(record.name)))
        await asyncio.gather(*work)
