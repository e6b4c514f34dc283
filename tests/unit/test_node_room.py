"""Admission that knows the room: a job is placed only when the quota AND one node of its environment
(or what a MANAGED environment's NodePool may still add) hold each of its pods; its reason says which
of the two is short."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from barge.core.noderoom import GROWTH, Node, Pool, Room, Taint, free_room, matches, tolerates
from barge.core.resources import Capacity, Resources
from barge.core.scheduler import CAPACITY, Environment, Placement, Queue, Runnable, Snapshot, schedule

NOW = 1000.0
Gi = 2**30


def cpu(vcpus: float, memory: int = 0) -> Resources:
    return Resources(int(vcpus * 1000), memory)


def node(name: str, labels: dict[str, str] | None = None, taints: tuple[Taint, ...] = (), vcpus: int = 4,
         schedulable: bool = True) -> Node:
    return Node(name, labels or {}, taints, Resources(vcpus * 1000, 16 * Gi), schedulable)


def snapshot(jobs: list[Runnable], room: Room | None, quotas: dict[str, int] | None = None,
             usage: dict[str, Resources] | None = None) -> Snapshot:
    quotas = quotas or {"ce": 64}
    environments = {name: Environment(name, True, Capacity(v * 1000, None, 0)) for name, v in quotas.items()}
    queue = Queue("q", 1, tuple(quotas))
    return Snapshot(environments, {"q": queue}, usage or {}, jobs, room=room)


def jobs(n: int, request: Resources, **kwargs: Any) -> list[Runnable]:
    return [Runnable(f"ns/j{i}", "q", float(i), request, **kwargs) for i in range(n)]


def room(free: dict[str, float], nodes: dict[str, tuple[str, ...]] | None = None, **kwargs: Any) -> Room:
    return Room({name: cpu(v, 16 * Gi) for name, v in free.items()},
                nodes if nodes is not None else {"ce": tuple(free)}, **kwargs)


# --- which nodes an environment's pods may use --------------------------------------------------------

NO_SCHEDULE = Taint("dedicated", "gpu", "NoSchedule")


def test_a_node_matches_the_selector_tolerations_and_affinity_of_the_pool() -> None:
    gpu = node("n", {"pool": "gpu", "zone": "a"}, (NO_SCHEDULE,))
    tolerating = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    cases = [
        (Pool({"pool": "gpu"}, tolerating), True),
        (Pool({"pool": "cpu"}, tolerating), False),  # selector does not hold
        (Pool({"pool": "gpu"}, []), False),  # the taint is not tolerated
        (Pool({}, [{"operator": "Exists"}]), True),  # an empty key with Exists tolerates every taint
        (Pool({}, [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]), False),  # other effect
        (Pool({}, tolerating, {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                                  {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}]}}}),
         True),
        (Pool({}, tolerating, {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]}}}), False),
    ]
    for pool, expected in cases:
        assert matches(gpu, pool) is expected, pool


def test_a_soft_taint_does_not_keep_pods_off_but_a_cordoned_or_unready_node_does() -> None:
    assert matches(node("n", taints=(Taint("k", "", "PreferNoSchedule"),)), Pool({}, []))
    assert not matches(node("n", schedulable=False), Pool({}, []))
    assert tolerates([{"key": "k", "operator": "Exists"}], Taint("k", "v", "NoExecute"))


def test_free_room_is_allocatable_minus_what_every_pod_there_requests_never_negative() -> None:
    nodes = [node("a"), node("b"), node("c", schedulable=False)]
    free = free_room(nodes, {"a": cpu(1.5, Gi), "b": cpu(9)})
    assert free == {"a": Resources(2500, 15 * Gi, 0), "b": Resources(0, 16 * Gi, 0)}


# --- placement: both the quota and one node must hold each pod ------------------------------------------


def test_jobs_beyond_the_nodes_room_wait_and_say_the_nodes_not_the_quota_are_short() -> None:
    decisions = schedule(snapshot(jobs(10, cpu(2)), room({"n1": 4, "n2": 4, "n3": 4, "n4": 4})), NOW)
    assert [p.key for p in decisions.placements] == [f"ns/j{i}" for i in range(8)]
    assert sorted(n for p in decisions.placements for n in p.nodes) == ["n1", "n1", "n2", "n2", "n3", "n3",
                                                                        "n4", "n4"]
    waiting = decisions.waiting["ns/j9"]
    assert waiting.category == CAPACITY
    assert waiting.reason == (f"{CAPACITY} - needs 2 vCPU; the nodes of compute environment ce have room for "
                              "0 vCPU at most on one node (its quota has 48 of 64 vCPU free)")


def test_a_short_quota_keeps_its_wording_even_over_roomy_nodes() -> None:
    decisions = schedule(snapshot(jobs(3, cpu(2)), room({"n1": 64}), quotas={"ce": 4}), NOW)
    assert len(decisions.placements) == 2
    assert decisions.waiting["ns/j2"].reason == f"{CAPACITY} - needs 2 vCPU; free: ce 0 of 4 vCPU"


def test_a_pod_must_fit_on_one_node_not_on_the_sum_of_them() -> None:
    decisions = schedule(snapshot(jobs(1, cpu(3)), room({"n1": 2, "n2": 2})), NOW)
    assert decisions.placements == []
    assert "have room for 2 vCPU at most on one node" in decisions.waiting["ns/j0"].reason


def test_memory_counts_on_the_node_too() -> None:
    decisions = schedule(snapshot(jobs(2, cpu(1, 10 * Gi)), room({"n1": 8})), NOW)
    assert [p.key for p in decisions.placements] == ["ns/j0"]
    assert "room for 7 vCPU, 6Gi memory at most on one node" in decisions.waiting["ns/j1"].reason


def test_pods_placed_but_not_on_a_node_yet_take_their_room_first() -> None:
    assumed = [("ce", cpu(4)), ("ce", cpu(2))]
    decisions = schedule(snapshot(jobs(2, cpu(2)), room({"n1": 4, "n2": 4}, assumed=assumed)), NOW)
    assert [(p.key, p.nodes) for p in decisions.placements] == [("ns/j0", ("n2",))]


def test_an_environment_without_a_node_that_its_pods_may_use_admits_nothing() -> None:
    decisions = schedule(snapshot(jobs(1, cpu(1)), room({"n1": 4}, nodes={"ce": ()})), NOW)
    assert decisions.placements == []
    assert decisions.waiting["ns/j0"].reason == (
        f"{CAPACITY} - needs 1 vCPU; compute environment ce has no Ready, schedulable node its pods may use "
        "(its quota has 64 of 64 vCPU free)")


def test_an_environment_whose_nodes_are_unknown_has_only_its_quota() -> None:
    decisions = schedule(snapshot(jobs(3, cpu(2)), room({"n1": 1}, nodes={})), NOW)
    assert [p.count for p in decisions.placements] == [1, 1, 1]
    assert all(p.nodes == () for p in decisions.placements)


def test_two_environments_sharing_nodes_share_their_room() -> None:
    shared = room({"n1": 4}, nodes={"a": ("n1",), "b": ("n1",)})
    queue_jobs = jobs(3, cpu(2))
    decisions = schedule(snapshot(queue_jobs, shared, quotas={"a": 2, "b": 64}), NOW)
    assert [(p.key, p.environment) for p in decisions.placements] == [("ns/j0", "a"), ("ns/j1", "b")]
    reason = decisions.waiting["ns/j2"].reason
    assert "a 0 of 2 vCPU" in reason and "the nodes of compute environment b have room for 0 vCPU" in reason


def test_the_next_environment_of_the_queue_is_tried_when_the_first_ones_nodes_are_full() -> None:
    decisions = schedule(snapshot(jobs(2, cpu(2)), room({"n1": 2, "n2": 8}, nodes={"a": ("n1",), "b": ("n2",)}),
                                  quotas={"a": 64, "b": 64}), NOW)
    assert [p.environment for p in decisions.placements] == ["a", "b"]


def test_an_array_gets_as_many_children_as_the_nodes_hold() -> None:
    array = [Runnable("ns/arr", "q", 0.0, cpu(1), count=10)]
    decisions = schedule(snapshot(array, room({"n1": 3, "n2": 3.5})), NOW)
    assert decisions.placements == [Placement("ns/arr", "ce", 6, ("n1",) * 3 + ("n2",) * 3)]
    assert decisions.waiting["ns/arr"].reason.startswith(f"{CAPACITY} - 4 of 10 children wait, each needs 1 vCPU; "
                                                         "the nodes of compute environment ce have room for 0.5")


def test_a_gang_is_placed_only_when_every_pod_has_a_node_and_takes_nothing_otherwise() -> None:
    gang = Runnable("ns/gang", "q", 0.0, cpu(9), pods=(cpu(3), cpu(3), cpu(3)))
    small = Runnable("ns/small", "q", 1.0, cpu(1))
    decisions = schedule(snapshot([gang, small], room({"n1": 4, "n2": 4})), NOW)
    assert [p.key for p in decisions.placements] == ["ns/small"]
    fits = Runnable("ns/gang", "q", 0.0, cpu(6), pods=(cpu(3), cpu(3)))
    decisions = schedule(snapshot([fits, small], room({"n1": 4, "n2": 4})), NOW)
    assert [(p.key, p.nodes) for p in decisions.placements] == [("ns/gang", ("n1", "n2")), ("ns/small", ("n1",))]


# --- MANAGED: what the NodePool may still add ----------------------------------------------------------


def test_a_managed_environment_places_into_what_its_nodepool_may_add_then_says_nodes_are_being_added() -> None:
    cold = room({}, nodes={"ce": ()}, growth={"ce": 32_000})
    decisions = schedule(snapshot(jobs(17, cpu(2)), cold, quotas={"ce": 64}), NOW)
    assert len(decisions.placements) == 16
    assert all(p.nodes == (GROWTH,) for p in decisions.placements)
    assert decisions.waiting["ns/j16"].reason == (
        f"{CAPACITY} - needs 2 vCPU; compute environment ce has no Ready, schedulable node its pods may use, and "
        "its NodePool may add 0 vCPU more (nodes are being added for 32 vCPU of placed jobs) "
        "(its quota has 32 of 64 vCPU free)")


def test_a_managed_environment_fills_its_nodes_before_asking_for_more() -> None:
    warm = room({"m1": 4}, growth={"ce": 4_000})
    decisions = schedule(snapshot(jobs(3, cpu(2)), warm), NOW)
    assert [p.nodes for p in decisions.placements] == [("m1",), ("m1",), (GROWTH,)]


def test_pods_waiting_for_new_nodes_hold_what_the_nodepool_may_add() -> None:
    pending = room({}, nodes={"ce": ()}, growth={"ce": 8_000}, assumed=[("ce", cpu(2))] * 3)
    decisions = schedule(snapshot(jobs(2, cpu(2)), pending), NOW)
    assert len(decisions.placements) == 1
    assert "nodes are being added for 8 vCPU of placed jobs" in decisions.waiting["ns/j1"].reason


# --- the property: no placement exceeds a node's free room or the quota ---------------------------------

requests = st.builds(lambda c, m: Resources(c * 250, m * Gi), st.integers(1, 12), st.integers(0, 6))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Snapshot, Room]:
    node_names = [f"n{i}" for i in range(draw(st.integers(0, 5)))]
    free = {n: draw(requests) for n in node_names}
    environments = ["a", "b"]
    nodes = {e: tuple(draw(st.lists(st.sampled_from(node_names), unique=True)) if node_names else ())
             for e in environments}
    growth = {"b": draw(st.integers(0, 6)) * 1000} if draw(st.booleans()) else {}
    assumed = [(draw(st.sampled_from(environments)), draw(requests)) for _ in range(draw(st.integers(0, 3)))]
    the_room = Room(free, nodes, growth, assumed)
    quotas = {e: draw(st.integers(0, 12)) for e in environments}
    queue_jobs = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["one", "array", "gang"]))
        request = draw(requests)
        if kind == "gang":
            pods = tuple(draw(st.lists(requests, min_size=1, max_size=3)))
            total = Resources()
            for pod in pods:
                total = total + pod
            queue_jobs.append(Runnable(f"ns/j{i}", "q", float(i), total, pods=pods))
        else:
            queue_jobs.append(Runnable(f"ns/j{i}", "q", float(i), request,
                                       count=draw(st.integers(2, 6)) if kind == "array" else 1))
    return snapshot(queue_jobs, the_room, quotas=quotas), the_room


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_no_placement_exceeds_a_nodes_free_room_what_a_nodepool_may_add_or_the_quota(
        scenario: tuple[Snapshot, Room]) -> None:
    snap, the_room = scenario
    decisions = schedule(snap, NOW)
    jobs_by_key = {j.key: j for j in snap.jobs}
    on_node: dict[str, Resources] = {}
    grown: dict[str, int] = {}
    charged: dict[str, Resources] = {}
    for placement in decisions.placements:
        job = jobs_by_key[placement.key]
        pods = job.pods if job.pods is not None else (job.request,) * placement.count
        assert len(placement.nodes) == len(pods)
        for name, pod in zip(placement.nodes, pods, strict=True):
            if name == GROWTH:
                grown[placement.environment] = grown.get(placement.environment, 0) + pod.cpu_milli
            else:
                assert name in the_room.nodes[placement.environment]
                on_node[name] = on_node.get(name, Resources()) + pod
        charged[placement.environment] = charged.get(placement.environment, Resources()) + job.request.times(
            placement.count)
    for name, used in on_node.items():
        free = the_room.free[name]
        assert used.cpu_milli <= free.cpu_milli and used.memory <= free.memory, name
    for environment, milli in grown.items():
        assert milli <= the_room.growth[environment]
    for environment, used in charged.items():
        assert used.cpu_milli <= snap.environments[environment].capacity.cpu_milli
