"""One job's reconcile: read the job and what was observed of it, ask core.job what to do, write
the result. Runs under the job's lock; arrays are handed to arrays.py."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from barge import metrics
from barge.config import Settings
from barge.controller.arrays import Arrays
from barge.controller.dependencies import Dependencies
from barge.controller.gangs import Gangs
from barge.controller.records import EnvironmentRecord, JobKey, JobRecord, placement
from barge.controller.router import KeyedLocks, Router
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import gangs, manifests
from barge.core import job as rules
from barge.core.jobstatus import JobStatusPatch
from barge.core.lifecycle import Outcome, PodObservation
from barge.core.states import MANAGED_BY, RUNNING, TERMINAL, UNADMITTED

log = logging.getLogger("barge.jobs")
# Answers to a Job create that are about the Job itself (invalid, forbidden, namespace gone): the job fails.
REFUSALS = (400, 403, 404, 422)
LOOK_AGAIN_SECONDS = 0.5  # a queue or definition missing from a young job's view
CREATE_RETRY_SECONDS = 2.0  # a Job create that failed for a reason unrelated to the job


class Jobs:
    def __init__(self, settings: Settings, store: Store, status: StatusWriter, locks: KeyedLocks, router: Router,
                 arrays: Arrays, dependencies: Dependencies, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.kube = status.kube
        self.store = store
        self.status = status
        self.locks = locks
        self.router = router
        self.arrays = arrays
        self.dependencies = dependencies
        self.clock = clock
        self.gangs = Gangs(self.kube, store)
        self._created: set[str] = set()  # "namespace/name" of Jobs created by this process, not yet finished
        self._running_seen: dict[JobKey, tuple[int, float, float]] = {}  # attempt, first seen running, hold
        self._starts_seen: deque[float] = deque()  # when containers were first seen started, recent ones

    async def reconcile(self, key: JobKey) -> None:
        await self.store.listed.wait()
        async with self.locks(key):
            record = self.store.job(key)
            if record is None:
                return
            record = self.store.effective(record)
            for step in rules.next_steps(record, self.store.admission_held(key)):
                await self._run(step, record)

    async def _run(self, step: str, record: JobRecord) -> None:
        if step == rules.FORGET_ADMISSION:
            self.store.take_admission(record.key)
        elif step == rules.TERMINATE:
            await self._terminate(record)
        elif step == rules.TERMINATE_ARRAY:
            await self.arrays.terminate(record)
        elif step == rules.CANCEL:
            await self.status.write(record, rules.cancel(record, self.clock()))
            self.router.kick()
        elif step == rules.ADMIT:
            await self._admit(record)
        elif step == rules.ARRAY:
            await self.arrays.reconcile(record)
        elif step == rules.WAIT_FOR_DEPENDENCIES:
            await self._wait_for_dependencies(record)
        elif step == rules.FOLLOW_ATTEMPT:
            await self._follow_attempt(record)

    async def admit_placed_before_restart(self) -> None:
        """One-pod jobs whose Kubernetes Job exists but whose admission was never written (the last
        operator stopped between creating the Job and writing STARTING): admitted again before the
        first scheduling pass, so that pass already counts their pods against the quota."""
        for record in self.store.jobs():
            if (record.state in UNADMITTED and rules.array_size(record) is None
                    and self.store.has_kube_jobs(record.uid)):
                async with self.locks(record.key):
                    current = self.store.job(record.key)
                    if current is None or self.store.admission_held(record.key):
                        continue
                    try:
                        await self._admit(current)
                    except Exception:  # its reconcile, requested once the store is ready, tries again
                        log.exception("admitting %s/%s again after a restart failed", *record.key)

    async def _admit(self, record: JobRecord) -> None:
        definition = self.store.definition(record.namespace, str(record.spec.get("jobDefinition")))
        admission = rules.admit(record, self.store.queue(record.queue), [q.name for q in self.store.queues()],
                                definition, self.clock(), self.store.namespace_labels(record.namespace),
                                {p.name for p in self.store.policies()})
        patch = admission.patch
        if admission.look_again:
            if patch is not None:
                await self.status.write(record, patch)  # SUBMITTED, and what is missing
            self.router.reconcile_later(record.key, LOOK_AGAIN_SECONDS)
        elif patch is not None and admission.held:
            self.store.assume_admission(record.key, patch)
            if self.store.adopt_placement(record):  # placed before a restart, admission never written
                metrics.PLACEMENTS_RECOVERED.inc()
            self.router.kick()
        elif patch is not None:
            await self.status.write(record, patch)
            self.router.kick()

    async def _wait_for_dependencies(self, record: JobRecord) -> None:
        patch = rules.dependencies_patch(record, self.dependencies.verdict(record), self.clock())
        if patch is not None:
            await self.status.write(record, patch)
            if patch.get("state") is not None:
                self.router.kick()

    def current_pod(self, record: JobRecord) -> PodObservation | None:
        """The current attempt's pod; a multi-node job's main node."""
        nodes = record.resolved.nodes
        pods = self.store.pods(record.uid)
        return gangs.main_pod(nodes, pods, record.attempt) if nodes else rules.current_pod(record, pods)

    async def _terminate(self, record: JobRecord) -> None:
        pod = self.current_pod(record)
        if record.state in rules.ACTIVE:
            await self.kube.delete_job(record.namespace, rules.kube_job_name(record))
        await self.status.write(record, rules.terminate(record, pod, self.clock()))
        self.router.kick()

    async def _follow_attempt(self, record: JobRecord) -> None:
        kube_job = rules.current_kube_job(record, self.store.kube_jobs(record.uid))
        pod = self.current_pod(record)
        gang = record.resolved.nodes is not None
        if pod is None and (kube_job is None or (kube_job.managed and not gang)):
            await self._ensure_kube_job(record)  # and, for a one-pod job, its pod
            return
        nodes_patch: JobStatusPatch = {}
        if gang:
            pods = self.store.pods(record.uid)
            if kube_job is not None and not await self.gangs.start_nodes(record, kube_job, pods):
                self.router.reconcile_later(record.key, CREATE_RETRY_SECONDS)
            shown = self.gangs.status_patch(record, pods)
            nodes_patch = {"nodeProperties": shown} if shown is not None else {}
        now = self.clock()
        if rules.timed_out(record, now):
            await self.kube.delete_job(record.namespace, rules.kube_job_name(record))
            await self.status.write(record, {**nodes_patch, **rules.time_out(record, pod, now)})
            self.router.kick()
            return
        outcome = rules.advance(record, pod, kube_job, now, self.settings.startup_failure_seconds)
        if outcome is not None and not gang and self._running_not_due(record, outcome, now):
            return
        if outcome is not None:
            if rules.ran_unannounced(record, outcome):
                self.status.announce(record, RUNNING, rules.running_announcement(pod))
            if outcome.stop_pod:  # it cannot start: stop the image pull and free the node's room now
                await self.kube.delete_job(record.namespace, rules.kube_job_name(record))
            elif gang and outcome.state != RUNNING:  # the main node ended: so do the others
                await self.gangs.stop_others(record, pods)
            if outcome.retry:
                metrics.RETRIED.labels(record.queue).inc()
            await self.status.write(record, {**nodes_patch, **rules.outcome_patch(record, outcome, now)})
            if outcome.state != RUNNING:
                self.router.kick()
            return
        patch = rules.unschedulable_patch(record, pod)
        if patch is not None or nodes_patch or self._starting_due(record, pod, now):
            await self.status.write(record, {**nodes_patch, **(patch or {})})

    def _running_not_due(self, record: JobRecord, outcome: Outcome, now: float) -> bool:
        """A container that has just started: its RUNNING waits for core.job.running_report_due (the
        job is looked at again then), unless it ends first."""
        seen = self._running_seen.get(record.key)
        if seen is None or seen[0] != record.attempt:
            hold = rules.running_report_hold(self._count_start(now), self.settings.running_report_seconds,
                                             self.settings.running_report_busy_starts)
            seen = self._running_seen[record.key] = (record.attempt, now, hold)
        due = rules.running_report_due(record, outcome, seen[1], seen[2])
        if due is None or due <= now:
            del self._running_seen[record.key]
            return False
        self.router.reconcile_later(record.key, due - now)
        return True

    def _count_start(self, now: float) -> int:
        """Containers seen starting within the last --running-report-seconds, before this one."""
        while self._starts_seen and self._starts_seen[0] < now - self.settings.running_report_seconds:
            self._starts_seen.popleft()
        recent = len(self._starts_seen)
        self._starts_seen.append(now)
        return recent

    def _starting_due(self, record: JobRecord, pod: PodObservation | None, now: float) -> bool:
        """A placement not written yet whose pod now says STARTING is due (it cannot start, say):
        written at this report, not at the end of the longer wait given to a pod starting normally."""
        placed = self.store.assumed_placement(record.key)
        return placed is not None and rules.starting_report_due(
            placed[0], pod, self.settings.placement_report_seconds, self.settings.starting_pod_report_seconds) <= now

    async def _ensure_kube_job(self, record: JobRecord) -> None:
        """Placed but no Kubernetes Job (or, for a one-pod job, no pod) seen: create it (after a
        restart between our two writes, or between creating the Job and its pod)."""
        if f"{record.namespace}/{rules.kube_job_name(record)}" in self._created:
            return
        name = str(record.status.get("computeEnvironment"))
        environment = self.store.environment(name)
        if environment is None:
            await self.status.write(record, rules.fail(
                f"Compute environment '{name}' was deleted before the job started", self.clock()))
            return
        await self.create_kube_job(record, environment)

    async def create_kube_job(self, record: JobRecord, environment: EnvironmentRecord) -> None:
        """The Kubernetes Job of the current attempt; a refusal about the Job itself fails the job."""
        where = placement(record, environment, self.settings.kubernetes_job_ttl_seconds)
        manifest = manifests.kubernetes_job(record.resolved, where)
        guard = f"{record.namespace}/{manifest['metadata']['name']}"
        self._created.add(guard)
        try:
            if record.resolved.nodes is None:
                await self._create_single(record, manifest, where)
            else:  # its pods are Barge's to create, owned by it: keep its uid (gang Jobs are not watched)
                self.store.remember_kube_job(await self.kube.create_job_returning(manifest))
                self.router.request_reconcile(record.key)
        except Exception as exc:
            if getattr(exc, "status", None) in REFUSALS and not quota_exceeded(exc):
                log.warning("creating the Kubernetes Job or pod of %s failed: %s", record.key, exc)
                await self.status.write(record, rules.fail(refusal(exc), self.clock()))
                return
            # A timeout or a busy apiserver says nothing about the job: try again shortly.
            log.warning("creating the Kubernetes Job of %s failed, retrying: %s", record.key, exc)
            self._created.discard(guard)
            self.router.reconcile_later(record.key, CREATE_RETRY_SECONDS)

    async def _create_single(self, record: JobRecord, manifest: dict[str, Any], where: manifests.Placement) -> None:
        """A one-pod job's Job, then its pod (which only the Job's uid lets us own). The Job is
        remembered (one-pod Jobs are not watched) so that housekeeping deletes it after the TTL."""
        uid, managed = await self.kube.create_job_uid(manifest)
        self.store.remember_kube_job(_with_uid(manifest, uid, managed))
        if not managed:  # a Job an earlier version of Barge left to the Job controller gets its pod there
            return
        try:
            await self.kube.create_pod(manifests.single_pod(manifest, uid, where))
        except Exception as exc:
            raise PodRefused(exc) from exc

    def forget(self, key: JobKey) -> None:
        """A BatchJob is gone: a RUNNING it waited to write is not due any more."""
        self._running_seen.pop(key, None)

    def finished(self, record: JobRecord) -> None:
        """A job has just become SUCCEEDED or FAILED: what depends on it looks again."""
        assert record.state in TERMINAL
        self._running_seen.pop(record.key, None)
        for attempt in range(1, record.attempt + 1):
            self._created.discard(f"{record.namespace}/{manifests.kubernetes_job_name(record.name, attempt)}")
        for key in self.dependencies.dependents(record):
            self.router.request_reconcile(key)


def _with_uid(manifest: dict[str, Any], uid: str, managed: bool) -> dict[str, Any]:
    """What the store keeps of a Job just created (or found): its metadata with the server's uid."""
    spec = {"managedBy": MANAGED_BY} if managed else {}
    return {"metadata": {**manifest["metadata"], "uid": uid}, "spec": spec}


def quota_exceeded(exc: Exception) -> bool:
    """A ResourceQuota of the namespace refused the pod for now (403 "exceeded quota"): it is
    tried again, as the Job controller would, rather than failing the job."""
    return getattr(exc, "status", None) == 403 and "exceeded quota" in str(getattr(exc, "body", "") or "")


class PodRefused(Exception):
    """A one-pod job's pod create failed (its Job was created); the API server's answer, if any."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.status = getattr(exc, "status", None)
        self.body = getattr(exc, "body", None)
        self.reason = getattr(exc, "reason", None)


def refusal(exc: Exception) -> str:
    """The API server's own message for a refused Job or pod, on one line (its answer is a JSON Status)."""
    what = "pod" if isinstance(exc, PodRefused) else "Job"
    body = getattr(exc, "body", None)
    try:
        message = str(json.loads(body).get("message") or "") if body else ""
    except (ValueError, AttributeError):
        message = ""
    message = " ".join((message or getattr(exc, "reason", "") or str(exc)).split())
    return f"Kubernetes refused the {what}: {message}"[:1024]
