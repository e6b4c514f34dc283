"""Array jobs and dependencies in the controller: read state, call the pure core, write the result.

An array's children are pods that Barge creates itself, one per child attempt, under one Kubernetes
Job (spec.managedBy: barge.dev/operator). Settled children live in the parent's status as ranges;
children in flight are read from their pods; `arrays.progress` derives the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from barge.controller.records import JobKey, JobRecord, now_iso, parse_time
from barge.core import arrays, dependencies, jobspec, lifecycle
from barge.core.resources import Resources

if TYPE_CHECKING:
    from barge.controller.controller import Controller

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


def array_size(record: JobRecord) -> int | None:
    size = (record.spec.get("arrayProperties") or {}).get("size")
    return int(size) if size else None


class DependencyMixin:
    """What a job waits for. Mixed into Controller."""

    def _state_of(self: Controller, namespace: str, name: str) -> str | None:
        record = self.store.job((namespace, name))
        if record is None:
            return None
        return record.state or "SUBMITTED"

    def _child_state_of(self: Controller, namespace: str, name: str, index: int) -> str | None:
        record = self.store.job((namespace, name))
        if record is None:
            return None
        if array_size(record) is None:
            return record.state or "SUBMITTED"
        cache_key = (namespace, name, record.resource_version)
        settled = self._settled_cache.get(cache_key)
        if settled is None:
            settled = arrays.Settled.from_status(record.status.get("arrayProperties") or {})
            if len(self._settled_cache) > 256:
                self._settled_cache.clear()
            self._settled_cache[cache_key] = settled
        if index in settled.succeeded:
            return "SUCCEEDED"
        if index in settled.failed:
            return "FAILED"
        return "RUNNING"

    def _dependency_edges(self: Controller, namespace: str, name: str) -> list[str]:
        record = self.store.job((namespace, name))
        if record is None:
            return []
        return [str(d["jobName"]) for d in record.spec.get("dependsOn") or [] if d.get("jobName")]

    def dependency_verdict(self: Controller, record: JobRecord) -> dependencies.Verdict:
        deps = record.spec.get("dependsOn") or []
        if not deps:
            return dependencies.Verdict(True)
        cycle = dependencies.find_cycle(record.name, lambda n: self._dependency_edges(record.namespace, n))
        if cycle:
            return dependencies.Verdict(False, failure=dependencies.cycle_reason(cycle))
        return dependencies.job_level(deps, lambda n: self._state_of(record.namespace, n))

    def notify_dependents(self: Controller, record: JobRecord) -> None:
        for key in self.store.dependents(record.key):
            self.request_reconcile(key)

    async def _reconcile_pending(self: Controller, record: JobRecord) -> None:
        verdict = self.dependency_verdict(record)
        if verdict.failure:
            await self._write(record, self._fail_patch(verdict.failure))
        elif verdict.ready:
            await self._write(record, {"state": "RUNNABLE", "queuedAt": time.time(),
                                       "statusReason": f"Dependencies met; waiting in job queue '{record.queue}'"})
            self.kick()
        else:
            reason = f"Waiting for {verdict.waiting_on}"
            if record.status.get("statusReason") != reason:
                await self._write(record, {"statusReason": reason})


class ArrayMixin:
    """Arrays: admission of children into free capacity, their pods, and the parent's status."""

    def _runtime(self: Controller, key: JobKey) -> ArrayRuntime:
        runtime = self.arrays.get(key)
        if runtime is None:
            runtime = self.arrays[key] = ArrayRuntime()
        return runtime

    def _array_pods(self: Controller, record: JobRecord) -> list[lifecycle.PodObservation]:
        return [p for p in self.store.pods(record.uid) if p.index is not None]

    def _array_progress(self: Controller, record: JobRecord, runtime: ArrayRuntime,
                        verdict: dependencies.Verdict) -> arrays.Progress:
        size = array_size(record) or 0
        pods = self._array_pods(record)
        self._forget_created(runtime, pods)
        deps = list(record.spec.get("dependsOn") or [])
        stopped = record.spec.get("cancel") is not None or record.spec.get("terminate") is not None
        gate: arrays.ChildGate | None = None
        if stopped or not verdict.ready:
            gate = arrays.ALL_WAIT
        elif any(d.get("type") in ("N_TO_N", "SEQUENTIAL") for d in deps):
            gate = arrays.child_gate(deps, arrays.Settled.from_status(record.status.get("arrayProperties") or {}),
                                     lambda n, i: self._child_state_of(record.namespace, n, i))

        resolved = record.status.get("resolved") or {}
        return arrays.progress(
            size, record.status.get("arrayProperties") or {}, pods, resolved.get("retryStrategy") or {},
            resolved.get("timeoutSeconds"), gate, set(runtime.creating), now_iso(), self.clock(), parse_time,
            no_retry=stopped,
        )

    async def _reconcile_array(self: Controller, record: JobRecord) -> None:
        runtime = self._runtime(record.key)
        verdict = self.dependency_verdict(record)
        if verdict.failure:
            await self._finish_array(record, runtime, verdict.failure, failed_children_reason=verdict.failure)
            return
        runtime.ready = verdict.ready and record.spec.get("cancel") is None
        progress = self._array_progress(record, runtime, verdict)
        if progress.changed and self._has_sequential(record):
            # a settled child can release its successor: derive again from the new settled set
            record.status["arrayProperties"] = arrays.array_status(array_size(record) or 0, progress)
            progress = self._array_progress(record, runtime, verdict)
        runtime.progress = progress
        now = now_iso()
        for index in progress.to_stop:
            arrays.fail_child(progress.settled, index, lifecycle.TIMEOUT_REASON, now, progress.active.get(index))
        cancel = record.spec.get("cancel")
        if cancel is not None and not progress.active and not runtime.creating:
            reason = cancel.get("reason") or "Cancelled by user"
            await self._finish_array(record, runtime, reason, failed_children_reason=reason, flag="isCancelled")
            return
        size = array_size(record) or 0
        # The outcome is written before timed-out pods are stopped, so a restart in between
        # cannot run those children again.
        if len(progress.settled.succeeded) + len(progress.settled.failed) >= size:
            await self._finish_array(record, runtime, None)
        else:
            await self._write_array(record, runtime, progress, verdict, force=bool(progress.to_stop))
        for index in progress.to_stop:
            pod = progress.active.get(index)
            if pod is not None:
                await self.kube.delete_pod(record.namespace, pod.name)
        if progress.runnable and runtime.ready:
            self.kick()

    @staticmethod
    def _has_sequential(record: JobRecord) -> bool:
        return any(d.get("type") == "SEQUENTIAL" for d in record.spec.get("dependsOn") or [])

    def _array_reason(self: Controller, record: JobRecord, progress: arrays.Progress,
                      verdict: dependencies.Verdict) -> str:
        if not verdict.ready:
            return f"Waiting for {verdict.waiting_on}"
        counts = arrays.summary(array_size(record) or 0, progress)
        parts = [f"{counts[s]} {s}" for s in arrays.STATES if counts[s]]
        return "Children: " + ", ".join(parts)

    async def _write_array(self: Controller, record: JobRecord, runtime: ArrayRuntime, progress: arrays.Progress,
                           verdict: dependencies.Verdict, force: bool = False) -> None:
        size = array_size(record) or 0
        status = arrays.array_status(size, progress)
        reason = self._array_reason(record, progress, verdict)
        previous = record.status.get("arrayProperties") or {}
        if status == previous and record.status.get("statusReason") == reason:
            return
        wait = WRITE_INTERVAL - (time.monotonic() - runtime.last_write)
        if wait > 0 and not force:
            if not runtime.flush_pending:
                runtime.flush_pending = True
                asyncio.get_running_loop().call_later(wait, self._flush_array, record.key)
            return
        runtime.last_write = time.monotonic()
        done = len(progress.settled.succeeded) + len(progress.settled.failed)
        updated = await self._write(record, {"arrayProperties": status, "statusReason": reason,
                                             "arrayProgress": f"{done}/{size}"})
        if updated is not None:
            self.notify_dependents(updated)

    def _flush_array(self: Controller, key: JobKey) -> None:
        runtime = self.arrays.get(key)
        if runtime is not None:
            runtime.flush_pending = False
            self.request_reconcile(key)

    async def _finish_array(self: Controller, record: JobRecord, runtime: ArrayRuntime, reason: str | None,
                            failed_children_reason: str | None = None, flag: str | None = None) -> None:
        size = array_size(record) or 0
        progress = runtime.progress or self._array_progress(record, runtime, dependencies.Verdict(False))
        settled = progress.settled
        if failed_children_reason:
            now = now_iso()
            for index in range(size):
                if not settled.done(index) and index not in progress.active:
                    arrays.fail_child(settled, index, failed_children_reason, now)
        failed = len(settled.failed)
        state = "FAILED" if failed or flag else "SUCCEEDED"
        if reason is None:
            reason = (f"All {size} children succeeded" if not failed else
                      f"{failed} of {size} children failed (indices {arrays.format_ranges(settled.failed)})")
        patch: dict[str, Any] = {"state": state, "statusReason": reason, "stoppedAt": now_iso(),
                                 "arrayProperties": arrays.array_status(size, progress),
                                 "arrayProgress": f"{len(settled.succeeded) + failed}/{size}"}
        if flag:
            patch[flag] = True
        await self._write(record, patch)
        self.arrays.pop(record.key, None)
        self.kick()

    async def _terminate_array(self: Controller, record: JobRecord, reason: str) -> None:
        await self.kube.delete_job(record.namespace, jobspec.array_job_name(record.name))
        runtime = self._runtime(record.key)
        runtime.progress = self._array_progress(record, runtime, dependencies.Verdict(True))
        now = now_iso()
        for index, pod in runtime.progress.active.items():
            arrays.fail_child(runtime.progress.settled, index, reason, now, pod)
        runtime.progress.active.clear()
        await self._finish_array(record, runtime, reason, failed_children_reason=reason, flag="isTerminated")

    # --- scheduling ----------------------------------------------------------------------

    @staticmethod
    def _forget_created(runtime: ArrayRuntime, pods: list[lifecycle.PodObservation]) -> None:
        """A child whose pod has been seen is no longer being created."""
        for pod in pods:
            if pod.index is not None and runtime.creating.get(pod.index) == pod.attempt:
                del runtime.creating[pod.index]

    def array_usage(self: Controller, record: JobRecord) -> tuple[str | None, Resources]:
        runtime = self.arrays.get(record.key)
        pods = self._array_pods(record)
        active = {p.index for p in pods if p.active}
        if runtime is not None:
            # A child whose pod exists is counted by its pod, so one that has already finished frees
            # its capacity now, not at the array's next look. `creating` itself is cleared only by
            # that look, which also recomputes the runnable list: clearing it here would let a
            # stale list offer the same child again.
            seen = {(p.index, p.attempt) for p in pods}
            active |= {index for index, attempt in runtime.creating.items() if (index, attempt) not in seen}
        return record.status.get("computeEnvironment"), record.request.times(len(active))

    def array_wants(self: Controller, record: JobRecord) -> int:
        runtime = self.arrays.get(record.key)
        if runtime is None or runtime.progress is None or not runtime.ready:
            return 0
        listed = runtime.progress.runnable
        return runtime.progress.runnable_count - len([i for i in listed if i in runtime.creating])

    async def place_children(self: Controller, record: JobRecord, environment_name: str, count: int) -> None:
        async with self._lock(record.key):
            current = self.store.job(record.key)
            environment = self.store.environment(environment_name)
            runtime = self.arrays.get(record.key)
            if current is None or current.state != "PENDING" or environment is None or runtime is None:
                return
            progress = runtime.progress
            if progress is None:
                return
            indices = [i for i in progress.runnable if i not in runtime.creating][:count]
            if not indices:
                return
            runtime.creating.update({i: progress.settled.next_attempt(i) for i in indices})
            if current.status.get("computeEnvironment") != environment_name:
                pinned = await self._write(current, {"computeEnvironment": environment_name,
                                                     "kubernetesJob": jobspec.array_job_name(current.name),
                                                     "startedAt": current.status.get("startedAt") or now_iso()})
                current = pinned or current
            placement = self._placement(current, environment, array_size(current))
            resolved = self._resolved(current)
            try:
                job_uid = await self._array_job_uid(current, runtime, resolved, placement)
            except Exception:
                for index in indices:
                    runtime.creating.pop(index, None)
                raise
        await asyncio.gather(*[self._create_child(current, runtime, resolved, placement, job_uid, i,
                                                  progress.settled.next_attempt(i)) for i in indices])

    async def _array_job_uid(self: Controller, record: JobRecord, runtime: ArrayRuntime,
                             resolved: jobspec.Resolved, placement: jobspec.Placement) -> str:
        if runtime.job_uid:
            return runtime.job_uid
        name = jobspec.array_job_name(record.name)
        known = next((j for j in self.store.kube_jobs(record.uid) if j.name == name and j.uid), None)
        if known is not None:
            runtime.job_uid = known.uid
        else:
            body = await self.kube.create_job_returning(jobspec.array_job(resolved, placement))
            runtime.job_uid = str(body["metadata"]["uid"])
        return runtime.job_uid

    async def _create_child(self: Controller, record: JobRecord, runtime: ArrayRuntime, resolved: jobspec.Resolved,
                            placement: jobspec.Placement, job_uid: str, index: int, attempt: int) -> None:
        pod = jobspec.array_child_pod(resolved, placement, jobspec.array_job_name(record.name), job_uid,
                                      index, attempt)
        try:
            await self.kube.create_pod(pod)
        except Exception as exc:  # the child stays runnable and is placed again
            log.warning("creating child %s of %s failed: %s", index, record.key, exc)
            runtime.creating.pop(index, None)
            self.kick()
