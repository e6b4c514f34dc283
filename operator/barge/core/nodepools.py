"""MANAGED compute environments on Karpenter: the NodePool of an environment, the placement that keeps
its pods (and only its pods) on the nodes it provisions, and the vCPUs it asks for. Pure: the controller's
nodepools room does the I/O.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from barge.core.resources import parse_cpu_milli
from barge.core.states import API_VERSION

NODEPOOL_API_VERSION = "karpenter.sh/v1"
ENVIRONMENT_LABEL = "barge.dev/compute-environment"  # on the NodePool, its nodes, and the taint's key
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
LINUX = {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}  # as AWS Batch's managed nodes
CAPACITY_TYPES = {"EC2": "on-demand", "SPOT": "spot"}
# AWS Batch's "optimal" lets the service choose: on Karpenter, no instance-type requirement at all.
ANY_INSTANCE_TYPE = "optimal"
# Empty nodes are given back after this long (Karpenter's consolidateAfter): long enough for the next
# job of a stream of short ones to land on a node that is still there.
CONSOLIDATE_AFTER = "30s"
NODEPOOL_PREFIX = "barge-"
# kwok's Karpenter provider gives a node the capacity its NodeClaim requested, not the instance's size;
# this label carries the size (AWS's provider sets capacity to the instance's size and has no such label).
KWOK_INSTANCE_CPU_LABEL = "karpenter.kwok.sh/instance-cpu"


@dataclass(frozen=True)
class NodeClassRef:
    """Which Karpenter node class the NodePools use: the cloud's (EC2NodeClass on EKS) or kwok's."""
    group: str
    kind: str
    name: str

    def manifest(self) -> dict[str, str]:
        return {"group": self.group, "kind": self.kind, "name": self.name}


def parse_node_class(text: str) -> NodeClassRef:
    """`group/Kind/name`, e.g. karpenter.k8s.aws/EC2NodeClass/default or karpenter.kwok.sh/KWOKNodeClass/default."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"node class {text!r}: expected group/Kind/name, e.g. karpenter.k8s.aws/EC2NodeClass/default")
    return NodeClassRef(*parts)


def nodepool_name(environment: str) -> str:
    return NODEPOOL_PREFIX + environment


def taint(environment: str) -> dict[str, str]:
    return {"key": ENVIRONMENT_LABEL, "value": environment, "effect": "NoSchedule"}


def toleration(environment: str) -> dict[str, str]:
    return {"key": ENVIRONMENT_LABEL, "operator": "Equal", "value": environment, "effect": "NoSchedule"}


def pod_node_selector(environment: str, node_selector: dict[str, str]) -> dict[str, str]:
    """A MANAGED environment's pods go only to its own nodes (those carry its label)."""
    return {**node_selector, ENVIRONMENT_LABEL: environment}


def pod_tolerations(environment: str, tolerations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*tolerations, toleration(environment)]


def requirements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Karpenter requirements from computeResources.type (EC2 on-demand, SPOT) and instanceTypes."""
    capacity = CAPACITY_TYPES[resources.get("type") or "EC2"]
    found = [LINUX, {"key": CAPACITY_TYPE_LABEL, "operator": "In", "values": [capacity]}]
    types = sorted({t for t in resources.get("instanceTypes") or [] if t != ANY_INSTANCE_TYPE})
    if types:
        found.append({"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": types})
    return found


# AWS's allocation strategies, as Karpenter works: it always launches the cheapest instance types that
# fit the waiting pods, and for spot the price-capacity-optimized choice; the strategy asked for is kept
# on the NodePool for the reader.
ALLOCATION_STRATEGY_ANNOTATION = "barge.dev/allocation-strategy"
DEFAULT_STRATEGY = "BEST_FIT_PROGRESSIVE"


def nodepool_manifest(environment: str, resources: dict[str, Any], node_class: NodeClassRef) -> dict[str, Any]:
    """The one NodePool of a MANAGED environment."""
    labels = {**(resources.get("nodeSelector") or {}), ENVIRONMENT_LABEL: environment}
    return {
        "apiVersion": NODEPOOL_API_VERSION, "kind": "NodePool",
        "metadata": {
            "name": nodepool_name(environment), "labels": {ENVIRONMENT_LABEL: environment},
            "annotations": {ALLOCATION_STRATEGY_ANNOTATION: resources.get("allocationStrategy") or DEFAULT_STRATEGY},
            # Not owned by the environment: the garbage collector would delete it, and Karpenter its
            # nodes, under jobs still running; Barge deletes it once they are done (`retired`).
            # null drops the owner an earlier Barge gave it.
            "ownerReferences": None,
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels},
                "spec": {"nodeClassRef": node_class.manifest(), "requirements": requirements(resources),
                         "taints": [taint(environment)], "expireAfter": "Never"},
            },
            "limits": {"cpu": str(int(resources.get("maxvCpus") or 0))},
            "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": CONSOLIDATE_AFTER},
        },
    }


def retired(pools: Iterable[str], environments: Collection[str], in_use: Collection[str]) -> list[str]:
    """The NodePools to delete: those whose environment is gone and has no job left on it."""
    return sorted(name for name in pools if name not in environments and name not in in_use)


def differs(wanted: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether the NodePool in the cluster lacks what Barge wants in it (fields the server defaults are
    not compared)."""
    if current is None:
        return True
    return bool(wanted["spec"]["template"] != _template_as_wanted(current, wanted)
                or wanted["spec"]["limits"] != (current.get("spec") or {}).get("limits")
                or wanted["spec"]["disruption"]["consolidateAfter"]
                != ((current.get("spec") or {}).get("disruption") or {}).get("consolidateAfter")
                or _missing(wanted, current, "labels") or _missing(wanted, current, "annotations")
                or bool((current.get("metadata") or {}).get("ownerReferences")))


def _missing(wanted: dict[str, Any], current: dict[str, Any], field: str) -> bool:
    return bool(wanted["metadata"][field].items() - ((current.get("metadata") or {}).get(field) or {}).items())


def _template_as_wanted(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    template = (current.get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    return {"metadata": {"labels": (template.get("metadata") or {}).get("labels") or {}},
            "spec": {key: spec.get(key) for key in wanted["spec"]["template"]["spec"]}}


def desired_vcpus(used_milli: int, minimum: int, maximum: int) -> int:
    """What the environment needs now: its admitted jobs' vCPUs, at least minvCpus, at most maxvCpus
    (admission never charges more than maxvCpus, so demand beyond it waits in the queue)."""
    return max(0, min(maximum, max(minimum, math.ceil(used_milli / 1000))))


def node_cpu_milli(labels: dict[str, str], capacity: dict[str, Any]) -> int:
    """A provisioned node's size in millicores: the instance's CPUs where the provider labels them."""
    for source in (labels.get(KWOK_INSTANCE_CPU_LABEL), capacity.get("cpu")):
        if source not in (None, ""):
            try:
                return parse_cpu_milli(source)
            except ValueError:
                continue
    return 0


def provisioned(nodes: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per environment, (nodes, vCPUs) of the nodes that carry its label."""
    found: dict[str, tuple[int, int]] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        environment = labels.get(ENVIRONMENT_LABEL)
        if not environment:
            continue
        count, milli = found.get(environment, (0, 0))
        capacity = (node.get("status") or {}).get("capacity") or {}
        found[environment] = (count + 1, milli + node_cpu_milli(labels, capacity))
    return {name: (count, math.ceil(milli / 1000)) for name, (count, milli) in found.items()}


# --- minvCpus: capacity kept warm --------------------------------------------------------------------
# Karpenter adds nodes only for pods that wait, and removes empty ones. minvCpus is kept warm the way
# Karpenter documents overprovisioning: placeholder pods of a negative priority request minvCpus on the
# environment's nodes, so those nodes are never empty; a job that needs the room preempts them (the
# scheduler evicts lower-priority pods), and the evicted placeholder waits, so Karpenter adds a node.
WARM_PRIORITY_CLASS = "barge-warm-capacity"
WARM_PRIORITY = -100
WARM_IMAGE = "registry.k8s.io/pause:3.10"
WARM_PREFIX = "barge-warm-"
WARM_POD_VCPUS = 4  # placeholders of at most this size, so a few jobs preempt a small part of the warm room


def warm_priority_class() -> dict[str, Any]:
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": WARM_PRIORITY_CLASS},
            "value": WARM_PRIORITY, "preemptionPolicy": "Never", "globalDefault": False,
            "description": "Barge's placeholders that keep a MANAGED compute environment's minvCpus warm"}


def warm_deployment_name(environment: str) -> str:
    return WARM_PREFIX + environment


def warm_pods(minimum_vcpus: int) -> tuple[int, int]:
    """(replicas, vCPUs each) that add up to minvCpus, none larger than WARM_POD_VCPUS (the last smaller
    ones rounded up: a Deployment's pods are all alike)."""
    if minimum_vcpus <= 0:
        return 0, 0
    replicas = math.ceil(minimum_vcpus / WARM_POD_VCPUS)
    return replicas, math.ceil(minimum_vcpus / replicas)


def warm_deployment(environment: str, uid: str, resources: dict[str, Any], namespace: str) -> dict[str, Any] | None:
    """The placeholders of a MANAGED environment with minvCpus > 0, owned by it; None when minvCpus is 0."""
    replicas, vcpus = warm_pods(int(resources.get("minvCpus") or 0))
    if not replicas:
        return None
    labels = {ENVIRONMENT_LABEL: environment, "app.kubernetes.io/component": "warm-capacity"}
    pod_spec = {
        "priorityClassName": WARM_PRIORITY_CLASS, "terminationGracePeriodSeconds": 0,
        "nodeSelector": pod_node_selector(environment, dict(resources.get("nodeSelector") or {})),
        "tolerations": pod_tolerations(environment, list(resources.get("tolerations") or [])),
        "containers": [{"name": "placeholder", "image": WARM_IMAGE,
                        "resources": {"requests": {"cpu": str(vcpus)}, "limits": {"cpu": str(vcpus)}}}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": warm_deployment_name(environment), "namespace": namespace, "labels": labels,
                     "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ComputeEnvironment", "name": environment,
                                          "uid": uid, "controller": True, "blockOwnerDeletion": False}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


def warm_differs(wanted: dict[str, Any], current: dict[str, Any] | None) -> bool:
    if current is None:
        return True
    spec = current.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec") or {})
    wanted_pod = wanted["spec"]["template"]["spec"]
    return bool(spec.get("replicas") != wanted["spec"]["replicas"]
                or pod.get("nodeSelector") != wanted_pod["nodeSelector"]
                or [c.get("resources") for c in pod.get("containers") or []]
                != [c["resources"] for c in wanted_pod["containers"]])
