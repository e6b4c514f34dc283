"""The four kinds of barge.dev/v1alpha1 as pydantic models: the single source of the CRD schemas.

Field names follow ../shared/design/api.md (AWS Batch's camelCase). `Cel(...)` attaches
x-kubernetes-validations; `crdgen` turns these models into structural OpenAPI schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from barge.core.states import API_VERSION, JOB_STATES, TIME_LIMITED_REASONS

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
RESERVED_ENV = "AWS_BATCH"
State = Literal["ENABLED", "DISABLED"]


def OneOf(values: tuple[str, ...]) -> Any:
    """A string restricted to `values` (an enum in the schema), from the vocabulary in core.states."""
    return Field(json_schema_extra={"enum": list(values)})


def Cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """x-kubernetes-validations from (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


# Kubernetes shapes we accept without restating their whole schema.
PreservedObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN}),
]
ShortString = Annotated[str, Field(max_length=256)]
Name = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]
StringMap = Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=100)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    lastTransitionTime: str
    observedGeneration: int | None = None


class Toleration(Model):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


# --- ComputeEnvironment ----------------------------------------------------------------------

class ComputeResources(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=Cel(("!has(self.minvCpus) || self.minvCpus <= self.maxvCpus",
                               "minvCpus must not exceed maxvCpus")),
    )
    minvCpus: int = Field(0, ge=0)
    maxvCpus: int = Field(ge=0, description="The quota: sum of CPU requests of admitted pods.")
    desiredvCpus: int | None = Field(None, ge=0)
    maxMemory: Quantity | None = Field(None, description="Memory quota (beyond AWS); unset: none.")
    maxGpus: int | None = Field(None, ge=0, description="GPU quota (beyond AWS); unset: no GPUs.")
    nodeSelector: StringMap = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=50)
    affinity: PreservedObject | None = Field(None, description="A pod affinity, e.g. nodeAffinity.")


class ComputeEnvironmentSpec(Model):
    type: Literal["MANAGED", "UNMANAGED"] = Field(
        "MANAGED", json_schema_extra=Cel(("self == oldSelf", "type is immutable")))
    state: State = "ENABLED"
    computeResources: ComputeResources


class Usage(Model):
    vcpus: str = "0"
    memory: str = "0"
    gpus: int = 0


class ComputeEnvironmentStatus(Model):
    state: State | None = None
    status: Literal["VALID", "INVALID"] | None = None
    statusReason: str | None = None
    usage: Usage | None = None
    vcpuUsage: str | None = Field(None, description="used/max vCPU, for the printer column")
    desiredvCpus: int | None = None
    jobCounts: dict[str, int] | None = None
    queues: list[str] | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


class ComputeEnvironment(Model):
    apiVersion: str = API_VERSION
    kind: Literal["ComputeEnvironment"] = "ComputeEnvironment"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: ComputeEnvironmentSpec
    status: ComputeEnvironmentStatus | None = None


# --- JobQueue --------------------------------------------------------------------------------

class ComputeEnvironmentOrder(Model):
    order: int = Field(ge=0)
    computeEnvironment: Name


class JobStateTimeLimitAction(Model):
    reason: Annotated[str, OneOf(TIME_LIMITED_REASONS)]
    state: Literal["RUNNABLE"] = "RUNNABLE"
    maxTimeSeconds: int = Field(ge=600, le=86400)
    action: Literal["CANCEL"] = "CANCEL"


class JobQueueSpec(Model):
    priority: int = Field(0, ge=0)
    state: State = "ENABLED"
    computeEnvironmentOrder: list[ComputeEnvironmentOrder] = Field(
        min_length=1, max_length=10,
        json_schema_extra=Cel(
            ("self.all(a, self.exists_one(b, b.order == a.order))", "order values must be unique"),
            ("self.all(a, self.exists_one(b, b.computeEnvironment == a.computeEnvironment))",
             "a compute environment may appear only once"),
        ),
    )
    jobStateTimeLimitActions: list[JobStateTimeLimitAction] = Field(default_factory=list, max_length=5)
    schedulingPolicy: Name | None = Field(None, description="Fair-share policy (phase 2).")


class JobQueueStatus(Model):
    state: State | None = None
    status: Literal["VALID", "INVALID"] | None = None
    statusReason: str | None = None
    jobCounts: dict[str, int] | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


class JobQueue(Model):
    apiVersion: str = API_VERSION
    kind: Literal["JobQueue"] = "JobQueue"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: JobQueueSpec
    status: JobQueueStatus | None = None


# --- JobDefinition ---------------------------------------------------------------------------

def _no_reserved_env(field: str = "self") -> tuple[str, str]:
    return (f"{field}.all(e, !e.name.startsWith('{RESERVED_ENV}'))",
            f"environment variable names starting with {RESERVED_ENV} are reserved for Barge")


class EnvVar(Model):
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    name: Annotated[str, Field(min_length=1, max_length=256)]
    value: str | None = None


EnvList = Annotated[list[EnvVar], Field(max_length=200, json_schema_extra=Cel(_no_reserved_env()))]


class Container(Model):
    """A container of the pod template; fields other than these pass through unchanged."""
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    name: Annotated[str, Field(min_length=1, max_length=63)]
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: EnvList | None = None


class PodSpec(Model):
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    containers: list[Container] = Field(min_length=1, max_length=20)
    initContainers: list[Container] | None = Field(None, max_length=20)


class PodTemplateSpec(Model):
    metadata: PreservedObject | None = None
    spec: PodSpec


class EvaluateOnExit(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=Cel(("has(self.onStatusReason) || has(self.onReason) || has(self.onExitCode)",
                               "a rule needs at least one of onStatusReason, onReason, onExitCode")),
    )
    onStatusReason: str | None = Field(None, max_length=512, pattern=r"^[ -~]*$")
    onReason: str | None = Field(None, max_length=512, pattern=r"^[ -~]*$")
    onExitCode: str | None = Field(None, max_length=512, pattern=r"^[0-9]*\*?$")
    action: Literal["RETRY", "EXIT"]


class RetryStrategy(Model):
    attempts: int = Field(1, ge=1, le=10)
    evaluateOnExit: list[EvaluateOnExit] = Field(default_factory=list, max_length=5)


class Timeout(Model):
    attemptDurationSeconds: int = Field(ge=60)


class JobDefinitionSpec(Model):
    template: PodTemplateSpec
    parameters: StringMap = Field(default_factory=dict)
    retryStrategy: RetryStrategy | None = None
    timeout: Timeout | None = None
    schedulingPriority: int | None = Field(None, ge=0, le=9999)
    propagateTags: bool = False
    tags: StringMap = Field(default_factory=dict)


class JobDefinition(Model):
    apiVersion: str = API_VERSION
    kind: Literal["JobDefinition"] = "JobDefinition"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: JobDefinitionSpec
    status: PreservedObject | None = None


# --- BatchJob --------------------------------------------------------------------------------

class Resources(Model):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class Overrides(Model):
    command: list[str] | None = Field(None, max_length=200)
    args: list[str] | None = Field(None, max_length=200)
    env: EnvList | None = None
    resources: Resources | None = None
    vcpus: float | None = Field(None, gt=0, le=10000, description="AWS-style shortcut for cpu requests")
    memory: int | None = Field(None, gt=0, description="AWS-style shortcut: memory in MiB")
    gpus: int | None = Field(None, ge=0, description="AWS-style shortcut: nvidia.com/gpu")


class ArrayProperties(Model):
    size: int = Field(ge=2, le=100000)


class Dependency(Model):
    jobName: Name | None = None
    type: Literal["N_TO_N", "SEQUENTIAL"] | None = None
    condition: Literal["Succeeded", "Failed", "Finished"] = "Succeeded"


class Reason(Model):
    reason: str = Field("", max_length=1024)


IMMUTABLE_SPEC_FIELDS = (
    "jobDefinition", "jobQueue", "parameters", "overrides", "retryStrategy", "timeout",
    "arrayProperties", "dependsOn", "schedulingPriorityOverride", "shareIdentifier", "tags",
)


def _immutable(field: str) -> tuple[str, str]:
    return (f"has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})",
            f"spec.{field} is immutable once submitted")


def _final(field: str) -> tuple[str, str]:
    return (f"!has(oldSelf.{field}) || (has(self.{field}) && self.{field} == oldSelf.{field})",
            f"spec.{field} is final: once set it cannot be changed or removed")


class BatchJobSpec(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=Cel(
            *[_immutable(f) for f in IMMUTABLE_SPEC_FIELDS],
            _final("cancel"),
            _final("terminate"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, !has(d.type) || d.type != 'SEQUENTIAL'"
             " || has(self.arrayProperties))",
             "dependsOn type SEQUENTIAL needs spec.arrayProperties (it orders the array's own children)"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, (has(d.type) && d.type == 'SEQUENTIAL')"
             " || has(d.jobName))",
             "dependsOn: jobName is required unless type is SEQUENTIAL"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, !has(d.type) || d.type != 'N_TO_N'"
             " || has(self.arrayProperties))",
             "dependsOn type N_TO_N needs spec.arrayProperties"),
        ),
    )
    jobDefinition: Name
    jobQueue: Name
    parameters: StringMap = Field(default_factory=dict)
    overrides: Overrides | None = None
    retryStrategy: RetryStrategy | None = None
    timeout: Timeout | None = None
    arrayProperties: ArrayProperties | None = None
    dependsOn: list[Dependency] | None = Field(None, max_length=20)
    schedulingPriorityOverride: int | None = Field(None, ge=0, le=9999)
    shareIdentifier: str | None = Field(None, max_length=255)
    tags: StringMap = Field(default_factory=dict)
    cancel: Reason | None = None
    terminate: Reason | None = None


class Attempt(Model):
    startedAt: str | None = None
    stoppedAt: str | None = None
    exitCode: int | None = None
    statusReason: str | None = None
    reason: str | None = Field(None, description="The container's termination reason (OOMKilled, Error, ...)")
    podName: str | None = None
    nodeName: str | None = None


class Waiting(Model):
    category: str = Field(description="AWS's statusReason category the job waits for")
    since: float = Field(description="when it started waiting for it (seconds since the epoch)")


class ResolvedRequest(Model):
    cpuMilli: int = 0
    memory: int = 0
    gpus: int = 0


class ResolvedJob(Model):
    """The job as it runs, resolved once at admission: editing the definition later changes nothing."""
    template: PreservedObject
    retryStrategy: PreservedObject
    timeoutSeconds: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    request: ResolvedRequest


class ArrayStatus(Model):
    size: int
    statusSummary: dict[str, int] = Field(default_factory=dict)
    succeededIndices: str = Field("", description="index ranges, e.g. 0-9,12")
    failedIndices: str = ""
    failureCounts: dict[str, str] = Field(default_factory=dict, description="failed attempts per index range")
    children: PreservedObject = Field(default_factory=dict, description="attempts of the first failed children")


class BatchJobStatus(Model):
    model_config = ConfigDict(extra="forbid")
    jobId: str | None = None
    state: Annotated[str, OneOf(JOB_STATES)] | None = None
    statusReason: str | None = None
    createdAt: str | None = None
    startedAt: str | None = None
    stoppedAt: str | None = None
    attempts: list[Attempt] | None = None
    attemptCount: int | None = None
    computeEnvironment: str | None = None
    jobQueue: str | None = None
    kubernetesJob: str | None = None
    isCancelled: bool | None = None
    isTerminated: bool | None = None
    arrayProgress: str | None = None
    arrayProperties: ArrayStatus | None = None
    currentAttempt: int | None = Field(None, description="the attempt in flight or next (1-based)")
    attemptStartedAt: str | None = Field(None, description="when the current attempt's container started")
    queuedAt: float | None = Field(None, description="when it entered its queue's order (seconds since the epoch)")
    resolved: ResolvedJob | None = None
    waiting: Waiting | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


class BatchJob(Model):
    apiVersion: str = API_VERSION
    kind: Literal["BatchJob"] = "BatchJob"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: BatchJobSpec
    status: BatchJobStatus | None = None
