"""The operator's behaviour: admit jobs, run scheduling passes, follow attempts to their end.

Level-based: every action is derived from the observed state (indexes + our own recent writes),
so a restart at any point converges. Kubernetes Jobs get deterministic names, so nothing is
created twice. Each job is handled under its own lock; the scheduling pass is sequential.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from barge import metrics
from barge.config import Settings
from barge.controller.arrays import ArrayMixin, ArrayRuntime, DependencyMixin, array_size
from barge.controller.informer import Informer
from barge.controller.records import JobKey, JobRecord, now_iso, parse_time
from barge.controller.store import Store
from barge.core import jobspec, lifecycle
from barge.core.jobspec import ARRAY_INDEX_LABEL, JOB_ID_LABEL
from barge.core.resources import Resources, format_bytes, format_cpu
from barge.core.scheduler import Runnable, Snapshot, Waiting, schedule
from barge.kube import SMALL_KINDS, Kube

log = logging.getLogger("barge.controller")
TERMINAL = lifecycle.TERMINAL
ACTIVE = lifecycle.ACTIVE
REFERENCE_GRACE_SECONDS = 10
IDLE_PASS_SECONDS = 2.0
IDLE_PASS_COST_FACTOR = 20  # a pass nothing asked for costs at most 1/20 of the time
ARRAY_COALESCE_SECONDS = 0.25  # how long an array's pod events gather before one look at the array
STATE_EVENT_REASONS = {"SUBMITTED": "Submitted", "PENDING": "Pending", "RUNNABLE": "Runnable",
                       "STARTING": "Starting", "RUNNING": "Running", "SUCCEEDED": "Succeeded", "FAILED": "Failed"}


def _label(body: dict[str, Any], name: str) -> str | None:
    return ((body.get("metadata") or {}).get("labels") or {}).get(name)


def _finished_array_child(pod: dict[str, Any]) -> bool:
    return _label(pod, ARRAY_INDEX_LABEL) is not None and (pod.get("status") or {}).get("phase") in (
        "Succeeded", "Failed")


class KeyedLocks:
    """One lock per job, kept only while it is held or awaited: 100,000 waiting jobs would otherwise
    keep 100,000 locks."""

    def __init__(self) -> None:
        self._held: dict[JobKey, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def __call__(self, key: JobKey) -> AsyncIterator[None]:
        lock, users = self._held.get(key) or (asyncio.Lock(), 0)
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)


# Answers to a Job create that are about the Job itself (invalid, forbidden, namespace gone): the job fails.
REFUSALS = (400, 403, 404, 422)


def _key_string(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}"


def _key_tuple(key: str) -> JobKey:
    namespace, _, name = key.partition("/")
    return (namespace, name)


def _condition(
    state: str, reason: str, generation: int, now: str, previous: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One `Finished` condition: True with the outcome, False with the current state."""
    finished = state in TERMINAL
    condition_reason = STATE_EVENT_REASONS.get(state, "Unknown")
    old = next((c for c in previous if c.get("type") == "Finished"), None)
    status = "True" if finished else "False"
    changed = old is None or old.get("status") != status
    return [{"type": "Finished", "status": status, "reason": condition_reason, "message": reason[:1024],
             "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),  # type: ignore[union-attr]
             "observedGeneration": generation}]


class Controller(DependencyMixin, ArrayMixin):
    def __init__(self, settings: Settings, kube: Kube, clock: Any = time.time) -> None:
        self.settings = settings
        self.kube = kube
        self.clock = clock
        self.store = Store()
        self._lock = KeyedLocks()
        self._wake = asyncio.Event()
        self._created_jobs: set[str] = set()
        self._reason_written_at: dict[JobKey, float] = {}
        self._status_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.arrays: dict[JobKey, ArrayRuntime] = {}
        # Admitted jobs not yet written: the next pass writes admission and placement as one patch.
        self._admitted: dict[JobKey, dict[str, Any]] = {}
        # Placed jobs whose STARTING is not written yet, with when they were placed. Dispatch creates
        # the Kubernetes Job first; the status follows with the pod's first report, or once
        # placement_report_seconds have passed. A restart recovers the placement from the Job.
        self._placed: dict[JobKey, tuple[float, dict[str, Any]]] = {}
        self._settled_cache: dict[tuple[str, str, int], Any] = {}
        self._array_reconcile_scheduled: set[JobKey] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconcile_requested: set[JobKey] = set()
        self._runnables: dict[JobKey, Runnable] = {}
        self._requests: dict[Resources, Resources] = {}
        self._last_pass = (0.0, 0.0)  # when the last scheduling pass ended (monotonic), and what it took
        self._reasons_left = False  # the last pass had more reasons to write than its budget
        self.informer = Informer(kube, settings.namespaces, self.on_event, self.on_relist)

    # --- plumbing -------------------------------------------------------------------------

    async def initial_list(self) -> None:
        """Everything Barge created, listed once before anything is reconciled or scheduled, so a
        restart counts the quota in full; watches resumed from each list keep it current."""
        while True:
            try:
                versions = {what: await self.informer.list_into(what, remember) for what, remember in (
                    ("batchjobs", self.store.remember), ("jobs", self.store.remember_kube_job),
                    ("pods", self.store.remember_pod))}
                break
            except Exception:
                log.exception("listing BatchJobs, Jobs and pods failed; retrying")
                await asyncio.sleep(2)
        for what, at in versions.items():
            self.informer.follow(what, at)
        await self._await_small_kinds()
        self.store.listed.set()
        self.kick()
        for record in self.store.jobs():
            if record.state not in TERMINAL:
                self.request_reconcile(record.key)

    async def _await_small_kinds(self) -> None:
        """Reconciling needs the compute environments, queues and definitions, which kopf indexes from
        watches of its own: without them a job would look as if its queue were gone. Wait until the
        indexes hold every one that a list of ours finds (one deleted meanwhile drops out of the next list)."""
        while True:
            try:
                namespaces = self.settings.namespaces
                missing = [(what, key) for what in SMALL_KINDS for key in await self.kube.keys(what, namespaces)
                           if not self.store.indexed(what, key)]
                if not missing:
                    return
                log.debug("waiting for kopf to index %s", missing[:3])
            except Exception:
                log.exception("listing compute environments, queues and definitions failed; retrying")
            await asyncio.sleep(0.2)

    # --- watch events of BatchJobs, their Jobs and pods (from the informer) ------------------

    def on_event(self, what: str, kind: str, body: dict[str, Any]) -> None:
        deleted = kind == "DELETED"
        if what == "batchjobs":
            metadata = body.get("metadata") or {}
            key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            if deleted:
                self.forget(key)
            else:
                # Also the echo of Barge's own write: some steps (an array's first children) follow it.
                self.store.remember(body)
                self.request_reconcile(key)
            return
        remember = self.store.remember_pod if what == "pods" else self.store.remember_kube_job
        job_id = remember(body, deleted=deleted)
        if what == "pods" and _finished_array_child(body):
            self.kick()  # its capacity is free now: the next pass may place another child there
        owner = self.store.job_key_by_uid(job_id or "")
        if owner is not None:
            self.owned_changed(owner)

    def on_relist(self, what: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A watch expired and its kind was listed again: what is gone is forgotten, the rest is
        handled as if just modified."""
        if what == "batchjobs":
            listed_jobs = {((b.get("metadata") or {}).get("namespace"), (b.get("metadata") or {}).get("name"))
                           for b in items}
            for record in self.store.jobs():
                if (namespace is None or record.namespace == namespace) and record.key not in listed_jobs:
                    self.forget(record.key)
        else:
            listed = {(_label(b, JOB_ID_LABEL), (b.get("metadata") or {}).get("name")) for b in items}
            for job_id, name in self.store.owned_names(what, namespace) - listed:
                self.store.forget_owned(what, job_id, name)
                key = self.store.job_key_by_uid(job_id)
                if key is not None:
                    self.owned_changed(key)
        for body in items:
            self.on_event(what, "MODIFIED", body)

    def request_reconcile(self, key: JobKey) -> None:
        """Reconcile soon; requests for one job that arrive before its reconcile starts share it."""
        if key not in self._reconcile_requested:
            self._reconcile_requested.add(key)
            self._spawn(self._requested_reconcile(key))

    async def _requested_reconcile(self, key: JobKey) -> None:
        self._reconcile_requested.discard(key)
        try:
            await self.reconcile_job(key)
        except Exception:
            log.exception("reconciling %s/%s failed", *key)

    def kick(self) -> None:
        self._wake.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, key: JobKey) -> None:
        self.store.forget(key)
        self._reason_written_at.pop(key, None)
        self.arrays.pop(key, None)
        self._admitted.pop(key, None)
        self._placed.pop(key, None)
        self.kick()

    def _event(self, record: JobRecord, state: str, message: str) -> None:
        if not self.settings.events:
            return
        kind = "Warning" if state == "FAILED" else "Normal"
        self.kube.post_event(record.reference(), kind, STATE_EVENT_REASONS.get(state, state), message)

    async def _write(self, record: JobRecord, patch: dict[str, Any]) -> JobRecord | None:
        """Patch a job's status, with its placement if that is not written yet; emit an Event on a
        state change; remember the result."""
        placed = self._placed.pop(record.key, None)
        if placed is not None:
            patch = {**placed[1], **patch}
        try:
            return await self._write_status(record, patch)
        except BaseException:
            if placed is not None:
                self._placed.setdefault(record.key, placed)
            raise

    async def _write_status(self, record: JobRecord, patch: dict[str, Any]) -> JobRecord | None:
        new_state = patch.get("state")
        if new_state:
            now = now_iso()
            patch.setdefault("observedGeneration", record.generation)
            patch["conditions"] = _condition(new_state, patch.get("statusReason", ""), record.generation, now,
                                             record.status.get("conditions") or [])
        body = await self.kube.patch_status("BatchJob", record.name, patch, record.namespace)
        if body is None:
            self.forget(record.key)
            return None
        updated = self.store.remember(body)
        if new_state and new_state != record.state:
            self._announce(record, new_state, patch)
            if new_state in TERMINAL:
                self.notify_dependents(updated)
                for attempt in range(1, record.attempt + 1):
                    self._created_jobs.discard(
                        f"{record.namespace}/{jobspec.kubernetes_job_name(record.name, attempt)}")
        return updated

    def _announce(self, record: JobRecord, new_state: str, patch: dict[str, Any]) -> None:
        """Metrics and an Event for a state change."""
        self._count_transition(record, new_state)
        message = patch.get("statusReason", "")
        if record.state == "RUNNABLE" and new_state == "STARTING" and "queuedAt" in patch:
            message = f"Admitted to job queue '{record.queue}' (RUNNABLE) and {message[0].lower()}{message[1:]}"
        self._event(record, new_state, message)

    def _count_transition(self, record: JobRecord, state: str) -> None:
        queue = record.queue
        if record.state is None and state != "FAILED":
            metrics.SUBMITTED.labels(queue).inc()
        elif state == "SUCCEEDED":
            metrics.SUCCEEDED.labels(queue).inc()
        elif state == "FAILED":
            metrics.FAILED.labels(queue).inc()
        elif state == "RUNNING":
            created = parse_time(record.status.get("createdAt"))
            if created is not None:
                metrics.WAIT_SECONDS.labels(queue).observe(max(0.0, self.clock() - created))

    # --- one job --------------------------------------------------------------------------

    def owned_changed(self, key: JobKey) -> None:
        """A pod or Kubernetes Job of this BatchJob changed. An array's children report by the
        hundred per second and each look at an array costs time in its size, so one look every
        ARRAY_COALESCE_SECONDS serves them all; any other job is reconciled at once."""
        record = self.store.job(key)
        if record is None or array_size(record) is None or record.state != "PENDING":
            self.request_reconcile(key)
            return
        if key not in self._array_reconcile_scheduled:
            self._array_reconcile_scheduled.add(key)
            asyncio.get_running_loop().call_later(ARRAY_COALESCE_SECONDS, self._reconcile_coalesced, key)

    def _reconcile_coalesced(self, key: JobKey) -> None:
        self._array_reconcile_scheduled.discard(key)
        self.request_reconcile(key)

    async def reconcile_job(self, key: JobKey) -> None:
        await self.store.listed.wait()
        async with self._lock(key):
            record = self.store.job(key)
            if record is None or record.state in TERMINAL:
                return
            record = self._with_placement(record)
            is_array = array_size(record) is not None
            admitted = record.state not in (None, "SUBMITTED")
            stopping = record.spec.get("terminate") is not None or record.spec.get("cancel") is not None
            if not admitted and record.key in self._admitted:
                if not stopping:
                    return  # the next scheduling pass writes it
                del self._admitted[record.key]
            if record.spec.get("terminate") is not None:
                reason = record.spec["terminate"].get("reason") or "Terminated by user"
                await (self._terminate_array(record, reason) if is_array and admitted else self._terminate(record))
            elif record.spec.get("cancel") is not None and record.state not in ACTIVE and not (is_array and admitted):
                await self._finish_without_running(record, "isCancelled", record.spec["cancel"].get("reason")
                                                   or "Cancelled by user")
            elif not admitted:
                await self._admit(record)
            elif is_array:
                await self._reconcile_array(record)
            elif record.state == "PENDING":
                await self._reconcile_pending(record)
            elif record.state in ACTIVE:
                await self._follow_attempt(record)

    def _fail_patch(self, reason: str, **flags: bool) -> dict[str, Any]:
        return {"state": "FAILED", "statusReason": reason, "stoppedAt": now_iso(), **flags}

    async def _finish_without_running(self, record: JobRecord, flag: str, reason: str) -> None:
        await self._write(record, self._fail_patch(reason, **{flag: True}))
        self.kick()

    async def _admit(self, record: JobRecord) -> None:
        base = {"jobId": record.uid, "createdAt": record.status.get("createdAt") or now_iso(),
                "jobQueue": record.queue, "attemptCount": 0, "currentAttempt": 1}
        problem = self._admission_problem(record)
        if problem and "does not exist" in problem and self._young(record):
            # Watches of different kinds are not ordered: a queue or definition applied together
            # with the job may reach us just after it. Look again shortly before failing the job.
            asyncio.get_running_loop().call_later(0.5, self._spawn_reconcile, record.key)
            return
        if problem:
            await self._write(record, {**base, **self._fail_patch(problem)})
            return
        definition = self.store.definition(record.namespace, str(record.spec.get("jobDefinition")))
        assert definition is not None
        try:
            resolved = jobspec.resolve(definition, record.spec)
        except jobspec.SpecError as exc:
            await self._write(record, {**base, **self._fail_patch(f"Invalid job: {exc}")})
            return
        request = resolved.request
        size = array_size(record)
        waits = bool(size or record.spec.get("dependsOn"))
        patch = {
            **base, "state": "PENDING" if waits else "RUNNABLE", "queuedAt": time.time(),
            "statusReason": "Checking dependencies" if record.spec.get("dependsOn") else
            f"Waiting in job queue '{record.queue}' for a scheduling pass",
            "resolved": {"template": resolved.template, "retryStrategy": resolved.retry_strategy,
                         "timeoutSeconds": resolved.timeout_seconds, "labels": resolved.labels,
                         "request": {"cpuMilli": request.cpu_milli, "memory": request.memory,
                                     "gpus": request.gpus}},
        }
        if size:
            patch["arrayProgress"] = f"0/{size}"
            patch["arrayProperties"] = {"size": size, "statusSummary": {
                s: (size if s == "PENDING" else 0) for s in STATE_EVENT_REASONS}}
        if not waits:
            self._admitted[record.key] = patch
            self.kick()
            return
        await self._write(record, patch)
        self.kick()

    def _young(self, record: JobRecord) -> bool:
        created = parse_time(record.created)
        return created is not None and self.clock() - created < REFERENCE_GRACE_SECONDS

    def _spawn_reconcile(self, key: JobKey) -> None:
        self.request_reconcile(key)

    def _admission_problem(self, record: JobRecord) -> str | None:
        queue = self.store.queue(record.queue)
        if queue is None:
            known = ", ".join(sorted(q.name for q in self.store.queues())) or "none"
            return f"Job queue '{record.queue}' does not exist (job queues: {known})"
        if not queue.enabled:
            return f"Job queue '{record.queue}' is DISABLED and accepts no new jobs"
        definition = str(record.spec.get("jobDefinition"))
        if self.store.definition(record.namespace, definition) is None:
            return f"Job definition '{definition}' does not exist in namespace '{record.namespace}'"
        return None

    async def _terminate(self, record: JobRecord) -> None:
        reason = record.spec["terminate"].get("reason") or "Terminated by user"
        patch = self._fail_patch(reason, isTerminated=True)
        if record.state in ACTIVE:
            name = record.status.get("kubernetesJob") or jobspec.kubernetes_job_name(record.name, record.attempt)
            await self.kube.delete_job(record.namespace, name)
            patch["attempts"] = [*self._attempts(record), self._stopped_attempt(record, reason)]
            patch["attemptCount"] = len(patch["attempts"])
        await self._write(record, patch)
        self.kick()

    def _attempts(self, record: JobRecord) -> list[dict[str, Any]]:
        return list(record.status.get("attempts") or [])

    def _stopped_attempt(self, record: JobRecord, reason: str) -> dict[str, Any]:
        pod = self._current_pod(record)
        attempt = {"statusReason": reason, "stoppedAt": now_iso()}
        if pod is not None:
            attempt |= {k: v for k, v in {"podName": pod.name, "nodeName": pod.node,
                                          "startedAt": pod.running_since}.items() if v}
        return attempt

    def _current_pod(self, record: JobRecord) -> lifecycle.PodObservation | None:
        pods = [p for p in self.store.pods(record.uid) if p.attempt == record.attempt]
        terminated = [p for p in pods if p.terminated]
        candidates = terminated or pods
        return candidates[-1] if candidates else None

    async def _follow_attempt(self, record: JobRecord) -> None:
        attempt = record.attempt
        kube_job = next((j for j in self.store.kube_jobs(record.uid) if j.attempt == attempt), None)
        pod = self._current_pod(record)
        if kube_job is None and pod is None:
            await self._ensure_kube_job(record)
            return
        timeout = self._timed_out(record)
        if timeout:
            await self._time_out(record)
            return
        resolved = record.status.get("resolved") or {}
        no_retry = record.spec.get("cancel") is not None
        outcome = lifecycle.advance(record.state or "", attempt, resolved.get("retryStrategy") or {}, pod,
                                    kube_job, now_iso(), no_more_retries=no_retry)
        if outcome is not None:
            await self._apply_outcome(record, outcome)
        elif pod is not None and pod.unschedulable and record.state == "STARTING":
            reason = f"Pod cannot be scheduled: {pod.unschedulable}"[:1024]
            if record.status.get("statusReason") != reason:
                await self._write(record, {"statusReason": reason})

    def _timed_out(self, record: JobRecord) -> bool:
        seconds = (record.status.get("resolved") or {}).get("timeoutSeconds")
        started = parse_time(record.status.get("attemptStartedAt"))
        return bool(seconds and started and record.state == "RUNNING" and self.clock() - started >= seconds)

    async def _time_out(self, record: JobRecord) -> None:
        name = record.status.get("kubernetesJob") or jobspec.kubernetes_job_name(record.name, record.attempt)
        await self.kube.delete_job(record.namespace, name)
        reason = lifecycle.TIMEOUT_REASON
        attempts = [*self._attempts(record), self._stopped_attempt(record, reason)]
        await self._write(record, {**self._fail_patch(reason), "attempts": attempts, "attemptCount": len(attempts)})
        self.kick()

    async def _apply_outcome(self, record: JobRecord, outcome: lifecycle.Outcome) -> None:
        patch: dict[str, Any] = {"state": outcome.state, "statusReason": outcome.status_reason}
        if outcome.state == "RUNNING":
            patch["attemptStartedAt"] = outcome.started_at or now_iso()
            if not record.status.get("startedAt"):
                patch["startedAt"] = patch["attemptStartedAt"]
        if outcome.attempt is not None:
            attempts = [*self._attempts(record), outcome.attempt]
            patch |= {"attempts": attempts, "attemptCount": len(attempts)}
        if outcome.retry:
            metrics.RETRIED.labels(record.queue).inc()
            patch |= {"currentAttempt": record.attempt + 1, "computeEnvironment": None,
                      "statusReason": f"Attempt {record.attempt} failed ({outcome.status_reason}"
                      f"{self._exit_code_text(outcome)}); waiting to retry"}
        if outcome.state in TERMINAL:
            patch["stoppedAt"] = outcome.stopped_at or now_iso()
            if not record.status.get("startedAt") and outcome.started_at:
                patch["startedAt"] = outcome.started_at
        await self._write(record, patch)
        if outcome.state != "RUNNING":
            self.kick()

    @staticmethod
    def _exit_code_text(outcome: lifecycle.Outcome) -> str:
        code = (outcome.attempt or {}).get("exitCode")
        return f", exit code {code}" if code is not None else ""

    async def _ensure_kube_job(self, record: JobRecord) -> None:
        """STARTING without a Kubernetes Job: create it (after a restart between our two writes)."""
        name = record.status.get("kubernetesJob") or jobspec.kubernetes_job_name(record.name, record.attempt)
        if f"{record.namespace}/{name}" in self._created_jobs:
            return
        environment = self.store.environment(str(record.status.get("computeEnvironment")))
        if environment is None:
            await self._write(record, self._fail_patch(
                f"Compute environment '{record.status.get('computeEnvironment')}' was deleted before the job started"))
            return
        await self._create_kube_job(record, environment)

    def _placement(self, record: JobRecord, environment: Any, size: int | None = None) -> jobspec.Placement:
        resources = environment.spec.get("computeResources") or {}
        return jobspec.Placement(
            namespace=record.namespace, batchjob=record.name, job_id=record.uid, attempt=record.attempt,
            queue=record.queue, environment=environment.name,
            node_selector=dict(resources.get("nodeSelector") or {}),
            tolerations=list(resources.get("tolerations") or []), affinity=resources.get("affinity"),
            ttl_seconds_after_finished=self.settings.kubernetes_job_ttl_seconds, array_size=size,
        )

    @staticmethod
    def _resolved(record: JobRecord) -> jobspec.Resolved:
        resolved = record.status.get("resolved") or {}
        return jobspec.Resolved(resolved.get("template") or {}, record.request, resolved.get("retryStrategy") or {},
                                resolved.get("timeoutSeconds"), resolved.get("labels") or {})

    async def _create_kube_job(self, record: JobRecord, environment: Any) -> None:
        manifest = jobspec.kubernetes_job(self._resolved(record), self._placement(record, environment))
        guard = f"{record.namespace}/{manifest['metadata']['name']}"
        self._created_jobs.add(guard)
        try:
            await self.kube.create_job(manifest)
        except Exception as exc:
            if getattr(exc, "status", None) in REFUSALS:
                log.warning("creating the Kubernetes Job of %s failed: %s", record.key, exc)
                reason = f"Kubernetes refused the Job: {getattr(exc, 'reason', '')} {getattr(exc, 'body', exc)}"
                await self._write(record, self._fail_patch(reason[:1024]))
                return
            # A timeout or a busy apiserver says nothing about the job: try again shortly.
            log.warning("creating the Kubernetes Job of %s failed, retrying: %s", record.key, exc)
            self._created_jobs.discard(guard)
            asyncio.get_running_loop().call_later(2.0, self._spawn_reconcile, record.key)

    # --- scheduling -----------------------------------------------------------------------

    async def run_scheduler(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wakeup())
            asked = self._wake.is_set() or self._reasons_left
            self._wake.clear()
            await asyncio.sleep(0.02)  # let a burst of events coalesce into one pass
            if not self.store.ready:
                continue
            try:
                if asked or self._idle_pass_due():
                    started = time.monotonic()
                    await self.scheduling_pass()
                    self._last_pass = (time.monotonic(), time.monotonic() - started)
                await self.sweep()
                await self.flush_placements()
            except Exception:
                log.exception("scheduling pass failed; retrying")
                await asyncio.sleep(1)

    def _idle_pass_due(self) -> bool:
        """A pass nothing asked for (it re-checks time limits and refreshes reasons) runs every
        IDLE_PASS_SECONDS, or less often when passes are expensive: over 100,000 waiting jobs one
        costs about a second, and repeating it every two seconds would keep a core busy for nothing."""
        at, duration = self._last_pass
        return time.monotonic() - at >= max(IDLE_PASS_SECONDS, IDLE_PASS_COST_FACTOR * duration)

    def _next_wakeup(self) -> float:
        if not self._placed:
            return 2.0
        due = min(at for at, _ in self._placed.values()) + self.settings.placement_report_seconds
        return min(2.0, max(0.05, due - self.clock()))

    def snapshot(self, jobs: list[JobRecord]) -> tuple[Snapshot, dict[str, JobRecord]]:
        environments = {r.name: r.to_core() for r in self.store.environments()}
        queues = {r.name: r.to_core() for r in self.store.queues()}
        usage: dict[str, Resources] = {}
        runnable: list[Runnable] = []
        runnables: dict[JobKey, Runnable] = {}
        by_key: dict[str, JobRecord] = {}
        for record in jobs:
            if not self._waits_as_written(record):
                record = self._effective(record)
            state = record.state
            if state == "PENDING" and array_size(record) is not None:
                environment, used = self.array_usage(record)
                if environment and not used.is_zero():
                    usage[environment] = usage.get(environment, Resources()) + used
                wants = self.array_wants(record)
                if wants:
                    key = _key_string(record.key)
                    by_key[key] = record
                    runnable.append(Runnable(key=key, queue=record.queue,
                                             submitted_at=float(record.status.get("queuedAt") or 0),
                                             request=record.request, count=wants, pinned_environment=environment))
            elif state in ACTIVE:
                ce = record.status.get("computeEnvironment")
                if ce:
                    usage[ce] = usage.get(ce, Resources()) + record.request
            elif state == "RUNNABLE" and record.spec.get("cancel") is None and record.spec.get("terminate") is None:
                job = self._runnable(record)
                by_key[job.key] = record
                runnable.append(job)
                runnables[record.key] = job
        self._runnables = runnables  # what left RUNNABLE is dropped
        return Snapshot(environments, queues, usage, runnable), by_key

    def _runnable(self, record: JobRecord) -> Runnable:
        """The scheduler's view of a RUNNABLE job, built once per version of the job: a deep queue
        is mostly the same 100,000 jobs pass after pass."""
        cached = self._runnables.get(record.key)
        if cached is not None and cached.source is record:
            return cached
        waiting = record.status.get("waiting") or {}
        request = record.request
        if len(self._requests) > 4096:
            self._requests.clear()
        request = self._requests.setdefault(request, request)  # equal requests, one object: cheap to compare
        return Runnable(key=_key_string(record.key), queue=record.queue,
                        submitted_at=float(record.status.get("queuedAt") or 0), request=request,
                        blocked_category=waiting.get("category"), blocked_since=waiting.get("since"),
                        reason=record.status.get("statusReason"), source=record)

    async def scheduling_pass(self) -> None:
        jobs = list(self.store.jobs())
        snapshot, by_key = self.snapshot(jobs)
        started = time.perf_counter()
        decisions = schedule(snapshot, self.clock())
        metrics.CYCLE_SECONDS.observe(time.perf_counter() - started)
        work = [self._place(by_key[p.key], p.environment) if array_size(by_key[p.key]) is None
                else self.place_children(by_key[p.key], p.environment, p.count) for p in decisions.placements]
        work += [self._cancel_by_rule(by_key[c.key], c.reason) for c in decisions.cancellations]
        waiting = dict(decisions.waiting)
        for key in list(self._admitted):
            wait = waiting.pop(_key_string(key), None)
            if wait is not None:
                work.append(self._write_admission(key, wait))
        work += self._reason_updates(by_key, waiting)
        await asyncio.gather(*work)
        await self.refresh_statuses(decisions.usage)

    async def _write_admission(self, key: JobKey, wait: Waiting) -> None:
        async with self._lock(key):
            admission = self._admitted.pop(key, None)
            current = self.store.job(key)
            if admission is None or current is None or current.state is not None:
                return
            await self._write(current, {**admission, "statusReason": wait.reason,
                                        "waiting": {"category": wait.category, "since": wait.since}})

    async def _place(self, record: JobRecord, environment_name: str) -> None:
        """Create the job's Kubernetes Job now; its STARTING status is written later (see _placed)."""
        async with self._lock(record.key):
            current = self.store.job(record.key)
            environment = self.store.environment(environment_name)
            if current is None or environment is None:
                return
            current = self._effective(current)
            if current.state != "RUNNABLE":
                return
            metrics.PLACEMENTS.labels(environment_name).inc()
            admission = self._admitted.pop(record.key, None)
            if admission is not None:
                metrics.SUBMITTED.labels(current.queue).inc()
            name = jobspec.kubernetes_job_name(current.name, current.attempt)
            patch = {**(admission or {}), **self._placement_patch(environment_name, name)}
            self._placed[record.key] = (self.clock(), patch)
            self._announce(current, "STARTING", patch)
            await self._create_kube_job(dataclasses.replace(current, status={**current.status, **patch}), environment)

    @staticmethod
    def _placement_patch(environment_name: str, kube_job_name: str) -> dict[str, Any]:
        return {"state": "STARTING", "computeEnvironment": environment_name, "kubernetesJob": kube_job_name,
                "statusReason": f"Placed on compute environment '{environment_name}'; "
                                "waiting for the container to start",
                "waiting": None}

    def _waits_as_written(self, record: JobRecord) -> bool:
        """A RUNNABLE job that nothing in memory overrides: most of a deep queue. Cheap to tell, so
        a pass over 100,000 jobs skips _effective for them."""
        return (record.status.get("state") == "RUNNABLE" and record.key not in self._placed
                and not self.store.has_kube_jobs(record.uid))

    def _effective(self, record: JobRecord) -> JobRecord:
        """The job as decided: with its admission and placement even when not written yet."""
        if record.state is None and record.key in self._admitted and record.key not in self._placed:
            record = dataclasses.replace(record, status={**record.status, **self._admitted[record.key]})
        return self._with_placement(record)

    def _with_placement(self, record: JobRecord) -> JobRecord:
        placed = self._placed.get(record.key)
        if placed is None and record.state == "RUNNABLE":
            placed = self._adopt(record)
        if placed is None or record.state not in (None, "RUNNABLE"):
            return record
        return dataclasses.replace(record, status={**record.status, **placed[1]})

    def _adopt(self, record: JobRecord) -> tuple[float, dict[str, Any]] | None:
        """A RUNNABLE job whose Kubernetes Job exists was placed by an operator that stopped before
        writing it: take the placement from the Job, and write it at the next flush."""
        if not self.store.has_kube_jobs(record.uid) or array_size(record) is not None:
            return None
        kube_job = next((j for j in self.store.kube_jobs(record.uid)
                         if j.attempt == record.attempt and j.environment), None)
        if kube_job is None:
            return None
        patch = {**self._admitted.pop(record.key, {}), **self._placement_patch(kube_job.environment, kube_job.name)}
        placed = self._placed[record.key] = (0.0, patch)
        metrics.PLACEMENTS_RECOVERED.inc()
        return placed

    async def flush_placements(self) -> None:
        """Write STARTING for placed jobs whose pod has not reported within placement_report_seconds."""
        due = self.clock() - self.settings.placement_report_seconds
        await asyncio.gather(*[self._flush_placement(key) for key, (at, _) in list(self._placed.items())
                               if at <= due])

    async def _flush_placement(self, key: JobKey) -> None:
        async with self._lock(key):
            current = self.store.job(key)
            if current is None or key not in self._placed:
                return
            if current.state not in (None, "RUNNABLE"):  # written by another path already
                del self._placed[key]
                return
            await self._write(self._with_placement(current), {})

    async def _cancel_by_rule(self, record: JobRecord, reason: str) -> None:
        async with self._lock(record.key):
            current = self.store.job(record.key)
            if current is not None and self._with_placement(current).state == "RUNNABLE":
                await self._write(current, self._fail_patch(reason, isCancelled=True))

    def _reason_updates(self, by_key: dict[str, JobRecord], waiting: dict[str, Waiting]) -> list[Any]:
        """Tell waiting jobs why, without rewriting 100,000 statuses every pass: a changed category
        is written at once, a changed text at most every reason_refresh_seconds, within a budget."""
        now = self.clock()
        updates: list[Any] = []
        for key, wait in waiting.items():
            if len(updates) >= self.settings.reason_updates_per_cycle:
                break
            record = by_key.get(key)
            if record is None or array_size(record) is not None or record.status.get("statusReason") == wait.reason:
                continue
            previous = (record.status.get("waiting") or {}).get("category")
            last = self._reason_written_at.get(record.key, 0.0)
            if previous == wait.category and now - last < self.settings.reason_refresh_seconds:
                continue
            self._reason_written_at[record.key] = now
            updates.append(self._write_reason(record, wait))
        self._reasons_left = len(updates) >= self.settings.reason_updates_per_cycle
        return updates

    async def _write_reason(self, record: JobRecord, wait: Waiting) -> None:
        async with self._lock(record.key):
            current = self.store.job(record.key)
            if current is not None and self._with_placement(current).state == "RUNNABLE":
                await self._write(current, {"statusReason": wait.reason,
                                            "waiting": {"category": wait.category, "since": wait.since}})

    # --- periodic work --------------------------------------------------------------------

    async def sweep(self) -> None:
        """Timeouts of running attempts and the retention of finished jobs."""
        now = self.clock()
        retention = self.settings.finished_job_retention_seconds
        work = []
        for record in self.store.jobs():
            if record.state == "RUNNING" and self._timed_out(record):
                work.append(self.reconcile_job(record.key))
            elif (record.state == "PENDING" and record.key in self.arrays
                  and (record.status.get("resolved") or {}).get("timeoutSeconds")):
                work.append(self.reconcile_job(record.key))  # children's timeout clocks
            elif record.state in TERMINAL:
                stopped = parse_time(record.status.get("stoppedAt"))
                if stopped is None:
                    continue
                if retention and now - stopped > retention:
                    work.append(self.kube.delete_batchjob(record.namespace, record.name))
                elif (array_size(record) is not None and now - stopped > self.settings.kubernetes_job_ttl_seconds
                      and self.store.kube_jobs(record.uid)):
                    # Barge manages array Jobs, so the TTL controller never sees them finish.
                    work.append(self.kube.delete_job(record.namespace, jobspec.array_job_name(record.name)))
        await asyncio.gather(*work)

    async def refresh_statuses(self, usage: dict[str, Resources]) -> None:
        counts_by_queue: dict[str, Counter[str]] = {}
        counts_by_env: dict[str, Counter[str]] = {}
        for record in self.store.jobs():
            if not self._waits_as_written(record):
                record = self._with_placement(record)
            state = record.state or "SUBMITTED"
            counts_by_queue.setdefault(record.queue, Counter())[state] += 1
            if state in ACTIVE and record.status.get("computeEnvironment"):
                counts_by_env.setdefault(record.status["computeEnvironment"], Counter())[state] += 1
        await asyncio.gather(
            *[self._queue_status(q, counts_by_queue.get(q.name, Counter())) for q in self.store.queues()],
            *[self._environment_status(e, usage.get(e.name, Resources()), counts_by_env.get(e.name, Counter()))
              for e in self.store.environments()],
        )

    async def _patch_if_changed(self, kind: str, name: str, status: dict[str, Any]) -> None:
        cache_key = (kind, name)
        if self._status_cache.get(cache_key) == status:
            return
        try:
            body = await self.kube.patch_status(kind, name, status)
        except Exception as exc:
            log.warning("status of %s %s not written: %s", kind, name, exc)
            return
        if body is not None:
            self._status_cache[cache_key] = status

    async def _queue_status(self, queue: Any, counts: Counter[str]) -> None:
        for state in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
            metrics.JOBS.labels(queue.name, state).set(counts.get(state, 0))
        missing = [n for n in queue.environments if self.store.environment(n) is None]
        valid = not missing
        reason = "JobQueue is VALID" if valid else f"compute environment(s) not found: {', '.join(missing)}"
        status = {
            "state": queue.spec.get("state", "ENABLED"), "status": "VALID" if valid else "INVALID",
            "statusReason": reason, "jobCounts": {s: counts.get(s, 0) for s in STATE_EVENT_REASONS},
            "observedGeneration": queue.generation,
            "conditions": [self._ready_condition(
                queue.status, valid, "Valid" if valid else "ComputeEnvironmentNotFound", reason, queue.generation)],
        }
        self._state_change_event(queue, "JobQueue", status)
        await self._patch_if_changed("JobQueue", queue.name, status)

    async def _environment_status(self, environment: Any, used: Resources, counts: Counter[str]) -> None:
        capacity = environment.capacity
        for resource, limit, value in (("cpu", capacity.cpu_milli / 1000, used.cpu_milli / 1000),
                                       ("memory", capacity.memory, used.memory), ("gpu", capacity.gpus, used.gpus)):
            if limit is not None:
                metrics.QUOTA_LIMIT.labels(environment.name, resource).set(limit)
            metrics.QUOTA_USED.labels(environment.name, resource).set(value)
        valid = environment.invalid_reason is None
        reason = environment.invalid_reason or "ComputeEnvironment is VALID"
        queues = sorted(q.name for q in self.store.queues() if environment.name in q.environments)
        status = {
            "state": environment.spec.get("state", "ENABLED"),
            "status": "VALID" if valid else "INVALID", "statusReason": reason,
            "usage": {"vcpus": format_cpu(used.cpu_milli), "memory": format_bytes(used.memory), "gpus": used.gpus},
            "vcpuUsage": f"{format_cpu(used.cpu_milli)}/{format_cpu(capacity.cpu_milli)}",
            "desiredvCpus": -(-used.cpu_milli // 1000),
            "jobCounts": {"STARTING": counts.get("STARTING", 0), "RUNNING": counts.get("RUNNING", 0)},
            "queues": queues, "observedGeneration": environment.generation,
            "conditions": [self._ready_condition(environment.status, valid, "Valid" if valid else "InvalidSpec",
                                                 reason, environment.generation)],
        }
        self._state_change_event(environment, "ComputeEnvironment", status)
        await self._patch_if_changed("ComputeEnvironment", environment.name, status)

    def _state_change_event(self, record: Any, kind: str, status: dict[str, Any]) -> None:
        """An Event when a queue or environment changes state (ENABLED/DISABLED, VALID/INVALID)."""
        if not self.settings.events:
            return
        seen = self._status_cache.get((kind, record.name)) or record.status
        for field in ("state", "status"):
            old, new = seen.get(field), status.get(field)
            if old and new and old != new:
                self.kube.post_event(record.reference(), "Normal" if new in ("ENABLED", "VALID") else "Warning",
                                     f"{kind}{new.capitalize()}", f"{kind} {record.name} is now {new}: "
                                     f"{status.get('statusReason', '')}")

    @staticmethod
    def _ready_condition(status: dict[str, Any], valid: bool, reason: str, message: str,
                         generation: int) -> dict[str, Any]:
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        value = "True" if valid else "False"
        since = old["lastTransitionTime"] if old and old.get("status") == value else now_iso()
        return {"type": "Ready", "status": value, "reason": reason, "message": message,
                "lastTransitionTime": since, "observedGeneration": generation}
