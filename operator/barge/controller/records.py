"""Compact views of watched objects, built once per watch event: BatchJobs in the store, compute
environments and queues in kopf's indexes."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from barge.api.models import toleration_problem
from barge.core import nodepools
from barge.core.fairshare import Policy, ShareEntry
from barge.core.labels import label_key_problem, label_value_problem
from barge.core.manifests import Placement
from barge.core.noderoom import Node, Pool, Taint
from barge.core.resolve import Resolved
from barge.core.resources import (
    GPU_RESOURCE,
    Capacity,
    Resources,
    parse_bytes,
    parse_count,
    parse_cpu_milli,
    pod_requests,
)
from barge.core.scheduler import Environment, Queue, TimeLimitAction
from barge.core.states import API_VERSION, ENABLED, JOB_ID_LABEL

JobKey = tuple[str, str]


def resource_version(metadata: dict[str, Any]) -> int:
    # etcd revisions are integers; ordering by them lets our own writes win over stale events.
    try:
        return int(metadata.get("resourceVersion") or 0)
    except ValueError:
        return 0


_SHARED: dict[str, Any] = {}
_SHARED_LIMIT = 4096


def _shared(value: Any) -> Any:
    """One copy of an equal value for every job that holds it (never mutated after parsing)."""
    key = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    held = _SHARED.get(key)
    if held is None:
        if len(_SHARED) >= _SHARED_LIMIT:
            _SHARED.clear()
        held = _SHARED[key] = value
    return held


# Fields whose values repeat across jobs. Others (timestamps, uids) are unique: interning those
# would only add an entry per job to the interpreter's table of interned strings.
_ENUMERATED = frozenset({"state", "reason", "type", "status", "category", "jobQueue", "jobDefinition",
                         "computeEnvironment", "action"})


def _interned(value: Any, enumerated: bool = False) -> Any:
    """The same value with every key, and the values of enumerated fields, interned: each parsed
    object otherwise carries its own copy of "lastTransitionTime", "Runnable" and the like."""
    if isinstance(value, dict):
        return {sys.intern(k): _interned(v, k in _ENUMERATED) for k, v in value.items()}
    if isinstance(value, list):
        return [_interned(v) for v in value]
    if enumerated and isinstance(value, str) and len(value) <= 64:
        return sys.intern(value)
    return value


def _compact(status: dict[str, Any], like: dict[str, Any] | None = None) -> dict[str, Any]:
    """Jobs of one definition resolve to equal specs, and jobs waiting in one queue share their
    reason: keep one copy of each in memory, not one per job (100,000 jobs wait in a deep queue).
    `like`: the status of the job's previous version, whose shared values are most often unchanged
    (comparing is much cheaper than finding the shared copy again)."""
    compact = {sys.intern(k): v if k in _SHARED_FIELDS or k == "arrayProperties" else _interned(v, k in _ENUMERATED)
               for k, v in status.items()}
    for name in _SHARED_FIELDS:
        value = compact.get(name)
        if isinstance(value, (dict, str)):
            before = like.get(name) if like is not None else None
            compact[name] = before if before is not None and before == value else _shared(value)
    reason = compact.get("statusReason")
    for condition in compact.get("conditions") or ():
        if isinstance(condition, dict) and condition.get("message") == reason:
            condition["message"] = reason  # the Finished condition repeats the reason: one copy
    return compact


_SHARED_FIELDS = ("resolved", "statusReason", "jobQueue")


@dataclass(slots=True)
class JobRecord:
    namespace: str
    name: str
    uid: str
    resource_version: int
    generation: int
    created: str
    spec: dict[str, Any]
    status: dict[str, Any]
    key: JobKey = field(init=False, compare=False)  # (namespace, name), built once: every pass reads it

    def __post_init__(self) -> None:
        self.key = (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Any, like: JobRecord | None = None) -> JobRecord:
        """`like`: the job's previous version, if any (see _compact)."""
        metadata = body.get("metadata") or {}
        record = cls(
            namespace=metadata.get("namespace", ""),
            name=metadata.get("name", ""),
            uid=metadata.get("uid", ""),
            resource_version=resource_version(metadata),
            generation=int(metadata.get("generation") or 1),
            created=metadata.get("creationTimestamp") or "",
            spec=_interned(body.get("spec") or {}),
            status=_compact(dict(body.get("status") or {}), like.status if like is not None else None),
        )
        if record.status.get("jobId") == record.uid:
            record.status["jobId"] = record.uid
        return record

    @property
    def state(self) -> str | None:
        return self.status.get("state")

    @property
    def queue(self) -> str:
        return str(self.spec.get("jobQueue", ""))

    @property
    def attempt(self) -> int:
        return int(self.status.get("currentAttempt") or 1)

    @property
    def request(self) -> Resources:
        raw = (self.status.get("resolved") or {}).get("request") or {}
        return Resources(int(raw.get("cpuMilli", 0)), int(raw.get("memory", 0)), int(raw.get("gpus", 0)))

    @property
    def resolved(self) -> Resolved:
        """The job as it runs, resolved at admission (status.resolved)."""
        resolved = self.status.get("resolved") or {}
        return Resolved(resolved.get("template") or {}, self.request, resolved.get("retryStrategy") or {},
                        resolved.get("timeoutSeconds"), resolved.get("labels") or {},
                        resolved.get("nodeProperties"))

    def reference(self) -> dict[str, Any]:
        """Enough of the body for an Event's involvedObject."""
        return {"apiVersion": API_VERSION, "kind": "BatchJob",
                "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid}}


def _managed_problem(spec: dict[str, Any], resources: Any) -> str | None:
    """What a MANAGED environment asks that Barge cannot do on Karpenter, rather than ignore it."""
    if spec.get("type") != "MANAGED":
        return None
    desired, minimum = resources.get("desiredvCpus"), int(resources.get("minvCpus") or 0)
    if desired is not None and desired > minimum:
        return (f"spec.computeResources.desiredvCpus: {desired} is above minvCpus {minimum}: a MANAGED "
                "environment starts at minvCpus and Karpenter adds nodes for waiting jobs (status.desiredvCpus "
                "reports what they need); raise minvCpus to keep that much warm, or lower desiredvCpus")
    return None


def _pool_problem(resources: Any) -> str | None:
    """Why the node pool's selector or tolerations would make Kubernetes refuse every Job placed
    there, naming the field; the schema refuses these at apply, but not in objects stored earlier."""
    selector = resources.get("nodeSelector") or {}
    if not isinstance(selector, dict):
        return "spec.computeResources.nodeSelector: must be a map of label keys to label values"
    for key, value in selector.items():
        if why := label_key_problem(key):
            return f"spec.computeResources.nodeSelector: key {why}"
        if why := label_value_problem(value):
            return f"spec.computeResources.nodeSelector[{key}]: {why}"
    tolerations = resources.get("tolerations") or []
    if not isinstance(tolerations, list):
        return "spec.computeResources.tolerations: must be a list"
    for i, toleration in enumerate(tolerations):
        if why := toleration_problem(toleration):
            return f"spec.computeResources.tolerations[{i}]{why}"
    return None


@dataclass(slots=True)
class EnvironmentRecord:
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]
    invalid_reason: str | None = None
    capacity: Capacity = field(default_factory=lambda: Capacity(0, None, 0))

    @classmethod
    def from_body(cls, body: Any) -> EnvironmentRecord:
        metadata = body.get("metadata") or {}
        spec = dict(body.get("spec") or {})
        resources = spec.get("computeResources") or {}
        record = cls(metadata.get("name", ""), metadata.get("uid", ""), int(metadata.get("generation") or 1),
                     spec, dict(body.get("status") or {}))
        try:
            memory = resources.get("maxMemory")
            record.capacity = Capacity(int(resources.get("maxvCpus", 0)) * 1000,
                                       parse_bytes(memory) if memory not in (None, "") else None,
                                       int(resources.get("maxGpus") or 0))
        except ValueError as exc:
            record.invalid_reason = f"spec.computeResources.maxMemory: {exc}"
        record.invalid_reason = record.invalid_reason or _managed_problem(spec, resources) or _pool_problem(resources)
        return record

    @property
    def enabled(self) -> bool:
        return self.spec.get("state", ENABLED) == ENABLED and self.invalid_reason is None

    @property
    def managed(self) -> bool:
        return self.spec.get("type") == "MANAGED"

    def to_core(self) -> Environment:
        closed = "DISABLED" if self.invalid_reason is None else "INVALID"
        return Environment(self.name, self.enabled, self.capacity, closed)

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "ComputeEnvironment",
                "metadata": {"name": self.name, "uid": self.uid}}


@dataclass(slots=True)
class QueueRecord:
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def from_body(cls, body: Any) -> QueueRecord:
        metadata = body.get("metadata") or {}
        return cls(metadata.get("name", ""), metadata.get("uid", ""), int(metadata.get("generation") or 1),
                   dict(body.get("spec") or {}), dict(body.get("status") or {}))

    @property
    def enabled(self) -> bool:
        return self.spec.get("state", ENABLED) == ENABLED

    @property
    def namespace_selector(self) -> dict[str, Any] | None:
        """Which namespaces may submit to the queue (beyond AWS, as Kueue's ClusterQueue); None: all."""
        selector: dict[str, Any] | None = self.spec.get("namespaceSelector")
        return selector

    @property
    def scheduling_policy(self) -> str | None:
        """A fair-share queue's SchedulingPolicy; None: a FIFO queue."""
        name = self.spec.get("schedulingPolicy")
        return str(name) if name else None

    @property
    def max_running(self) -> int | None:
        value = self.spec.get("maxRunningJobs")
        return int(value) if value is not None else None

    @property
    def environments(self) -> tuple[str, ...]:
        order = sorted(self.spec.get("computeEnvironmentOrder") or [], key=lambda o: int(o.get("order", 0)))
        return tuple(str(o.get("computeEnvironment")) for o in order)

    def to_core(self) -> Queue:
        actions = tuple(
            TimeLimitAction(a["reason"], int(a["maxTimeSeconds"]), a.get("action", "CANCEL"))
            for a in self.spec.get("jobStateTimeLimitActions") or [] if a.get("state", "RUNNABLE") == "RUNNABLE"
        )
        return Queue(self.name, int(self.spec.get("priority", 0)), self.environments, actions,
                     policy=self.scheduling_policy, max_running=self.max_running)

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "JobQueue",
                "metadata": {"name": self.name, "uid": self.uid}}


@dataclass(slots=True)
class PolicyRecord:
    """A SchedulingPolicy: its fair-share rules, and the usage last written to its status (the
    history a restarted operator starts from)."""
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def from_body(cls, body: Any) -> PolicyRecord:
        metadata = body.get("metadata") or {}
        return cls(metadata.get("name", ""), metadata.get("uid", ""), int(metadata.get("generation") or 1),
                   dict(body.get("spec") or {}), dict(body.get("status") or {}))

    def to_core(self, usage: dict[str, float]) -> Policy:
        fairshare = self.spec.get("fairsharePolicy") or {}
        entries = tuple(ShareEntry(str(e["shareIdentifier"]), float(e.get("weightFactor", 1.0)))
                        for e in fairshare.get("shareDistribution") or [] if e.get("shareIdentifier"))
        return Policy(self.name, int(fairshare.get("shareDecaySeconds") or 0),
                      int(fairshare.get("computeReservation") or 0), entries, usage)

    def written_usage(self) -> tuple[dict[str, float], str | None]:
        """The usage per share in status, and when it was computed."""
        shares = self.status.get("shares") or []
        return ({str(s["shareIdentifier"]): float(s.get("usage") or 0) for s in shares if s.get("shareIdentifier")},
                self.status.get("usageAt"))

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "SchedulingPolicy",
                "metadata": {"name": self.name, "uid": self.uid}}


def pool(environment: EnvironmentRecord) -> Pool:
    """What the environment's pods ask of a node: its nodeSelector, tolerations and node affinity
    (a MANAGED environment's own label and taint too)."""
    resources = environment.spec.get("computeResources") or {}
    node_selector = dict(resources.get("nodeSelector") or {})
    tolerations = list(resources.get("tolerations") or [])
    if environment.managed:
        node_selector = nodepools.pod_node_selector(environment.name, node_selector)
        tolerations = nodepools.pod_tolerations(environment.name, tolerations)
    return Pool(node_selector, tolerations, resources.get("affinity"))


def placement(job: JobRecord, environment: EnvironmentRecord, ttl_seconds: int | None,
              array_size: int | None = None) -> Placement:
    """Where the current attempt (or an array's children) runs: the environment's node pool."""
    where = pool(environment)
    return Placement(
        namespace=job.namespace, batchjob=job.name, job_id=job.uid, attempt=job.attempt, queue=job.queue,
        environment=environment.name, node_selector=dict(where.node_selector),
        tolerations=[dict(t) for t in where.tolerations], affinity=dict(where.affinity) if where.affinity else None,
        ttl_seconds_after_finished=ttl_seconds, array_size=array_size,
    )


def _amounts(amounts: dict[str, Any]) -> Resources:
    try:
        return Resources(parse_cpu_milli(amounts.get("cpu", 0)), parse_bytes(amounts.get("memory", 0)),
                         parse_count(amounts.get(GPU_RESOURCE, 0)))
    except ValueError:
        return Resources()


def node_from_body(body: Any) -> Node:
    """A node as the scheduler sees it: labels, taints, allocatable, and whether pods may land there."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    taints = tuple(Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
                   for t in spec.get("taints") or [])
    return Node(str(metadata.get("name") or ""), dict(metadata.get("labels") or {}), taints,
                _amounts(status.get("allocatable") or {}), ready and not spec.get("unschedulable"))


@dataclass(frozen=True, slots=True)
class BoundPod:
    """What the node room needs of a pod bound to a node: the node, its requests, its BatchJob's uid."""
    node: str
    request: Resources
    job_id: str | None

    @classmethod
    def from_body(cls, body: Any) -> BoundPod | None:
        """None: the pod takes no room (not bound, finished, or a preemptible warm placeholder)."""
        spec = body.get("spec") or {}
        phase = (body.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed") or (
                spec.get("priorityClassName") == nodepools.WARM_PRIORITY_CLASS):
            return None
        try:
            request = pod_requests(spec)
        except ValueError:
            request = Resources()
        labels = (body.get("metadata") or {}).get("labels") or {}
        job_id = labels.get(JOB_ID_LABEL)
        return cls(str(spec["nodeName"]), request, str(job_id) if job_id else None)
