"""The nodes' room as the operator builds it: every pod bound to a node counted once (Barge's too, but
not twice with the quota), a job placed whose pod is not on a node yet assumed against the room, and
each environment's nodes found by its nodeSelector and tolerations."""

from __future__ import annotations

from typing import Any

from barge.bench.scheduling_pass import AnsweringKube
from barge.bench.store_memory import QUEUE, body
from barge.config import Settings
from barge.controller.operator import Operator
from barge.controller.records import node_from_body
from barge.controller.store import Store
from barge.core.resources import Resources
from barge.core.scheduler import schedule


def pod(name: str, node: str | None, cpu: str = "1", phase: str = "Running", job_id: str | None = None,
        priority_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    if priority_class:
        spec["priorityClassName"] = priority_class
    labels = {"barge.dev/job-id": job_id} if job_id else {}
    return {"metadata": {"name": name, "namespace": "other", "uid": f"uid-{name}", "labels": labels},
            "spec": spec, "status": {"phase": phase}}


def node(name: str, cpu: str = "4", labels: dict[str, str] | None = None, taints: list[Any] | None = None,
         ready: str = "True") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": "16Gi"},
                       "conditions": [{"type": "Ready", "status": ready}]}}


def test_bound_pods_are_counted_per_node_and_leave_when_finished_or_deleted() -> None:
    store = Store()
    assert not store.remember_bound_pod(pod("a", "n1", "1500m"))
    assert not store.remember_bound_pod(pod("b", "n1"))
    assert not store.remember_bound_pod(pod("pending", None))  # not on a node: takes no room there
    assert not store.remember_bound_pod(pod("warm", "n1", "4", priority_class="barge-warm-capacity"))
    assert store.node_used() == {"n1": Resources(2500)}
    assert store.remember_bound_pod(pod("a", "n1", "1500m", phase="Succeeded"))  # room freed
    assert store.node_used() == {"n1": Resources(1000)}
    assert store.remember_bound_pod(pod("b", "n1"), deleted=True)
    assert store.node_used() == {}
    store.relist_bound_pods([pod("c", "n2", job_id="job-1")])
    assert store.node_used() == {"n2": Resources(1000)} and store.job_bound("job-1") == (1, Resources(1000))


def test_a_node_record_reads_readiness_cordon_taints_and_allocatable() -> None:
    ready = node_from_body(node("n", "2500m", {"pool": "a"}, [{"key": "k", "effect": "NoSchedule"}]))
    assert ready.schedulable and ready.allocatable.cpu_milli == 2500 and ready.taints[0].key == "k"
    assert not node_from_body(node("n", ready="False")).schedulable
    cordoned = node("n")
    cordoned["spec"]["unschedulable"] = True
    assert not node_from_body(cordoned).schedulable


def operator_with(nodes: list[dict[str, Any]], resources: dict[str, Any]) -> Operator:
    kube = AnsweringKube()
    op = Operator(Settings(events=False), kube)
    kube.add("ComputeEnvironment", {"metadata": {"name": QUEUE, "uid": "ce"},
                                    "spec": {"state": "ENABLED", "computeResources": {"maxvCpus": 64, **resources}}})
    kube.add("JobQueue", {"metadata": {"name": QUEUE, "uid": "q"}, "spec": {
        "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": QUEUE}]}})
    op.store.capture({**kube.indexes, "jobdefinitions": {},
                      "nodes": {n["metadata"]["name"]: [node_from_body(n)] for n in nodes}})
    return op


def test_the_snapshot_gives_each_environment_its_matching_nodes_free_room_and_its_placed_pods() -> None:
    op = operator_with([node("a1", labels={"pool": "a"}), node("a2", labels={"pool": "a"}, ready="False"),
                        node("a3", labels={"pool": "a"}, taints=[{"key": "gpu", "effect": "NoSchedule"}]),
                        node("b1")], {"nodeSelector": {"pool": "a"}})
    running = body(1)
    running["status"] |= {"state": "RUNNING", "computeEnvironment": QUEUE}
    record = op.store.remember(running)
    op.store.remember_bound_pod(pod("someone-else", "a1", "500m"))
    snapshot, _ = op.scheduler.snapshot([record])
    room = snapshot.room
    assert room is not None
    assert room.nodes == {QUEUE: ("a1",)}
    assert room.free["a1"].cpu_milli == 3500
    assert list(room.assumed) == [(QUEUE, Resources(1000))]  # placed, its pod not on a node yet
    op.store.remember_bound_pod(pod("its-pod", "a1", "1", job_id=record.uid))
    snapshot, _ = op.scheduler.snapshot([record])
    assert snapshot.room is not None
    assert snapshot.room.free["a1"].cpu_milli == 2500 and list(snapshot.room.assumed) == []  # counted once


def test_a_runnable_job_waits_for_room_on_the_nodes_with_the_pool_reason() -> None:
    op = operator_with([node("a1", cpu="1500m")], {})
    jobs = [op.store.remember(body(i)) for i in range(2)]
    snapshot, _ = op.scheduler.snapshot(jobs)
    decisions = schedule(snapshot, 0.0)
    assert [p.key for p in decisions.placements] == [f"bench-p4/{jobs[0].name}"]
    assert "the nodes of compute environment" in decisions.waiting[f"bench-p4/{jobs[1].name}"].reason


def test_without_a_node_watch_only_the_quota_applies() -> None:
    op = operator_with([], {})
    del op.store.indexes["nodes"]
    snapshot, _ = op.scheduler.snapshot([op.store.remember(body(1))])
    assert snapshot.room is None


def test_an_invalid_environment_does_not_break_the_snapshot() -> None:
    op = operator_with([node("a1")], {"nodeSelector": ["not", "a", "map"]})
    snapshot, _ = op.scheduler.snapshot([op.store.remember(body(1))])
    assert snapshot.room is not None and QUEUE not in snapshot.room.nodes
    assert not snapshot.environments[QUEUE].enabled
