"""Work that time alone makes due: attempts past their timeout, containers that cannot start past
their grace period, finished BatchJobs past their retention, and the Kubernetes Jobs of finished
jobs (Barge manages them: the TTL controller never sees those finish)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from barge.config import Settings
from barge.controller.arrays import Arrays
from barge.controller.records import JobRecord
from barge.controller.router import Router
from barge.controller.store import Store
from barge.core import job as rules
from barge.core import lifecycle, manifests
from barge.core.states import PENDING, RUNNING, STARTING, TERMINAL
from barge.core.times import parse_time
from barge.kube import Kube

FINISHED_SWEEP_SECONDS = 5.0


class Housekeeping:
    def __init__(self, settings: Settings, kube: Kube, store: Store, router: Router, arrays: Arrays,
                 clock: Callable[[], float]) -> None:
        self.settings = settings
        self.kube = kube
        self.store = store
        self.router = router
        self.arrays = arrays
        self.clock = clock
        self._finished_swept = 0.0  # monotonic

    async def sweep(self) -> None:
        """Every wake: the jobs whose time alone is due. Every FINISHED_SWEEP_SECONDS: the finished
        jobs past their retention or their Kubernetes Jobs' TTL (kept finished jobs may be many)."""
        now = self.clock()
        retention = self.settings.finished_job_retention_seconds
        work: list[Any] = []
        finished_due = time.monotonic() - self._finished_swept >= FINISHED_SWEEP_SECONDS
        if finished_due:
            self._finished_swept = time.monotonic()
        for record in self.store.jobs() if finished_due else self.store.live_jobs():
            if self._due(record, now):
                self.router.request_reconcile(record.key)
            elif record.state in TERMINAL:
                stopped = parse_time(record.status.get("stoppedAt"))
                if stopped is None:
                    continue
                if retention and now - stopped > retention:
                    work.append(self.kube.delete_batchjob(record.namespace, record.name))
                elif (rules.array_size(record) is not None and now - stopped > self.settings.kubernetes_job_ttl_seconds
                      and self.store.kube_jobs(record.uid)):
                    work.append(self.kube.delete_job(record.namespace, manifests.array_job_name(record.name)))
                elif now - stopped > self.settings.kubernetes_job_ttl_seconds and self.store.has_kube_jobs(record.uid):
                    work.extend(self._delete_attempt_jobs(record))
        await asyncio.gather(*work)

    def _delete_attempt_jobs(self, record: JobRecord) -> list[Any]:
        """A finished one-pod or multi-node job's Jobs (one per attempt; Barge manages them, so the
        TTL controller never sees them finish). They are not watched: forgotten here once asked to go."""
        work = []
        for kube_job in self.store.kube_jobs(record.uid):
            self.store.forget_owned("jobs", record.uid, kube_job.name)
            work.append(self.kube.delete_job(record.namespace, kube_job.name))
        return work

    def _due(self, record: JobRecord, now: float) -> bool:
        """Time alone makes the job's next look due: a timeout, or a container that cannot start past
        its grace period (a pod in ImagePullBackOff may not change again for minutes)."""
        if record.state == RUNNING:
            return rules.timed_out(record, now)
        if record.state == STARTING:
            pod = rules.current_pod(record, self.store.pods(record.uid))
            return lifecycle.startup_failure_due(pod, now, self.settings.startup_failure_seconds)
        if record.state == PENDING and self.arrays.following(record.key):
            return bool((record.status.get("resolved") or {}).get("timeoutSeconds")  # children's timeout clocks
                        or self.arrays.startup_failure_due(record.key, now))
        return False
