"""The five kinds of barge.dev/v1alpha1 as pydantic models: the single source of the CRD schemas.

Field names follow ../shared/design/api.md (AWS Batch's camelCase). `Cel(...)` attaches
x-kubernetes-validations; `crdgen` turns these models into structural OpenAPI schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from barge.core.labels import (
    LABEL_KEY_MAX,
    LABEL_KEY_PATTERN,
    LABEL_KEY_WORDS,
    LABEL_PREFIX_MAX,
    LABEL_VALUE_PATTERN,
    label_key_problem,
    label_value_problem,
)
from barge.core.states import API_VERSION, JOB_STATES, TIME_LIMITED_REASONS

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # RFC 1123 label: a container's name
# resource.Quantity's grammar without the minus sign: "500m", "1.5Gi", "1e3", "+2" (never negative).
QUANTITY_PATTERN = r"^[+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
RESERVED_ENV = "AWS_BATCH"
# Kubernetes (1.34+, and 1.32+ by default) takes any printable ASCII but "=" in an env name.
ENV_NAME_PATTERN = r"^[ -<>-~]+$"
# No leading or trailing space: Kubernetes refuses such an image in a pod.
IMAGE_PATTERN = r"^[^\s](.*[^\s])?$"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
State = Literal["ENABLED", "DISABLED"]


def OneOf(values: tuple[str, ...]) -> Any:
    """A string restricted to `values` (an enum in the schema), from the vocabulary in core.states."""
    return Field(json_schema_extra={"enum": list(values)})


def Cel(*rules: tuple[str, str] | dict[str, str]) -> dict[str, Any]:
    """x-kubernetes-validations from (rule, message) pairs, or whole rules (with fieldPath,
    messageExpression)."""
    return {"x-kubernetes-validations": [r if isinstance(r, dict) else {"rule": r[0], "message": r[1]}
                                         for r in rules]}


def label_key_rule(var: str) -> str:
    """CEL: `var` (a string) is a label key. CEL's matches() is RE2, as the OpenAPI patterns are."""
    return (f"{var}.matches('{LABEL_KEY_PATTERN}')"
            f" && (!{var}.contains('/') || {var}.indexOf('/') <= {LABEL_PREFIX_MAX})")


def toleration_problem(toleration: Any) -> str | None:
    """Why a toleration is not one Kubernetes accepts, as "<.field>: why", or None."""
    if not isinstance(toleration, dict):
        return ": must be an object with key, operator, value, effect"
    key, value = toleration.get("key") or "", toleration.get("value") or ""
    operator, effect = toleration.get("operator") or "Equal", toleration.get("effect") or ""
    if key and (why := label_key_problem(key)):
        return f".key: {why}"
    if operator not in ("Exists", "Equal"):
        return f".operator: {operator!r} is not Exists or Equal"
    if not key and operator != "Exists":
        return ".operator: must be Exists when key is empty"
    if operator == "Exists" and value:
        return ".value: must be empty when operator is Exists"
    if why := label_value_problem(value):
        return f".value: {why}"
    if effect and effect not in TAINT_EFFECTS:
        return f".effect: {effect!r} is not one of {', '.join(TAINT_EFFECTS)}"
    if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
        return ".tolerationSeconds: needs effect NoExecute"
    return None


# Kubernetes shapes we accept without restating their whole schema.
PreservedObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                    "pattern": QUANTITY_PATTERN, "minimum": 0}),
]
# A quantity in a pod template: also a plain number (`cpu: 0.5`), as Kubernetes takes it there. A
# structural schema has no "number or string" type, so the node is untyped; pattern and minimum
# still refuse "abc", "-1" and -1.
PodQuantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True, "pattern": QUANTITY_PATTERN, "minimum": 0,
                    "description": "a quantity: 2, 0.5, \"500m\", \"1Gi\""}),
]
ShortString = Annotated[str, Field(max_length=256)]
Name = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]
StringMap = Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=100)]
Tags = Annotated[
    dict[str, Annotated[str, Field(max_length=256)]],
    Field(max_length=100, json_schema_extra=Cel(
        ("self.all(k, size(k) >= 1 && size(k) <= 128)", "tag keys must be 1 to 128 characters (as in AWS)"))),
]
LabelMap = Annotated[
    dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]],
    Field(max_length=100, json_schema_extra=Cel({
        "rule": f"self.all(k, {label_key_rule('k')})",
        "message": f"every key must be {LABEL_KEY_WORDS}",
        "messageExpression": f"\"key '\" + self.filter(k, !({label_key_rule('k')}))[0]"
                             f" + \"' is not {LABEL_KEY_WORDS}\"",
    })),
]


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
    model_config = ConfigDict(extra="forbid", json_schema_extra=Cel(
        {"rule": f"!has(self.key) || self.key == '' || !self.key.contains('/')"
                 f" || self.key.indexOf('/') <= {LABEL_PREFIX_MAX}",
         "message": "the key's prefix (before '/') must be at most 253 characters", "fieldPath": ".key"},
        {"rule": "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
         "message": "operator must be Exists when key is empty (a toleration of every taint)",
         "fieldPath": ".operator"},
        {"rule": "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
         "message": "value must be empty when operator is Exists", "fieldPath": ".value"},
        {"rule": "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
         "message": "tolerationSeconds needs effect NoExecute", "fieldPath": ".tolerationSeconds"},
    ))
    key: str | None = Field(None, max_length=LABEL_KEY_MAX, pattern=LABEL_KEY_PATTERN)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(None, max_length=63, pattern=LABEL_VALUE_PATTERN)
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
    nodeSelector: LabelMap = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=50)
    affinity: PreservedObject | None = Field(None, description="A pod affinity, e.g. nodeAffinity.")
    type: Literal["EC2", "SPOT"] | None = Field(
        None, description="MANAGED only: the capacity its NodePool asks Karpenter for: EC2 (on-demand, "
                          "the default) or SPOT (karpenter.sh/capacity-type).")
    instanceTypes: list[Annotated[str, Field(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)]] = Field(
        default_factory=list, max_length=50,
        description="MANAGED only: the instance types its nodes may be (node.kubernetes.io/instance-type); "
                    "empty or 'optimal': any the node class offers.")
    allocationStrategy: Literal["BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED",
                                "SPOT_PRICE_CAPACITY_OPTIMIZED"] | None = Field(
        None, description="MANAGED only: AWS's instance choice. Karpenter always picks the cheapest instance "
                          "types that fit the waiting pods (BEST_FIT_PROGRESSIVE; for SPOT, price and capacity "
                          "optimized); the value is kept on the NodePool (annotation barge.dev/allocation-strategy). "
                          "The SPOT_* strategies need type SPOT.")


class ComputeEnvironmentSpec(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=Cel(
            {"rule": "self.type == 'MANAGED' || !has(self.computeResources.minvCpus)"
                     " || self.computeResources.minvCpus == 0",
             "message": "minvCpus applies only to MANAGED environments "
                        "(an UNMANAGED one uses the nodes that exist)",
             "fieldPath": ".computeResources.minvCpus"},
            {"rule": "self.type == 'MANAGED' || !has(self.computeResources.desiredvCpus)",
             "message": "desiredvCpus applies only to MANAGED environments "
                        "(an UNMANAGED one uses the nodes that exist)",
             "fieldPath": ".computeResources.desiredvCpus"},
            {"rule": "self.type == 'MANAGED' || !has(self.computeResources.type)",
             "message": "computeResources.type (EC2 or SPOT) applies only to MANAGED environments",
             "fieldPath": ".computeResources.type"},
            {"rule": "self.type == 'MANAGED' || !has(self.computeResources.allocationStrategy)",
             "message": "allocationStrategy applies only to MANAGED environments",
             "fieldPath": ".computeResources.allocationStrategy"},
            {"rule": "!has(self.computeResources.allocationStrategy)"
                     " || !self.computeResources.allocationStrategy.startsWith('SPOT_')"
                     " || (has(self.computeResources.type) && self.computeResources.type == 'SPOT')",
             "message": "allocationStrategy SPOT_CAPACITY_OPTIMIZED and SPOT_PRICE_CAPACITY_OPTIMIZED need "
                        "computeResources.type SPOT (as in AWS)",
             "fieldPath": ".computeResources.allocationStrategy"},
            {"rule": "self.type == 'MANAGED' || !has(self.computeResources.instanceTypes)"
                     " || size(self.computeResources.instanceTypes) == 0",
             "message": "instanceTypes applies only to MANAGED environments",
             "fieldPath": ".computeResources.instanceTypes"},
        ),
    )
    type: Literal["MANAGED", "UNMANAGED"] = Field(
        "UNMANAGED", json_schema_extra=Cel(("self == oldSelf", "type is immutable")),
        description="UNMANAGED (the default): the nodes that match computeResources.nodeSelector. MANAGED: "
                    "nodes provisioned by Karpenter through one NodePool per environment (Karpenter must be "
                    "installed; where its API is not served the environment is INVALID).")
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
    provisionedvCpus: int | None = Field(None, description="MANAGED: vCPUs of the nodes its NodePool provisioned")
    nodes: int | None = Field(None, description="MANAGED: how many nodes its NodePool provisioned")
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


class LabelSelectorRequirement(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra=Cel(
        ("self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
         " : !has(self.values) || size(self.values) == 0",
         "values: In and NotIn need at least one value; Exists and DoesNotExist take none")))
    key: Annotated[str, Field(min_length=1, max_length=LABEL_KEY_MAX, json_schema_extra=Cel(
        (label_key_rule("self"), f"must be {LABEL_KEY_WORDS}")))]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]] = Field(
        default_factory=list, max_length=50)


class LabelSelector(Model):
    """metav1.LabelSelector: every requirement must hold; an empty selector selects everything."""
    matchLabels: LabelMap = Field(default_factory=dict)
    matchExpressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=20)


class JobQueueSpec(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra=Cel(
        ("has(self.schedulingPolicy) == has(oldSelf.schedulingPolicy)",
         "spec.schedulingPolicy: a FIFO queue cannot become a fair-share queue nor the reverse (as in AWS); "
         "another policy may be named"),
    ))
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
    schedulingPolicy: Name | None = Field(
        None, description="The SchedulingPolicy that makes this a fair-share queue; absent: a FIFO queue.")
    maxRunningJobs: int | None = Field(
        None, ge=1, description="At most this many jobs (array children included) in STARTING or RUNNING "
                                "(beyond AWS); absent: no cap.")
    namespaceSelector: LabelSelector | None = Field(
        None, description="Only jobs from the namespaces it selects may use the queue (beyond AWS); absent: all.")


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
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN,
                               description="printable ASCII other than '='")]
    value: str | None = None


EnvList = Annotated[list[EnvVar], Field(max_length=200, json_schema_extra=Cel(_no_reserved_env()))]


class ContainerResources(Model):
    """A container's resources: requests and limits are checked, `claims` passes through."""
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    requests: dict[str, PodQuantity] | None = None
    limits: dict[str, PodQuantity] | None = None


class Container(Model):
    """A container of the pod template; fields other than these pass through unchanged."""
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    image: str = Field(min_length=1, pattern=IMAGE_PATTERN, description="Required, as in AWS Batch.")
    command: list[str] | None = None
    args: list[str] | None = None
    env: EnvList | None = None
    resources: ContainerResources | None = None


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


# "2", "0:3", "4:" (to the last node) or ":3" (from node 0), as AWS's targetNodes.
TARGET_NODES_PATTERN = r"^([0-9]+|[0-9]+:[0-9]*|:[0-9]+)$"
MAX_NODES = 1000  # AWS's limit on numNodes


class NodeRangeProperty(Model):
    targetNodes: str = Field(max_length=16, pattern=TARGET_NODES_PATTERN, description=(
        "the nodes this template runs on: \"2\", \"0:3\" (0 to 3), \"4:\" (4 to the last), \":3\""))
    template: PodTemplateSpec


class NodeProperties(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra=Cel(
        {"rule": "self.mainNode < self.numNodes", "message": "mainNode must be less than numNodes",
         "fieldPath": ".mainNode"},
    ))
    numNodes: int = Field(ge=1, le=MAX_NODES, description="how many nodes (pods) the job runs, placed all at once")
    mainNode: int = Field(0, ge=0, lt=MAX_NODES, description="the index of the node whose exit is the job's outcome")
    nodeRangeProperties: list[NodeRangeProperty] = Field(
        min_length=1, max_length=5, description="a pod template per range of nodes; every node in exactly one")


class JobDefinitionSpec(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra=Cel(
        ("has(self.template) != has(self.nodeProperties)",
         "exactly one of spec.template (a one-pod job) and spec.nodeProperties (a multi-node parallel job)"),
    ))
    template: PodTemplateSpec | None = None
    nodeProperties: NodeProperties | None = Field(None, description="a multi-node parallel job: a gang of pods")
    parameters: StringMap = Field(default_factory=dict)
    retryStrategy: RetryStrategy | None = None
    timeout: Timeout | None = None
    schedulingPriority: int | None = Field(None, ge=0, le=9999)
    propagateTags: bool = False
    tags: Tags = Field(default_factory=dict)


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
    size: int = Field(ge=2, le=100000,
                      json_schema_extra=Cel(("self == oldSelf", "spec.arrayProperties.size is immutable")))
    maxParallel: int | None = Field(
        None, ge=1, description="At most this many children in STARTING or RUNNING (beyond AWS, as Slurm's %N); "
                                "may be changed while the array runs")


class NodeOverrides(Model):
    numNodes: int | None = Field(None, ge=1, le=MAX_NODES,
                                 description="replaces the definition's numNodes (mainNode must stay below it)")


class Dependency(Model):
    jobName: Name | None = None
    jobId: str | None = Field(None, max_length=64)
    type: Literal["N_TO_N", "SEQUENTIAL"] | None = None
    condition: Literal["Succeeded", "Failed", "Finished"] = "Succeeded"


class Reason(Model):
    reason: str = Field("", max_length=1024)


IMMUTABLE_SPEC_FIELDS = (
    "jobDefinition", "jobQueue", "parameters", "overrides", "retryStrategy", "timeout",
    "dependsOn", "shareIdentifier", "tags", "nodeOverrides",
)
# A job's share identifier: no '*' (that is a policy's prefix match).
SHARE_IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.-]{1,255}$"
SHARE_ENTRY_PATTERN = r"^[A-Za-z0-9_.-]{1,255}[*]?$|^[*]$"


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
            ("has(self.arrayProperties) == has(oldSelf.arrayProperties)",
             "spec.arrayProperties cannot be added or removed once submitted"),
            _final("cancel"),
            _final("terminate"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, !has(d.type) || d.type != 'SEQUENTIAL'"
             " || has(self.arrayProperties))",
             "dependsOn type SEQUENTIAL needs spec.arrayProperties (it orders the array's own children)"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, (has(d.type) && d.type == 'SEQUENTIAL')"
             " || has(d.jobName) || has(d.jobId))",
             "dependsOn: jobName or jobId is required unless type is SEQUENTIAL"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, !(has(d.jobName) && has(d.jobId)))",
             "dependsOn: give jobName or jobId, not both"),
            ("!has(self.dependsOn) || self.dependsOn.all(d, !has(d.type) || d.type != 'N_TO_N'"
             " || has(self.arrayProperties))",
             "dependsOn type N_TO_N needs spec.arrayProperties"),
            ("!has(self.nodeOverrides) || !has(self.arrayProperties)",
             "spec.nodeOverrides and spec.arrayProperties cannot be combined (a multi-node job is not an array)"),
        ),
    )
    jobDefinition: Name
    jobQueue: Name
    parameters: StringMap = Field(default_factory=dict)
    overrides: Overrides | None = None
    retryStrategy: RetryStrategy | None = None
    timeout: Timeout | None = None
    arrayProperties: ArrayProperties | None = None
    nodeOverrides: NodeOverrides | None = None
    dependsOn: list[Dependency] | None = Field(None, max_length=20)
    schedulingPriorityOverride: int | None = Field(
        None, ge=0, le=9999, description="Replaces the definition's schedulingPriority; may be changed while the "
                                         "job waits (SUBMITTED, PENDING, RUNNABLE)")
    shareIdentifier: str | None = Field(
        None, max_length=255, pattern=SHARE_IDENTIFIER_PATTERN,
        description="The fair share this job counts against; required on a fair-share queue, refused on a FIFO one")
    tags: Tags = Field(default_factory=dict)
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
    schedulingPriority: int = Field(0, description="the definition's, at submission")
    nodeProperties: PreservedObject | None = Field(
        None, description="a multi-node job's numNodes, mainNode and resolved nodeRangeProperties")


class ArrayStatus(Model):
    size: int
    statusSummary: dict[str, int] = Field(default_factory=dict)
    succeededIndices: str = Field("", description="index ranges, e.g. 0-9,12")
    failedIndices: str = ""
    failureCounts: dict[str, str] = Field(default_factory=dict, description="failed attempts per index range")
    children: PreservedObject = Field(default_factory=dict, description="attempts of the first failed children")


class NodeStatus(Model):
    nodeIndex: int
    podName: str | None = None
    nodeName: str | None = None
    podIP: str | None = None
    exitCode: int | None = None
    reason: str | None = None


class NodePropertiesStatus(Model):
    numNodes: int
    mainNode: int
    nodes: list[NodeStatus] = Field(default_factory=list, description="each node of the current or last attempt")


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
    nodeProperties: NodePropertiesStatus | None = None
    waiting: Waiting | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


_OVERRIDE = "self.spec.schedulingPriorityOverride"
_OLD_OVERRIDE = "oldSelf.spec.schedulingPriorityOverride"


class BatchJob(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=Cel({
        "rule": f"(has({_OVERRIDE}) == has({_OLD_OVERRIDE}) && (!has({_OVERRIDE}) || {_OVERRIDE} == {_OLD_OVERRIDE}))"
                " || !has(oldSelf.status) || !has(oldSelf.status.state)"
                " || oldSelf.status.state in ['SUBMITTED', 'PENDING', 'RUNNABLE']",
        "message": "spec.schedulingPriorityOverride may be changed only while the job waits "
                   "(SUBMITTED, PENDING, RUNNABLE)",
        "fieldPath": ".spec.schedulingPriorityOverride",
    }))
    apiVersion: str = API_VERSION
    kind: Literal["BatchJob"] = "BatchJob"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: BatchJobSpec
    status: BatchJobStatus | None = None


# --- SchedulingPolicy ------------------------------------------------------------------------

class ShareAttributes(Model):
    shareIdentifier: str = Field(max_length=256, pattern=SHARE_ENTRY_PATTERN,
                                 description="a share identifier; a trailing '*' matches every identifier it begins")
    weightFactor: float = Field(1.0, ge=0.0001, le=999.9999,
                                description="lower is a larger share: 0.5 gets twice the vCPUs of 1.0")


class FairsharePolicy(Model):
    shareDecaySeconds: int = Field(0, ge=0, le=604800,
                                   description="the window usage decays over; 0: AWS's default of 600 seconds")
    computeReservation: int = Field(0, ge=0, le=99, description=(
        "keeps (computeReservation/100)^activeShares of maxvCpus free for shares with no running job"))
    shareDistribution: list[ShareAttributes] = Field(
        default_factory=list, max_length=500,
        # the API server keeps shareIdentifier unique (a list-map), at no CEL cost
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["shareIdentifier"]})


class SchedulingPolicySpec(Model):
    fairsharePolicy: FairsharePolicy = Field(default_factory=lambda: FairsharePolicy.model_validate({}))


class ShareStatus(Model):
    shareIdentifier: str
    weightFactor: float = Field(description="the weight in effect (n*w for each of n identifiers of a prefix entry)")
    usage: float = Field(0, description="decayed vCPU-seconds")
    runningvCpus: float = 0
    runnableJobs: int = 0


class SchedulingPolicyStatus(Model):
    shares: list[ShareStatus] | None = None
    usageAt: str | None = Field(None, description="when `usage` was computed (RFC 3339)")
    busiest: str | None = Field(None, description="the shares with the most usage, for the printer column")
    activeShares: int | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


class SchedulingPolicy(Model):
    apiVersion: str = API_VERSION
    kind: Literal["SchedulingPolicy"] = "SchedulingPolicy"
    metadata: PreservedObject = Field(default_factory=dict)
    spec: SchedulingPolicySpec
    status: SchedulingPolicyStatus | None = None
