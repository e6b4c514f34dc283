"""A job's life from what its pod and Kubernetes Job show. Pure code: no I/O, an injected clock.

STARTING lasts from the creation of the Kubernetes Job until the main container runs; RUNNING
until it terminates. A failed attempt goes back to RUNNABLE when attempts remain and the retry
rules say RETRY; cancel, terminate and timeout are never retried. A container that cannot start
(image pull, missing Secret or ConfigMap, failing init container) ends its attempt as AWS does, in
AWS's words, once a grace period has passed; the retry rules then decide as for a failed exit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from barge.core.states import (
    ACTIVE,
    ATTEMPT_LABEL,
    COMPLETION_INDEX_ANNOTATION,
    ENVIRONMENT_ANNOTATION,
    ESSENTIAL_CONTAINER_EXITED,
    MANAGED_BY,
    STARTING,
)
from barge.core.times import parse_time

# AWS Batch's statusReason words for a container that cannot start, by Kubernetes' waiting reason.
CANNOT_PULL = "CannotPullContainerError"
CANNOT_CREATE = "CannotCreateContainerError"
RESOURCE_INITIALIZATION = "ResourceInitializationError"
STARTUP_FAILURES = {
    "ErrImagePull": CANNOT_PULL,
    "ImagePullBackOff": CANNOT_PULL,
    "InvalidImageName": CANNOT_PULL,
    "ErrImageNeverPull": CANNOT_PULL,
    "CreateContainerError": CANNOT_CREATE,
    "RunContainerError": CANNOT_CREATE,
    "CreateContainerConfigError": RESOURCE_INITIALIZATION,
}
INIT_FAILED = "Init:"  # the reason of a pod whose init container failed starts as kubectl shows it: Init:Error
MESSAGE_LIMIT = 1000  # a kubelet's message can carry a whole registry answer; statuses stay small


@dataclass(frozen=True, slots=True)
class PodObservation:
    """What Barge keeps of a pod (one per pod: fields are added sparingly).

    `waiting_*` are set only while the main or an init container waits for a reason that means it
    cannot start (STARTUP_FAILURES): ContainerCreating and the like change nothing kept, so they cost
    no reconcile. `waiting_since` is the pod's status.startTime, when the kubelet accepted it (time
    spent waiting for a node does not count against the grace period), else its creationTimestamp."""
    name: str
    attempt: int
    phase: str
    node: str | None = None
    index: int | None = None
    running_since: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    deleting: bool = False
    unschedulable: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    waiting_since: str | None = None
    ip: str | None = None  # status.podIP: a multi-node job's main node is reached there

    @property
    def active(self) -> bool:
        return not self.terminated and not self.deleting

    @property
    def terminated(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class KubeJobObservation:
    name: str
    attempt: int
    uid: str = ""
    environment: str = ""
    failed_reason: str | None = None
    failed_message: str | None = None
    complete: bool = False
    managed: bool = False  # spec.managedBy Barge: its pods are Barge's to create


@dataclass(frozen=True)
class Outcome:
    """The next state of a job, or None fields when nothing changes."""
    state: str
    status_reason: str
    attempt: dict[str, Any] | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    retry: bool = False
    stop_pod: bool = False  # the pod has not ended by itself (it cannot start): the caller stops it


def _main_container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    main = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    for status in statuses:
        if status.get("name") == main:
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def _cannot_start(pod: dict[str, Any], main: dict[str, Any]) -> dict[str, Any]:
    """The waiting state of the first init container, or else the main container, that waits for a
    reason meaning it cannot start; {} when none does."""
    for container in [*((pod.get("status") or {}).get("initContainerStatuses") or []), main]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STARTUP_FAILURES:
            return dict(waiting)
    return {}


def _failed_init_container(pod: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of an init container that exited non-zero: with restartPolicy Never the
    pod fails without its main container ever running."""
    for container in (pod.get("status") or {}).get("initContainerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if code:
            message = f"init container '{container.get('name')}' exited with code {code}"
            if terminated.get("message"):
                message += f": {terminated['message']}"
            return INIT_FAILED + (terminated.get("reason") or f"ExitCode:{code}"), message
    return None


def _why_it_ended(pod: dict[str, Any], terminated: dict[str, Any]) -> tuple[str | None, str | None]:
    """(reason, message): the main container's termination, a failed init container's, or the pod's."""
    if not terminated:
        init_failure = _failed_init_container(pod)
        if init_failure is not None:
            return init_failure
    status = pod.get("status") or {}
    return terminated.get("reason") or status.get("reason"), terminated.get("message") or status.get("message")


def observe_pod(pod: dict[str, Any]) -> PodObservation:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    index = (metadata.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    main = _main_container_status(pod)
    state = main.get("state") or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    status = pod.get("status") or {}
    scheduled: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
    unschedulable = scheduled.get("message") if scheduled.get("reason") == "Unschedulable" else None
    reason, message = _why_it_ended(pod, terminated)
    waiting = _cannot_start(pod, main)
    return PodObservation(
        name=metadata.get("name", ""),
        attempt=int(labels.get(ATTEMPT_LABEL, "1")),
        phase=status.get("phase", "Pending"),
        node=(pod.get("spec") or {}).get("nodeName"),
        index=int(index) if index is not None and str(index).isdigit() else None,
        running_since=running.get("startedAt"),
        exit_code=terminated.get("exitCode"),
        reason=reason,
        message=message,
        started_at=terminated.get("startedAt") or running.get("startedAt"),
        finished_at=terminated.get("finishedAt"),
        deleting=bool(metadata.get("deletionTimestamp")),
        unschedulable=unschedulable if status.get("phase", "Pending") == "Pending" else None,
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        waiting_since=(status.get("startTime") or metadata.get("creationTimestamp")) if waiting else None,
        ip=status.get("podIP") or None,
    )


def observe_kube_job(job: dict[str, Any]) -> KubeJobObservation:
    metadata = job.get("metadata") or {}
    conditions = (job.get("status") or {}).get("conditions") or []
    failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), None)
    complete = any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)
    return KubeJobObservation(
        name=metadata.get("name", ""),
        attempt=int((metadata.get("labels") or {}).get(ATTEMPT_LABEL, "1")),
        uid=metadata.get("uid", ""),
        environment=(metadata.get("annotations") or {}).get(ENVIRONMENT_ANNOTATION, ""),
        failed_reason=failed.get("reason") if failed else None,
        failed_message=failed.get("message") if failed else None,
        complete=complete,
        managed=(job.get("spec") or {}).get("managedBy") == MANAGED_BY,
    )


def _matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def should_retry(
    retry_strategy: Mapping[str, Any], attempts_done: int, status_reason: str | None,
    reason: str | None, exit_code: int | None,
) -> bool:
    """AWS's rules: all given conditions of a rule must match, the first matching rule wins, and
    no match means RETRY while attempts remain."""
    if attempts_done >= int(retry_strategy.get("attempts", 1)):
        return False
    code = None if exit_code is None else str(exit_code)
    for rule in retry_strategy.get("evaluateOnExit") or []:
        if (_matches(rule.get("onStatusReason"), status_reason) and _matches(rule.get("onReason"), reason)
                and _matches(rule.get("onExitCode"), code)):
            return str(rule.get("action", "")).upper() == "RETRY"
    return True


def attempt_record(pod: PodObservation, status_reason: str, stopped_at: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "startedAt": pod.started_at or pod.running_since,
        "stoppedAt": pod.finished_at or stopped_at,
        "exitCode": pod.exit_code,
        "statusReason": status_reason,
        "reason": pod.reason,
        "podName": pod.name,
        "nodeName": pod.node,
    }
    return {k: v for k, v in record.items() if v is not None}


def failure_reason(pod: PodObservation) -> str:
    """The statusReason of a failed pod's attempt."""
    if pod.exit_code is not None:
        return ESSENTIAL_CONTAINER_EXITED
    if pod.reason and pod.reason.startswith(INIT_FAILED):
        return f"{RESOURCE_INITIALIZATION}: {pod.message}"[:MESSAGE_LIMIT]
    detail = f" ({pod.message})" if pod.message else ""
    return f"Pod failed: {pod.reason or 'unknown reason'}{detail}"[:MESSAGE_LIMIT]


def startup_failure_due(pod: PodObservation | None, now_seconds: float, grace_seconds: float,
                        parse: Callable[[str | None], float | None] = parse_time) -> bool:
    """A pod still waits, past the grace period, with a container that cannot start."""
    if pod is None or pod.waiting_reason is None or not pod.active:
        return False
    since = parse(pod.waiting_since)
    return since is None or now_seconds - since >= grace_seconds


def startup_failure_reason(pod: PodObservation) -> str:
    """AWS's words, then Kubernetes' message: `CannotPullContainerError: Back-off pulling image ...`."""
    words = STARTUP_FAILURES.get(pod.waiting_reason or "", CANNOT_CREATE)
    return f"{words}: {pod.waiting_message or pod.waiting_reason}"[:MESSAGE_LIMIT]


def startup_failure_record(pod: PodObservation, stopped_at: str) -> dict[str, Any]:
    """The attempt of a pod that never started: `reason` is the Kubernetes reason (ErrImagePull, ...)
    so that evaluateOnExit's onReason matches it; there is no exit code."""
    record = {"stoppedAt": stopped_at, "statusReason": startup_failure_reason(pod), "reason": pod.waiting_reason,
              "podName": pod.name, "nodeName": pod.node}
    return {k: v for k, v in record.items() if v is not None}


def _failed(attempt: int, retry_strategy: dict[str, Any], record: dict[str, Any], no_more_retries: bool,
            stopped_at: str, started_at: str | None = None, stop_pod: bool = False) -> Outcome:
    status_reason = record["statusReason"]
    retry = not no_more_retries and should_retry(retry_strategy, attempt, status_reason, record.get("reason"),
                                                 record.get("exitCode"))
    return Outcome("RUNNABLE" if retry else "FAILED", status_reason, attempt=record, retry=retry,
                   started_at=started_at, stopped_at=None if retry else stopped_at, stop_pod=stop_pod)


def advance(
    state: str, attempt: int, retry_strategy: dict[str, Any], pod: PodObservation | None,
    kube_job: KubeJobObservation | None, now: str, no_more_retries: bool = False,
    startup_grace_seconds: float | None = None,
) -> Outcome | None:
    """The transition a single (non-array) job's current attempt makes, if any. A pod that cannot
    start is given `startup_grace_seconds` (None: for ever) from `now`, an RFC 3339 time."""
    if state not in ACTIVE:
        return None
    current = pod if pod is not None and pod.attempt == attempt else None
    if current is not None and current.terminated:
        if current.phase == "Succeeded":
            return Outcome("SUCCEEDED", ESSENTIAL_CONTAINER_EXITED,
                           attempt=attempt_record(current, ESSENTIAL_CONTAINER_EXITED, now),
                           started_at=current.started_at, stopped_at=current.finished_at or now)
        return _failed(attempt, retry_strategy, attempt_record(current, failure_reason(current), now),
                       no_more_retries, current.finished_at or now, started_at=current.started_at)
    if current is not None and state == STARTING and current.running_since:
        return Outcome("RUNNING", f"Container running on node {current.node}", started_at=current.running_since)
    if (current is not None and state == STARTING and startup_grace_seconds is not None
            and startup_failure_due(current, parse_time(now) or 0.0, startup_grace_seconds)):
        return _failed(attempt, retry_strategy, startup_failure_record(current, now), no_more_retries, now,
                       stop_pod=True)
    if kube_job is not None and kube_job.attempt == attempt and kube_job.failed_reason and current is None:
        reason = f"Kubernetes Job failed: {kube_job.failed_reason}" + (
            f" ({kube_job.failed_message})" if kube_job.failed_message else "")
        record = {"statusReason": reason, "stoppedAt": now, "reason": kube_job.failed_reason}
        return _failed(attempt, retry_strategy, record, no_more_retries, now)
    return None
