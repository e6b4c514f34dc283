"""The room on the nodes: which nodes a compute environment's pods may land on, what is free there,
and a first-fit of pods over that free room (what `core.scheduler` admits against, beside the quota).

A pod cannot span nodes, so a job is admitted only when each of its pods fits on ONE node of its
environment: the pods are placed first-fit over the environment's nodes in name order (a multi-node
gang all or nothing). A MANAGED environment may also grow: a pod that fits no node takes from what
its NodePool may still add (vCPU only: the nodes to come do not exist yet), and its pod then waits
Pending until Karpenter adds a node for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from barge.core.resources import Resources

NO_SCHEDULE_EFFECTS = ("NoSchedule", "NoExecute")


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]
    allocatable: Resources
    schedulable: bool  # Ready and not cordoned


@dataclass(frozen=True, slots=True)
class Pool:
    """What an environment's pods ask of a node: its nodeSelector, tolerations and node affinity."""
    node_selector: Mapping[str, str]
    tolerations: Sequence[Mapping[str, Any]]
    affinity: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Room:
    """The nodes' room a scheduling pass admits against.

    `free`: per node, allocatable minus the requests of the pods bound there (every pod, not only
    Barge's). `nodes`: per environment, the names of the nodes its pods may land on; an environment
    not in it has no node limit (its room is not known). `growth`: per MANAGED environment, the vCPU
    (milli) its NodePool may still add. `assumed`: (environment, pod request) of Barge's pods placed
    but not on a node yet: they take their room first (the scheduler's assume, as Kueue's cache does).
    """
    free: Mapping[str, Resources]
    nodes: Mapping[str, tuple[str, ...]]
    growth: Mapping[str, int] = field(default_factory=dict)
    assumed: Sequence[tuple[str, Resources]] = ()


# --- which nodes an environment's pods may use ------------------------------------------------------


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Taint) -> bool:
    """Kubernetes' rule: a toleration with an empty key and Exists tolerates everything."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key and operator == "Exists":
            return True
        if key != taint.key:
            continue
        if operator == "Exists" or (toleration.get("value") or "") == taint.value:
            return True
    return False


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = expression.get("key") or ""
    operator = expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    value = labels.get(key)
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def _affinity_holds(affinity: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """requiredDuringSchedulingIgnoredDuringExecution: one term whose expressions all hold."""
    required = (((affinity or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(all(_expression_holds(e, labels) for e in term.get("matchExpressions") or []) for term in terms)


def matches(node: Node, pool: Pool) -> bool:
    """Whether a pod of the pool can be scheduled on the node (resources aside)."""
    if not node.schedulable:
        return False
    if any(node.labels.get(key) != value for key, value in pool.node_selector.items()):
        return False
    if any(t.effect in NO_SCHEDULE_EFFECTS and not tolerates(pool.tolerations, t) for t in node.taints):
        return False
    return _affinity_holds(pool.affinity, node.labels)


def free_room(nodes: Iterable[Node], used: Mapping[str, Resources]) -> dict[str, Resources]:
    """Per schedulable node: allocatable minus what its pods request (never negative)."""
    free: dict[str, Resources] = {}
    for node in nodes:
        if node.schedulable:
            taken = used.get(node.name, Resources())
            a = node.allocatable
            free[node.name] = Resources(max(0, a.cpu_milli - taken.cpu_milli), max(0, a.memory - taken.memory),
                                        max(0, a.gpus - taken.gpus))
    return free


# --- first fit over the free room --------------------------------------------------------------------


def _fits(request: Resources, free: Resources) -> bool:
    return (request.cpu_milli <= free.cpu_milli and request.memory <= free.memory
            and request.gpus <= free.gpus)


def _how_many(request: Resources, free: Resources, wanted: int) -> int:
    n = wanted
    for requested, available in ((request.cpu_milli, free.cpu_milli), (request.memory, free.memory),
                                 (request.gpus, free.gpus)):
        if requested:
            n = min(n, available // requested)
    return max(0, n)


GROWTH = ""  # the node name of a pod placed on a node a NodePool is yet to add


class Fitter:
    """The room left during a pass: pods placed first-fit, the free room only shrinking (so where a
    request did not fit once, it never fits later in the pass: each environment remembers, per
    request, the first node worth trying)."""

    def __init__(self, room: Room) -> None:
        self.free = dict(room.free)
        self.nodes = room.nodes
        self.growth = dict(room.growth)
        self.growing: dict[str, int] = {}  # per environment: vCPU milli placed on nodes yet to come
        self._start: dict[tuple[str, Resources], int] = {}
        for environment, request in room.assumed:  # a pod that fits nowhere now takes nothing
            if environment in self.nodes:
                self.take(environment, request, 1)

    def limits(self, environment: str) -> bool:
        return environment in self.nodes

    def take(self, environment: str, request: Resources, wanted: int) -> list[str]:
        """Place up to `wanted` pods of `request`: the node of each (GROWTH for one a NodePool adds)."""
        names = self.nodes.get(environment, ())
        key = (environment, request)
        placed: list[str] = []
        i = self._start.get(key, 0)
        while i < len(names) and len(placed) < wanted:
            name = names[i]
            free = self.free[name]
            n = _how_many(request, free, wanted - len(placed))
            if n:
                self.free[name] = free - request.times(n)
                placed += [name] * n
            if len(placed) < wanted:
                i += 1
        self._start[key] = i
        if len(placed) < wanted and environment in self.growth:
            n = wanted - len(placed)
            if request.cpu_milli:
                n = min(n, self.growth[environment] // request.cpu_milli)
            if n > 0:
                self.growth[environment] -= request.cpu_milli * n
                self.growing[environment] = self.growing.get(environment, 0) + request.cpu_milli * n
                placed += [GROWTH] * n
        return placed

    def take_all(self, environment: str, pods: Sequence[Resources]) -> list[str] | None:
        """A gang: a node for every pod, or none (nothing taken)."""
        free = {name: self.free[name] for name in self.nodes.get(environment, ())}
        growth = self.growth.get(environment)
        chosen: list[str] = []
        for request in pods:
            name = next((n for n, f in free.items() if _fits(request, f)), None)
            if name is not None:
                free[name] = free[name] - request
            elif growth is not None and request.cpu_milli <= growth:
                growth -= request.cpu_milli
                name = GROWTH
            else:
                return None
            chosen.append(name)
        self.free.update(free)
        if growth is not None:
            self.growing[environment] = self.growing.get(environment, 0) + self.growth[environment] - growth
            self.growth[environment] = growth
        return chosen

    def largest_free(self, environment: str) -> Resources | None:
        """The free room of the environment's node with the most vCPU free; None: it has no node."""
        names = self.nodes.get(environment, ())
        return max((self.free[n] for n in names), key=lambda r: (r.cpu_milli, r.memory, r.gpus), default=None)
