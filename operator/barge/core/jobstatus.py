"""The shapes of a BatchJob's status as the operator writes it: typed merge patches, no pydantic
on the hot path. `barge.api.models.BatchJobStatus` declares the same fields for the CRD schema
(a unit test keeps the two equal)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class Waiting(TypedDict):
    category: str  # AWS's statusReason category, e.g. CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY
    since: float  # when the job started waiting for it (the time limit's clock)


class Request(TypedDict):
    cpuMilli: int
    memory: int
    gpus: int


class ResolvedJob(TypedDict):
    template: dict[str, Any]
    retryStrategy: dict[str, Any]
    timeoutSeconds: int | None
    labels: dict[str, str]
    request: Request
    schedulingPriority: NotRequired[int]  # the definition's, at submission (absent in jobs admitted before)
    nodeProperties: NotRequired[dict[str, Any]]  # a multi-node job's resolved nodes (core.gangs)


class AttemptStatus(TypedDict, total=False):
    startedAt: str
    stoppedAt: str
    exitCode: int
    statusReason: str
    reason: str
    podName: str
    nodeName: str


class JobStatusPatch(TypedDict, total=False):
    """A merge patch of status: a key present with None removes the field."""
    jobId: str
    state: str
    statusReason: str
    createdAt: str
    startedAt: str
    stoppedAt: str
    attempts: list[AttemptStatus]
    attemptCount: int
    currentAttempt: int
    attemptStartedAt: str
    computeEnvironment: str | None
    jobQueue: str
    kubernetesJob: str
    isCancelled: bool
    isTerminated: bool
    arrayProgress: str
    arrayProperties: dict[str, Any]
    queuedAt: float
    nodeProperties: dict[str, Any]
    resolved: ResolvedJob
    waiting: Waiting | None
    observedGeneration: int
    conditions: list[dict[str, Any]]
