"""One job's decisions: what a reconcile does next, admission, the end of an attempt, cancel,
terminate and timeout, and what a job counts against its compute environment's quota. Pure code:
each rule reads a job (and what was observed of it) and returns a status patch; the clock is
`now`, seconds since the epoch."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from barge.core import lifecycle, manifests, selectors
from barge.core.conditions import set_condition
from barge.core.dependencies import Verdict
from barge.core.jobstatus import AttemptStatus, JobStatusPatch, ResolvedJob
from barge.core.lifecycle import KubeJobObservation, Outcome, PodObservation
from barge.core.resolve import SpecError, resolve
from barge.core.resources import Resources
from barge.core.scheduler import Waiting
from barge.core.states import (
    ACTIVE,
    CANCELLED_BY_USER,
    FAILED,
    JOB_STATES,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    STATE_REASONS,
    SUBMITTED,
    TERMINAL,
    TERMINATED_BY_USER,
    TIMEOUT_REASON,
    UNADMITTED,
)
from barge.core.times import iso, parse_time

# Watches of different kinds are not ordered: a queue or definition applied together with a job may
# arrive just after it. A job this young whose reference is missing is looked at again, not failed.
REFERENCE_GRACE_SECONDS = 10
# A BatchJob's spec plus the pod template its status keeps stay under this, so the rest of its status
# (attempts; an array's index ranges, up to about 0.9 MB for 100,000 children) fits in etcd's 1.5 MiB.
MAX_ADMITTED_BYTES = 512 * 1024


class JobView(Protocol):
    """What the rules read of a BatchJob (controller.records.JobRecord is one)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def generation(self) -> int: ...
    @property
    def uid(self) -> str: ...
    @property
    def spec(self) -> dict[str, Any]: ...
    @property
    def status(self) -> dict[str, Any]: ...
    @property
    def state(self) -> str | None: ...
    @property
    def queue(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def request(self) -> Resources: ...


class QueueView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def namespace_selector(self) -> Mapping[str, Any] | None: ...
    @property
    def scheduling_policy(self) -> str | None: ...


# --- what a reconcile does -------------------------------------------------------------------

NOTHING = "nothing"
TERMINATE = "terminate"
TERMINATE_ARRAY = "terminate-array"
CANCEL = "cancel"
ADMIT = "admit"
FORGET_ADMISSION = "forget-admission"  # a held admission is dropped, then the job is stopped
ARRAY = "array"
WAIT_FOR_DEPENDENCIES = "wait-for-dependencies"
FOLLOW_ATTEMPT = "follow-attempt"


def array_size(job: JobView) -> int | None:
    size = (job.spec.get("arrayProperties") or {}).get("size")
    return int(size) if size else None


def stopping(job: JobView) -> bool:
    return job.spec.get("terminate") is not None or job.spec.get("cancel") is not None


def admitted(job: JobView) -> bool:
    return job.state not in UNADMITTED


def next_steps(job: JobView, admission_held: bool) -> tuple[str, ...]:
    """What one reconcile of a job that is not finished does, in order."""
    if job.state in TERMINAL:
        return ()
    is_array = array_size(job) is not None
    first: tuple[str, ...] = ()
    if admission_held:  # admitted RUNNABLE, not written yet
        if not stopping(job):
            return (NOTHING,)  # the next scheduling pass writes it
        first = (FORGET_ADMISSION,)
    if job.spec.get("terminate") is not None:
        return (*first, TERMINATE_ARRAY if is_array and admitted(job) else TERMINATE)
    if job.spec.get("cancel") is not None and job.state not in ACTIVE and not (is_array and admitted(job)):
        return (*first, CANCEL)
    if not admitted(job):
        return (ADMIT,)
    if is_array:
        return (ARRAY,)
    if job.state == PENDING:
        return (WAIT_FOR_DEPENDENCIES,)
    if job.state in ACTIVE:
        return (FOLLOW_ATTEMPT,)
    return (NOTHING,)


# --- admission -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Admission:
    """`held`: a RUNNABLE admission that the next scheduling pass writes together with the reason the
    job waits (or its placement). `look_again`: a reference is missing from a young job's view; `patch`
    then says SUBMITTED and why (None when that is written already)."""
    patch: JobStatusPatch | None
    held: bool = False
    look_again: bool = False


@dataclass(frozen=True)
class Problem:
    """Why a job cannot be admitted; `missing`: something it names is not known (yet)."""
    reason: str
    missing: bool


def admission_problem(job: JobView, queue: QueueView | None, queue_names: Iterable[str],
                      definition: dict[str, Any] | None,
                      namespace_labels: Mapping[str, str] | None = None,
                      policy_names: Collection[str] = ()) -> Problem | None:
    if queue is None:
        known = ", ".join(sorted(queue_names)) or "none"
        return Problem(f"Job queue '{job.queue}' does not exist (job queues: {known})", missing=True)
    if not queue.enabled:
        return Problem(f"Job queue '{job.queue}' is DISABLED and accepts no new jobs", missing=False)
    selector = queue.namespace_selector
    if selector is not None and not selectors.matches(selector, namespace_labels or {}):
        return Problem(f"Job queue '{job.queue}' does not accept jobs from namespace '{job.namespace}' "
                       f"(its namespaceSelector selects {selectors.describe(selector)})",
                       missing=namespace_labels is None)
    share_problem = _share_problem(job, queue, policy_names)
    if share_problem is not None:
        return share_problem
    if definition is None:
        return Problem(f"Job definition '{job.spec.get('jobDefinition')}' does not exist in namespace "
                       f"'{job.namespace}'", missing=True)
    return None


def _share_problem(job: JobView, queue: QueueView, policy_names: Collection[str]) -> Problem | None:
    """A fair-share queue's jobs need a share identifier, a FIFO queue's must not have one (as in AWS)."""
    policy, share = queue.scheduling_policy, job.spec.get("shareIdentifier")
    if policy is None and share:
        return Problem(f"spec.shareIdentifier '{share}' is set, but job queue '{queue.name}' is a FIFO queue "
                       "(it names no schedulingPolicy); remove spec.shareIdentifier or use a fair-share queue",
                       missing=False)
    if policy is not None and not share:
        return Problem(f"spec.shareIdentifier is required: job queue '{queue.name}' is a fair-share queue "
                       f"(schedulingPolicy '{policy}')", missing=False)
    if policy is not None and policy not in policy_names:
        return Problem(f"Job queue '{queue.name}' names schedulingPolicy '{policy}', which does not exist, so "
                       f"spec.shareIdentifier '{share}' has no fair share to count against", missing=True)
    return None


def priority(job: JobView) -> int:
    """The job's schedulingPriority: its override, else its definition's at submission, else 0."""
    override = job.spec.get("schedulingPriorityOverride")
    if override is not None:
        return int(override)
    return int((job.status.get("resolved") or {}).get("schedulingPriority") or 0)


def admit(job: JobView, queue: QueueView | None, queue_names: Iterable[str], definition: dict[str, Any] | None,
          now: float, namespace_labels: Mapping[str, str] | None = None,
          policy_names: Collection[str] = ()) -> Admission:
    base: JobStatusPatch = {"jobId": job.uid, "createdAt": job.status.get("createdAt") or iso(now),
                            "jobQueue": job.queue, "attemptCount": 0, "currentAttempt": 1}
    problem = admission_problem(job, queue, queue_names, definition, namespace_labels, policy_names)
    if problem and problem.missing and _young(job, now):
        reason = f"{problem.reason}; looking again"
        if job.state == SUBMITTED and job.status.get("statusReason") == reason:
            return Admission(None, look_again=True)
        return Admission({**base, "state": SUBMITTED, "statusReason": reason}, look_again=True)
    if problem:
        return Admission({**base, **fail(problem.reason, now)})
    assert definition is not None
    try:
        resolved = resolve(definition, job.spec)
    except SpecError as exc:
        return Admission({**base, **fail(f"Invalid job: {exc}", now)})
    too_large = size_problem(job.spec, resolved.template)
    if too_large:
        return Admission({**base, **fail(too_large, now)})
    size = array_size(job)
    depends = bool(job.spec.get("dependsOn"))
    request = resolved.request
    patch: JobStatusPatch = {
        **base, "state": PENDING if size or depends else RUNNABLE, "queuedAt": now,
        "statusReason": "Checking dependencies" if depends else
        f"Waiting in job queue '{job.queue}' for a scheduling pass",
        "resolved": ResolvedJob(template=resolved.template, retryStrategy=resolved.retry_strategy,
                                timeoutSeconds=resolved.timeout_seconds, labels=resolved.labels,
                                request={"cpuMilli": request.cpu_milli, "memory": request.memory,
                                         "gpus": request.gpus},
                                schedulingPriority=int(definition.get("schedulingPriority") or 0)),
    }
    if resolved.nodes is not None:
        patch["resolved"]["nodeProperties"] = resolved.nodes
    if size:
        patch["arrayProgress"] = f"0/{size}"
        patch["arrayProperties"] = {"size": size, "statusSummary": {
            s: (size if s == PENDING else 0) for s in JOB_STATES}}
    return Admission(patch, held=patch["state"] == RUNNABLE)


def size_problem(spec: Mapping[str, Any], template: Mapping[str, Any]) -> str | None:
    """A job whose spec and resolved pod template (kept in its status) leave too little of the API
    server's object limit for the status to grow in (attempts, an array's ranges) is refused at
    admission, in words, rather than failing every status write later."""
    spec_bytes = len(json.dumps(spec, separators=(",", ":")))
    template_bytes = len(json.dumps(template, separators=(",", ":")))
    if spec_bytes + template_bytes <= MAX_ADMITTED_BYTES:
        return None
    return (f"Job too large: its spec ({spec_bytes:,} bytes) and the pod template it resolves to "
            f"({template_bytes:,} bytes) exceed the {MAX_ADMITTED_BYTES:,} bytes a BatchJob may hold "
            "(the API server stores at most about 1.5 MiB per object); make overrides.env, "
            "the parameters or the definition's template smaller")


def _young(job: JobView, now: float) -> bool:
    created = parse_time(job.created)
    return created is not None and now - created < REFERENCE_GRACE_SECONDS


# --- dependencies ----------------------------------------------------------------------------

def dependencies_patch(job: JobView, verdict: Verdict, now: float) -> JobStatusPatch | None:
    """A PENDING one-pod job: released to its queue, where it keeps its place by submission time
    (queuedAt, set at admission), failed, or told what it waits for."""
    if verdict.failure:
        return fail(verdict.failure, now)
    if verdict.ready:
        return {"state": RUNNABLE, "statusReason": f"Dependencies met; waiting in job queue '{job.queue}'"}
    reason = f"Waiting for {verdict.waiting_on}"
    return None if job.status.get("statusReason") == reason else {"statusReason": reason}


# --- the end of a job ------------------------------------------------------------------------

def fail(reason: str, now: float, flag: str | None = None) -> JobStatusPatch:
    patch: JobStatusPatch = {"state": FAILED, "statusReason": reason, "stoppedAt": iso(now)}
    if flag == "isCancelled":
        patch["isCancelled"] = True
    elif flag == "isTerminated":
        patch["isTerminated"] = True
    return patch


def cancel(job: JobView, now: float) -> JobStatusPatch:
    return fail((job.spec.get("cancel") or {}).get("reason") or CANCELLED_BY_USER, now, "isCancelled")


def termination_reason(job: JobView) -> str:
    return (job.spec.get("terminate") or {}).get("reason") or TERMINATED_BY_USER


def terminate(job: JobView, pod: PodObservation | None, now: float) -> JobStatusPatch:
    """FAILED, isTerminated; an attempt in flight is recorded (its Kubernetes Job is deleted by the caller)."""
    reason = termination_reason(job)
    patch = fail(reason, now, "isTerminated")
    if job.state in ACTIVE:
        patch.update(_with_attempt(job, stopped_attempt(pod, reason, now)))
    return patch


def timed_out(job: JobView, now: float) -> bool:
    """A running attempt has used its timeout (attemptDurationSeconds)."""
    seconds = (job.status.get("resolved") or {}).get("timeoutSeconds")
    started = parse_time(job.status.get("attemptStartedAt"))
    return bool(seconds and started and job.state == RUNNING and now - started >= seconds)


def time_out(job: JobView, pod: PodObservation | None, now: float) -> JobStatusPatch:
    """A timed-out attempt ends the job: AWS never retries a timeout."""
    return {**fail(TIMEOUT_REASON, now), **_with_attempt(job, stopped_attempt(pod, TIMEOUT_REASON, now))}


def stopped_attempt(pod: PodObservation | None, reason: str, now: float) -> AttemptStatus:
    attempt: AttemptStatus = {"statusReason": reason, "stoppedAt": iso(now)}
    if pod is not None:
        if pod.name:
            attempt["podName"] = pod.name
        if pod.node:
            attempt["nodeName"] = pod.node
        if pod.running_since:
            attempt["startedAt"] = pod.running_since
    return attempt


def _with_attempt(job: JobView, attempt: AttemptStatus) -> JobStatusPatch:
    attempts = [*(job.status.get("attempts") or []), attempt]
    return {"attempts": attempts, "attemptCount": len(attempts)}


# --- an attempt in flight --------------------------------------------------------------------

def current_pod(job: JobView, pods: Sequence[PodObservation]) -> PodObservation | None:
    """The pod of the current attempt; a terminated one wins over one still running."""
    mine = [p for p in pods if p.attempt == job.attempt]
    terminated = [p for p in mine if p.terminated]
    candidates = terminated or mine
    return candidates[-1] if candidates else None


def current_kube_job(job: JobView, kube_jobs: Sequence[KubeJobObservation]) -> KubeJobObservation | None:
    return next((j for j in kube_jobs if j.attempt == job.attempt), None)


def kube_job_name(job: JobView) -> str:
    return str(job.status.get("kubernetesJob") or manifests.kubernetes_job_name(job.name, job.attempt))


def advance(job: JobView, pod: PodObservation | None, kube_job: KubeJobObservation | None,
            now: float, startup_grace_seconds: float | None = None) -> Outcome | None:
    """The transition the current attempt makes, from what its pod and Job show. A pod whose
    container cannot start ends the attempt once `startup_grace_seconds` have passed (None: never);
    the outcome then says `stop_pod`, and the caller deletes the attempt's Kubernetes Job."""
    resolved = job.status.get("resolved") or {}
    return lifecycle.advance(job.state or "", job.attempt, resolved.get("retryStrategy") or {}, pod, kube_job,
                             iso(now), no_more_retries=job.spec.get("cancel") is not None,
                             startup_grace_seconds=startup_grace_seconds)


def outcome_patch(job: JobView, outcome: Outcome, now: float) -> JobStatusPatch:
    patch: JobStatusPatch = {"state": outcome.state, "statusReason": outcome.status_reason}
    if outcome.state == RUNNING:
        patch["attemptStartedAt"] = outcome.started_at or iso(now)
        if not job.status.get("startedAt"):
            patch["startedAt"] = patch["attemptStartedAt"]
    if outcome.attempt is not None:
        patch.update(_with_attempt(job, cast(AttemptStatus, outcome.attempt)))
    if outcome.retry:
        code = (outcome.attempt or {}).get("exitCode")
        exit_text = f", exit code {code}" if code is not None else ""
        patch.update({"currentAttempt": job.attempt + 1, "computeEnvironment": None,
                      "statusReason": f"Attempt {job.attempt} failed ({outcome.status_reason}{exit_text}); "
                                      "waiting to retry"})
    if outcome.state in TERMINAL:
        patch["stoppedAt"] = outcome.stopped_at or iso(now)
        if not job.status.get("startedAt") and outcome.started_at:
            patch["startedAt"] = outcome.started_at
    return patch


def unschedulable_patch(job: JobView, pod: PodObservation | None) -> JobStatusPatch | None:
    """A STARTING job whose pod the scheduler cannot place says why."""
    if pod is None or not pod.unschedulable or job.state != STARTING:
        return None
    reason = f"Pod cannot be scheduled: {pod.unschedulable}"[:1024]
    return None if job.status.get("statusReason") == reason else {"statusReason": reason}


# --- scheduling ------------------------------------------------------------------------------

def placement_patch(environment: str, kube_job: str) -> JobStatusPatch:
    return {"state": STARTING, "computeEnvironment": environment, "kubernetesJob": kube_job,
            "statusReason": f"Placed on compute environment '{environment}'; waiting for the container to start",
            "waiting": None}


def starting_report_due(placed_at: float, pod: PodObservation | None, report_seconds: float,
                        starting_pod_seconds: float) -> float:
    """When a placed job's STARTING is written on its own, if its container has not run by then (a
    container that runs first has STARTING written with RUNNING, in one write). A pod already on a
    node with nothing failing to start is given longer: its state would change again within moments."""
    if pod is not None and pod.running_since and pod.active:
        return math.inf  # its container runs: RUNNING is due instead (running_report_due), with the placement
    starting_normally = (pod is not None and pod.node is not None and pod.active and not pod.unschedulable
                         and not pod.waiting_reason)
    return placed_at + (max(report_seconds, starting_pod_seconds) if starting_normally else report_seconds)


def running_report_hold(recent_starts: int, report_seconds: float, busy_starts: int) -> float:
    """How long the RUNNING of a container just seen starting waits for the container's end: while
    containers start busily (`busy_starts` or more seen in the last `report_seconds`), `report_seconds`,
    so that a short job's start and end are one write when writes are what the apiserver is short of;
    at a quiet time, not at all (RUNNING shows as soon as it is seen)."""
    return report_seconds if recent_starts >= busy_starts else 0.0


def running_report_due(job: JobView, outcome: Outcome, seen_running_at: float, hold_seconds: float) -> float | None:
    """When a job whose container has started has RUNNING written: `hold_seconds`
    (running_report_hold) after the operator first saw it run; a container that ends sooner has its end
    written instead, in one write. None: this outcome is not a start waiting for its report (it is
    written as it comes)."""
    if outcome.state != RUNNING or job.state == RUNNING:
        return None
    return seen_running_at + hold_seconds


def ran_unannounced(job: JobView, outcome: Outcome) -> bool:
    """An attempt that ends (or retries) after its container ran, with RUNNING never written: its
    RUNNING still gets its Event and metrics, told before the end."""
    return outcome.state != RUNNING and job.state != RUNNING and outcome.started_at is not None


def running_announcement(pod: PodObservation | None) -> JobStatusPatch:
    """What the Event of a RUNNING never written says: the words a written one has."""
    node = pod.node if pod is not None else None
    return {"state": RUNNING, "statusReason": f"Container running on node {node}" if node else "Container running"}


def waiting_patch(wait: Waiting) -> JobStatusPatch:
    return {"statusReason": wait.reason, "waiting": {"category": wait.category, "since": wait.since}}


def charge(job: JobView) -> tuple[str, Resources] | None:
    """What a one-pod job holds of its compute environment's quota: its request while an attempt is
    placed or running (STARTING, RUNNING). Arrays are charged child by child (core.arrays)."""
    environment = job.status.get("computeEnvironment")
    if job.state in ACTIVE and environment:
        return str(environment), job.request
    return None


def schedulable(job: JobView) -> bool:
    """A one-pod RUNNABLE job that the scheduler may place."""
    return job.state == RUNNABLE and not stopping(job)


# --- what every status write carries ---------------------------------------------------------

def stamp(job: JobView, patch: JobStatusPatch, now: float) -> JobStatusPatch:
    """A state change also sets observedGeneration and the Finished condition (True once terminal)."""
    state = patch.get("state")
    if not state:
        return patch
    conditions, _ = set_condition(job.status.get("conditions") or [], "Finished", state in TERMINAL,
                                  STATE_REASONS.get(state, "Unknown"), patch.get("statusReason", ""),
                                  job.generation, iso(now))
    return {"observedGeneration": job.generation, **patch, "conditions": conditions}
