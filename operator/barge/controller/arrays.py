"""Array jobs: read their state, call the pure core (core.arrays), write the result.

An array's children are pods that Barge creates itself, one per child attempt, under one Kubernetes
Job (spec.managedBy: barge.dev/operator). Settled children live in the parent's status as ranges;
children in flight are read from their pods; `arrays.progress` derives the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from barge.config import Settings
from barge.controller.dependencies import Dependencies
from barge.controller.records import EnvironmentRecord, JobKey, JobRecord, placement
from barge.controller.router import KeyedLocks, Router
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import arrays, dependencies, lifecycle, manifests
from barge.core import job as rules
from barge.core.lifecycle import PodObservation
from barge.core.resolve import Resolved
from barge.core.resources import Resources
from barge.core.states import CANCELLED_BY_USER, PENDING, TIMEOUT_REASON
from barge.core.times import iso, parse_time
from barge.kube import Kube

log = logging.getLogger("barge.arrays")
WRITE_INTERVAL = 0.5  # at most two status writes a second per array, whatever its children do


@dataclass
class ArrayRuntime:
    progress: arrays.Progress | None = None
    creating: dict[int, int] = field(default_factory=dict)  # index -> attempt whose pod is being created
    job_uid: str | None = None
    last_write: float = 0.0
    flush_pending: bool = False
    ready: bool = False  # job-level dependencies met and not cancelled
    held: str | None = None  # why a cap (maxParallel, the queue's maxRunningJobs) holds children back


class Arrays:
    def __init__(self, settings: Settings, kube: Kube, store: Store, status: StatusWriter, locks: KeyedLocks,
                 router: Router, dependencies: Dependencies, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.kube = kube
        self.store = store
        self.status = status
        self.locks = locks
        self.router = router
        self.dependencies = dependencies
        self.clock = clock
        self._runtimes: dict[JobKey, ArrayRuntime] = {}

    def forget(self, key: JobKey) -> None:
        self._runtimes.pop(key, None)

    def following(self, key: JobKey) -> bool:
        return key in self._runtimes

    def startup_failure_due(self, key: JobKey, now: float) -> bool:
        """A child in flight at the last look waits, past the grace period, for a container that
        cannot start: a pod stuck in ImagePullBackOff may not change again for minutes."""
        runtime = self._runtimes.get(key)
        if runtime is None or runtime.progress is None:
            return False
        grace = self.settings.startup_failure_seconds
        return any(lifecycle.startup_failure_due(pod, now, grace) for pod in runtime.progress.active.values())

    def _runtime(self, key: JobKey) -> ArrayRuntime:
        runtime = self._runtimes.get(key)
        if runtime is None:
            runtime = self._runtimes[key] = ArrayRuntime()
        return runtime

    def _pods(self, record: JobRecord) -> list[PodObservation]:
        return [p for p in self.store.pods(record.uid) if p.index is not None]

    def _progress(self, record: JobRecord, runtime: ArrayRuntime, verdict: dependencies.Verdict) -> arrays.Progress:
        pods = self._pods(record)
        self._forget_created(runtime, pods)
        deps = list(record.spec.get("dependsOn") or [])
        gate: arrays.ChildGate | None = None
        if rules.stopping(record) or not verdict.ready:
            gate = arrays.ALL_WAIT
        elif any(d.get("type") in ("N_TO_N", "SEQUENTIAL") for d in deps):
            gate = self.dependencies.child_gate(record, deps)
        resolved = record.status.get("resolved") or {}
        now = self.clock()
        return arrays.progress(
            rules.array_size(record) or 0, record.status.get("arrayProperties") or {}, pods,
            resolved.get("retryStrategy") or {}, resolved.get("timeoutSeconds"), gate, set(runtime.creating),
            iso(now), now, parse_time, no_retry=rules.stopping(record),
            startup_grace_seconds=self.settings.startup_failure_seconds,
        )

    # --- one array's reconcile -------------------------------------------------------------------

    async def reconcile(self, record: JobRecord) -> None:
        runtime = self._runtime(record.key)
        verdict = self.dependencies.verdict(record)
        if verdict.failure:
            await self._finish(record, runtime, verdict.failure, failed_children_reason=verdict.failure)
            return
        runtime.ready = verdict.ready and record.spec.get("cancel") is None
        progress = self._progress(record, runtime, verdict)
        if progress.changed and self._has_sequential(record):
            # a settled child can release its successor: derive again from the new settled set (the
            # pods that could not start are settled now, so only the first look lists them)
            record.status["arrayProperties"] = arrays.array_status(rules.array_size(record) or 0, progress)
            first = progress
            progress = self._progress(record, runtime, verdict)
            progress.not_started = first.not_started + progress.not_started
        runtime.progress = progress
        now = iso(self.clock())
        for index in progress.to_stop:
            arrays.fail_child(progress.settled, index, TIMEOUT_REASON, now, progress.active.get(index))
        cancel = record.spec.get("cancel")
        if cancel is not None and not progress.active and not runtime.creating:
            reason = cancel.get("reason") or CANCELLED_BY_USER
            await self._finish(record, runtime, reason, failed_children_reason=reason, flag="isCancelled")
            return
        # The outcome is written before timed-out pods and pods that cannot start are stopped, so a
        # restart in between cannot run those children again.
        stopped = [p for p in (progress.active.get(i) for i in progress.to_stop) if p is not None]
        stopped += progress.not_started
        if arrays.finished(rules.array_size(record) or 0, progress):
            await self._finish(record, runtime, None)
        else:
            await self._write_progress(record, runtime, progress, verdict, force=bool(stopped))
        for pod in stopped:
            await self.kube.delete_pod(record.namespace, pod.name)
        if progress.runnable and runtime.ready:
            self.router.kick()

    @staticmethod
    def _has_sequential(record: JobRecord) -> bool:
        return any(d.get("type") == "SEQUENTIAL" for d in record.spec.get("dependsOn") or [])

    async def _write_progress(self, record: JobRecord, runtime: ArrayRuntime, progress: arrays.Progress,
                              verdict: dependencies.Verdict, force: bool = False) -> None:
        held = runtime.held if progress.runnable_count else None
        patch = arrays.progress_patch(rules.array_size(record) or 0, progress, verdict, held)
        previous = record.status.get("arrayProperties") or {}
        if patch["arrayProperties"] == previous and record.status.get("statusReason") == patch["statusReason"]:
            return
        wait = WRITE_INTERVAL - (time.monotonic() - runtime.last_write)
        if wait > 0 and not force:
            if not runtime.flush_pending:
                runtime.flush_pending = True
                asyncio.get_running_loop().call_later(wait, self._flush, record.key)
            return
        runtime.last_write = time.monotonic()
        updated = await self.status.write(record, patch)
        if updated is not None:
            for key in self.dependencies.dependents(updated):  # N_TO_N dependents follow child by child
                self.router.request_reconcile(key)

    def _flush(self, key: JobKey) -> None:
        runtime = self._runtimes.get(key)
        if runtime is not None:
            runtime.flush_pending = False
            self.router.request_reconcile(key)

    async def _finish(self, record: JobRecord, runtime: ArrayRuntime, reason: str | None,
                      failed_children_reason: str | None = None, flag: str | None = None) -> None:
        progress = runtime.progress or self._progress(record, runtime, dependencies.Verdict(False))
        patch = arrays.finish_patch(rules.array_size(record) or 0, progress, iso(self.clock()), reason,
                                    failed_children_reason, flag)
        await self.status.write(record, patch)
        self._runtimes.pop(record.key, None)
        self.router.kick()

    async def terminate(self, record: JobRecord) -> None:
        reason = rules.termination_reason(record)
        await self.kube.delete_job(record.namespace, manifests.array_job_name(record.name))
        runtime = self._runtime(record.key)
        runtime.progress = self._progress(record, runtime, dependencies.Verdict(True))
        now = iso(self.clock())
        for index, pod in runtime.progress.active.items():
            arrays.fail_child(runtime.progress.settled, index, reason, now, pod)
        runtime.progress.active.clear()
        await self._finish(record, runtime, reason, failed_children_reason=reason, flag="isTerminated")

    # --- scheduling ------------------------------------------------------------------------------

    @staticmethod
    def _forget_created(runtime: ArrayRuntime, pods: list[PodObservation]) -> None:
        """A child whose pod has been seen is no longer being created."""
        for pod in pods:
            if pod.index is not None and runtime.creating.get(pod.index) == pod.attempt:
                del runtime.creating[pod.index]

    def usage(self, record: JobRecord) -> tuple[str | None, Resources]:
        """What the array's children hold of its environment's quota: one request per child in flight."""
        return record.status.get("computeEnvironment"), record.request.times(self.in_flight(record))

    def in_flight(self, record: JobRecord) -> int:
        """Children in STARTING or RUNNING (or being created)."""
        runtime = self._runtimes.get(record.key)
        pods = self._pods(record)
        active = {p.index for p in pods if p.active}
        if runtime is not None:
            # A child whose pod exists is counted by its pod, so one that has already finished frees
            # its capacity now, not at the array's next look. `creating` itself is cleared only by
            # that look, which also recomputes the runnable list: clearing it here would let a
            # stale list offer the same child again.
            seen = {(p.index, p.attempt) for p in pods}
            active |= {index for index, attempt in runtime.creating.items() if (index, attempt) not in seen}
        return len(active)

    def held(self, record: JobRecord, reason: str | None) -> None:
        """The scheduler's word on a cap holding children back; a change is written by a reconcile."""
        runtime = self._runtimes.get(record.key)
        if runtime is not None and runtime.held != reason:
            runtime.held = reason
            self.router.request_reconcile(record.key)

    def wants(self, record: JobRecord) -> int:
        """How many children may start now."""
        runtime = self._runtimes.get(record.key)
        if runtime is None or runtime.progress is None or not runtime.ready:
            return 0
        listed = runtime.progress.runnable
        return runtime.progress.runnable_count - len([i for i in listed if i in runtime.creating])

    async def place_children(self, record: JobRecord, environment_name: str, count: int) -> None:
        async with self.locks(record.key):
            current = self.store.job(record.key)
            environment = self.store.environment(environment_name)
            runtime = self._runtimes.get(record.key)
            if current is None or current.state != PENDING or environment is None or runtime is None:
                return
            progress = runtime.progress
            if progress is None:
                return
            indices = [i for i in progress.runnable if i not in runtime.creating][:count]
            if not indices:
                return
            runtime.creating.update({i: progress.settled.next_attempt(i) for i in indices})
            if current.status.get("computeEnvironment") != environment_name:
                pinned = await self.status.write(current, {
                    "computeEnvironment": environment_name, "kubernetesJob": manifests.array_job_name(current.name),
                    "startedAt": current.status.get("startedAt") or iso(self.clock())})
                current = pinned or current
            where = self._placement(current, environment)
            resolved = current.resolved
            try:
                job_uid = await self._job_uid(current, runtime, resolved, where)
            except Exception:
                for index in indices:
                    runtime.creating.pop(index, None)
                raise
        await asyncio.gather(*[self._create_child(current, runtime, resolved, where, job_uid, i,
                                                  progress.settled.next_attempt(i)) for i in indices])

    def _placement(self, record: JobRecord, environment: EnvironmentRecord) -> manifests.Placement:
        return placement(record, environment, self.settings.kubernetes_job_ttl_seconds, rules.array_size(record))

    async def _job_uid(self, record: JobRecord, runtime: ArrayRuntime, resolved: Resolved,
                       where: manifests.Placement) -> str:
        if runtime.job_uid:
            return runtime.job_uid
        name = manifests.array_job_name(record.name)
        known = next((j for j in self.store.kube_jobs(record.uid) if j.name == name and j.uid), None)
        if known is not None:
            runtime.job_uid = known.uid
        else:
            body = await self.kube.create_job_returning(manifests.array_job(resolved, where))
            runtime.job_uid = str(body["metadata"]["uid"])
        return runtime.job_uid

    async def _create_child(self, record: JobRecord, runtime: ArrayRuntime, resolved: Resolved,
                            where: manifests.Placement, job_uid: str, index: int, attempt: int) -> None:
        pod = manifests.array_child_pod(resolved, where, manifests.array_job_name(record.name), job_uid,
                                        index, attempt)
        try:
            await self.kube.create_pod(pod)
        except Exception as exc:  # the child stays runnable and is placed again
            log.warning("creating child %s of %s failed: %s", index, record.key, exc)
            runtime.creating.pop(index, None)
            self.router.kick()
