"""Multi-node parallel jobs in the pure core: node ranges, resolution of a gang (its templates and
its total request), the order its pods are created in, AWS's node variables, per-node status, and
all-or-nothing placement by the scheduler (a gang is one decision over its whole request)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barge.core import gangs, manifests
from barge.core.lifecycle import PodObservation
from barge.core.resolve import SpecError, resolve
from barge.core.resources import Capacity, Resources
from barge.core.scheduler import Environment, Queue, Runnable, Snapshot, schedule
from barge.core.states import MAX_RESOURCE

pytestmark = pytest.mark.unit


def _template(cpu: str, image: str = "worker") -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", "image": image, "command": ["run", "Ref::size"],
                                     "resources": {"requests": {"cpu": cpu}}}]}}


def _definition(num_nodes: int = 4, main: int = 0, ranges: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    ranges = ranges if ranges is not None else [("0", "1"), ("1:", "4")]
    return {"parameters": {"size": "small"}, "nodeProperties": {
        "numNodes": num_nodes, "mainNode": main,
        "nodeRangeProperties": [{"targetNodes": t, "template": _template(cpu)} for t, cpu in ranges]}}


# --- node ranges ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "nodes", "expected"), [
    ("2", 4, (2, 2)),
    ("0:3", 4, (0, 3)),
    ("1:", 4, (1, 3)),
    (":2", 4, (0, 2)),
    ("0:0", 1, (0, 0)),
])
def test_target_nodes_forms(text: str, nodes: int, expected: tuple[int, int]) -> None:
    assert gangs.parse_target(text, nodes) == expected


@pytest.mark.parametrize(("targets", "nodes", "words"), [
    (["0:1"], 4, "node 2 of 4 is in no targetNodes range"),
    (["0:2", "2:"], 4, "nodeRangeProperties[1].targetNodes: node 2 is also in nodeRangeProperties[0]"),
    (["0:4"], 4, "nodeRangeProperties[0].targetNodes: '0:4' names node 4, but the job has 4 nodes"),
    (["3:1"], 4, "'3:1' starts after it ends"),
    (["a"], 4, "nodeRangeProperties[0].targetNodes: 'a' is not a node index or range"),
    ([":"], 4, "':' is not a node index or range"),
])
def test_bad_ranges_name_the_field(targets: list[str], nodes: int, words: str) -> None:
    with pytest.raises(ValueError, match=".*" + words.replace("[", r"\[").replace("]", r"\]")):
        gangs.node_ranges(targets, nodes)


@given(st.integers(1, 40), st.data())
@settings(max_examples=100, derandomize=True, database=None, deadline=None)
def test_any_partition_into_ranges_is_accepted_and_covers_every_node_once(nodes: int, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, nodes - 1), max_size=4)) if nodes > 1 else [])
    bounds = [0, *cuts, nodes]
    targets = [f"{a}:{b - 1}" if b - 1 > a else str(a) for a, b in itertools.pairwise(bounds)]
    ranges = gangs.node_ranges(targets, nodes)
    covered = [n for first, last in ranges for n in range(first, last + 1)]
    assert sorted(covered) == list(range(nodes))


# --- resolution ----------------------------------------------------------------------------------

def test_a_gang_resolves_each_range_and_requests_the_sum_of_its_nodes() -> None:
    resolved = resolve(_definition(ranges=[("0", "1"), ("1:", "4")]), {"parameters": {"size": "big"}})
    assert resolved.request == Resources(cpu_milli=1000 + 3 * 4000)
    assert resolved.nodes is not None
    assert [r["targetNodes"] for r in resolved.nodes["nodeRangeProperties"]] == ["0:0", "1:3"]
    assert gangs.node_template(resolved.nodes, 2)["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "4"
    assert resolved.template["spec"]["containers"][0]["command"] == ["run", "big"]  # the main node's
    assert resolved.template["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "1"


def test_node_overrides_change_the_number_of_nodes_and_the_open_range_follows() -> None:
    resolved = resolve(_definition(), {"nodeOverrides": {"numNodes": 8}})
    assert resolved.nodes is not None and resolved.nodes["numNodes"] == 8
    assert resolved.request == Resources(cpu_milli=1000 + 7 * 4000)


@pytest.mark.parametrize(("definition", "spec", "words"), [
    (_definition(main=3), {"nodeOverrides": {"numNodes": 2}}, "spec.nodeOverrides.numNodes: 2 nodes leave"),
    (_definition(ranges=[("0:2", "1")]), {}, "node 3 of 4 is in no targetNodes range"),
    (_definition(), {"arrayProperties": {"size": 2}}, "spec.arrayProperties: a multi-node parallel job"),
    (_definition(ranges=[("0", "lots"), ("1:", "1")]), {},
     "resources of the main container of spec.nodeProperties.nodeRangeProperties[0].template"),
])
def test_bad_gangs_fail_with_the_field_named(definition: dict[str, Any], spec: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("]", r"\]")):
        resolve(definition, spec)


# --- pods ----------------------------------------------------------------------------------------

def _pod(index: int, attempt: int = 1, ip: str | None = None, phase: str = "Running",
         exit_code: int | None = None) -> PodObservation:
    return PodObservation(name=f"j-{attempt}-{index}", attempt=attempt, phase=phase, index=index, ip=ip,
                          node=f"n{index}", exit_code=exit_code)


NODES = {"numNodes": 3, "mainNode": 1, "nodeRangeProperties": [{"targetNodes": "0:2", "template": _template("1")}]}


@pytest.mark.parametrize(("pods", "attempt", "expected"), [
    ([], 1, ([1], None)),  # the main node first
    ([_pod(1)], 1, ([], None)),  # then the others wait for its address
    ([_pod(1, ip="10.0.0.5")], 1, ([0, 2], "10.0.0.5")),
    ([_pod(1, ip="10.0.0.5"), _pod(0)], 1, ([2], "10.0.0.5")),
    ([_pod(1, ip="10.0.0.5", phase="Succeeded", exit_code=0)], 1, ([], None)),  # it ended: nothing more
    ([_pod(1, ip="10.0.0.5"), _pod(0)], 2, ([1], None)),  # a retry starts the whole gang again
])
def test_pods_are_created_main_node_first_then_the_rest_with_its_address(
        pods: list[PodObservation], attempt: int, expected: tuple[list[int], str | None]) -> None:
    assert gangs.pods_to_create(NODES, pods, attempt) == expected


def test_node_status_shows_each_node_of_the_attempt() -> None:
    pods = [_pod(1, ip="10.0.0.5", phase="Failed", exit_code=1), _pod(0), _pod(0, attempt=2)]
    shown = gangs.node_status(NODES, pods, 1)
    assert shown == {"numNodes": 3, "mainNode": 1, "nodes": [
        {"nodeIndex": 0, "podName": "j-1-0", "nodeName": "n0"},
        {"nodeIndex": 1, "podName": "j-1-1", "nodeName": "n1", "podIP": "10.0.0.5", "exitCode": 1},
        {"nodeIndex": 2},
    ]}
    assert gangs.main_pod(NODES, pods, 1) == pods[0]


def _placement() -> manifests.Placement:
    return manifests.Placement(namespace="ns", batchjob="train", job_id="uid-1", attempt=2, queue="q",
                               environment="ce", node_selector={"pool": "cpu"}, tolerations=[], affinity=None,
                               ttl_seconds_after_finished=60)


def test_gang_job_is_indexed_managed_by_barge_with_one_completion_per_node() -> None:
    resolved = resolve(_definition(), {})
    job = manifests.kubernetes_job(resolved, _placement())
    assert job["metadata"]["name"] == "train-2"
    assert job["spec"]["managedBy"] == "barge.dev/operator"
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == ("Indexed", 4, 4)
    assert "ttlSecondsAfterFinished" not in job["spec"]


def test_node_pods_carry_awss_node_variables_and_the_main_address_on_the_others() -> None:
    resolved = resolve(_definition(main=1), {})

    def env(index: int, address: str | None) -> dict[str, str]:
        pod = manifests.gang_node_pod(resolved, _placement(), "train-2", "job-uid", index, address)
        assert pod["metadata"]["name"] == f"train-2-{index}"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
        assert pod["spec"]["nodeSelector"] == {"pool": "cpu"}
        return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}

    main = env(1, None)
    assert main["AWS_BATCH_JOB_ID"] == "uid-1#1"
    assert (main["AWS_BATCH_JOB_NODE_INDEX"], main["AWS_BATCH_JOB_NUM_NODES"], main["AWS_BATCH_JOB_MAIN_NODE_INDEX"]) \
        == ("1", "4", "1")
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in main
    other = env(3, "10.0.0.5")
    assert other["AWS_BATCH_JOB_ID"] == "uid-1#3"
    assert other["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "10.0.0.5"
    assert other["AWS_BATCH_JOB_ATTEMPT"] == "2"


# --- all-or-nothing placement --------------------------------------------------------------------

def _snapshot(max_vcpus: dict[str, int], used: dict[str, int], gangs_vcpus: list[int]) -> Snapshot:
    return Snapshot(
        environments={n: Environment(n, True, Capacity(v * 1000, None, 0)) for n, v in max_vcpus.items()},
        queues={"q": Queue("q", 1, tuple(max_vcpus))},
        usage={n: Resources(cpu_milli=u * 1000) for n, u in used.items()},
        jobs=[Runnable(f"g{i}", "q", float(i), Resources(cpu_milli=v * 1000)) for i, v in enumerate(gangs_vcpus)],
    )


def test_a_gang_larger_than_every_environment_waits_with_max_resource() -> None:
    gang = resolve(_definition(ranges=[("0:", "4")]), {}).request  # 4 x 4 vCPUs
    snapshot = _snapshot({"ce": 12}, {}, [gang.cpu_milli // 1000])
    decisions = schedule(snapshot, 100.0)
    assert decisions.placements == []
    assert decisions.waiting["g0"].category == MAX_RESOURCE


def test_a_gang_waits_until_it_fits_whole() -> None:
    assert schedule(_snapshot({"ce": 16}, {"ce": 4}, [16]), 100.0).placements == []
    placed = schedule(_snapshot({"ce": 16}, {"ce": 0}, [16]), 100.0).placements
    assert [(p.key, p.environment, p.count) for p in placed] == [("g0", "ce", 1)]


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 32), min_size=1),
       st.lists(st.tuples(st.integers(1, 8), st.integers(1, 4)), max_size=12), st.data())
@settings(max_examples=200, derandomize=True, database=None, deadline=None)
def test_no_partial_gang_is_ever_charged(max_vcpus: dict[str, int], shapes: list[tuple[int, int]],
                                         data: st.DataObject) -> None:
    """Whatever the environments and their use, each gang is placed whole in one environment or not at
    all, and no environment is charged past its quota."""
    used = {n: data.draw(st.integers(0, v)) for n, v in max_vcpus.items()}
    totals = [nodes * vcpus for nodes, vcpus in shapes]
    decisions = schedule(_snapshot(max_vcpus, used, totals), 100.0)
    charged = dict(used)
    for placement in decisions.placements:
        assert placement.count == 1  # one decision for the whole gang
        charged[placement.environment] += totals[int(placement.key[1:])]
    assert all(charged[n] <= max_vcpus[n] for n in max_vcpus)
    placed = {p.key for p in decisions.placements}
    assert placed.isdisjoint(decisions.waiting)
    assert all(decisions.usage[n].cpu_milli == charged[n] * 1000 for n in max_vcpus)


def test_when_the_main_node_ends_only_the_other_nodes_still_running_are_stopped() -> None:
    pods = [_pod(1, ip="10.0.0.5", phase="Succeeded", exit_code=0), _pod(0), _pod(2, phase="Failed", exit_code=3),
            _pod(0, attempt=2)]
    assert gangs.still_running(NODES, pods, 1) == ["j-1-0"]
