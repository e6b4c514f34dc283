"""A job's life from what its pod and Kubernetes Job show. Pure code: no I/O, an injected clock.

STARTING lasts from the creation of the Kubernetes Job until the main container runs; RUNNING
until it terminates. A failed attempt goes back to RUNNABLE when attempts remain and the retry
rules say RETRY; cancel, terminate and timeout are never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from barge.core.states import (
    ACTIVE,
    ATTEMPT_LABEL,
    COMPLETION_INDEX_ANNOTATION,
    ENVIRONMENT_ANNOTATION,
    ESSENTIAL_CONTAINER_EXITED,
)


@dataclass(frozen=True, slots=True)
class PodObservation:
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


@dataclass(frozen=True)
class Outcome:
    """The next state of a job, or None fields when nothing changes."""
    state: str
    status_reason: str
    attempt: dict[str, Any] | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    retry: bool = False


def _main_container_status(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    main = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    for status in statuses:
        if status.get("name") == main:
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def observe_pod(pod: dict[str, Any]) -> PodObservation:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    index = (metadata.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    state = _main_container_status(pod).get("state") or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    status = pod.get("status") or {}
    scheduled: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
    unschedulable = scheduled.get("message") if scheduled.get("reason") == "Unschedulable" else None
    return PodObservation(
        name=metadata.get("name", ""),
        attempt=int(labels.get(ATTEMPT_LABEL, "1")),
        phase=status.get("phase", "Pending"),
        node=(pod.get("spec") or {}).get("nodeName"),
        index=int(index) if index is not None and str(index).isdigit() else None,
        running_since=running.get("startedAt"),
        exit_code=terminated.get("exitCode"),
        reason=terminated.get("reason") or status.get("reason"),
        message=terminated.get("message") or status.get("message"),
        started_at=terminated.get("startedAt") or running.get("startedAt"),
        finished_at=terminated.get("finishedAt"),
        deleting=bool(metadata.get("deletionTimestamp")),
        unschedulable=unschedulable if status.get("phase", "Pending") == "Pending" else None,
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


def advance(
    state: str, attempt: int, retry_strategy: dict[str, Any], pod: PodObservation | None,
    kube_job: KubeJobObservation | None, now: str, no_more_retries: bool = False,
) -> Outcome | None:
    """The transition a single (non-array) job's current attempt makes, if any."""
    if state not in ACTIVE:
        return None
    if pod is not None and pod.attempt == attempt and pod.terminated:
        if pod.phase == "Succeeded":
            return Outcome("SUCCEEDED", ESSENTIAL_CONTAINER_EXITED,
                           attempt=attempt_record(pod, ESSENTIAL_CONTAINER_EXITED, now),
                           started_at=pod.started_at, stopped_at=pod.finished_at or now)
        reason = ESSENTIAL_CONTAINER_EXITED if pod.exit_code is not None else (
            f"Pod failed: {pod.reason or 'unknown reason'}" + (f" ({pod.message})" if pod.message else ""))
        record = attempt_record(pod, reason, now)
        retry = not no_more_retries and should_retry(retry_strategy, attempt, reason, pod.reason, pod.exit_code)
        return Outcome("RUNNABLE" if retry else "FAILED", reason, attempt=record, retry=retry,
                       started_at=pod.started_at, stopped_at=None if retry else (pod.finished_at or now))
    if pod is not None and pod.attempt == attempt and state == "STARTING" and pod.running_since:
        return Outcome("RUNNING", f"Container running on node {pod.node}", started_at=pod.running_since)
    if kube_job is not None and kube_job.attempt == attempt and kube_job.failed_reason and (
            pod is None or pod.attempt != attempt):
        reason = f"Kubernetes Job failed: {kube_job.failed_reason}" + (
            f" ({kube_job.failed_message})" if kube_job.failed_message else "")
        retry = not no_more_retries and should_retry(retry_strategy, attempt, reason, kube_job.failed_reason, None)
        return Outcome("RUNNABLE" if retry else "FAILED", reason,
                       attempt={"statusReason": reason, "stoppedAt": now}, retry=retry,
                       stopped_at=None if retry else now)
    return None
