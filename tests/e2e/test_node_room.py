"""Admission that knows the room: an UNMANAGED environment whose quota (64 vCPU) is larger than its
nodes (16 vCPU) admits only what the nodes hold, so no Barge pod ever waits Unschedulable for lack of
room; every job still succeeds, and the waiting jobs say the nodes, not the quota, are the limit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from barge.controller.informer import Informer
from barge.controller.store import Store
from barge.core.resources import Resources
from barge.dev.pools import Pool, node_manifest
from barge.kube import Kube
from tests.e2e.barge_objects import DELAY, Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.kube import Cluster, eventually

pytestmark = pytest.mark.e2e

NODES, NODE_VCPUS = 4, 4


@pytest.fixture
def own_nodes(barge: Barge) -> Iterator[str]:
    """Kwok nodes of a pool only this test's environment selects (others' nodes never match); removed after."""
    cluster = barge.cluster
    pool = Pool(name=f"room-{barge.namespace}", nodes=NODES,
                capacity={"cpu": str(NODE_VCPUS), "memory": "16Gi", "pods": "110"})
    for name in pool.node_names():
        cluster.core.create_node(node_manifest(pool, name))
    try:
        eventually(lambda: all(_ready(cluster, n) for n in pool.node_names()), 60, message="own kwok nodes Ready")
        yield pool.name
    finally:
        for name in pool.node_names():
            try:
                cluster.core.delete_node(name)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise


def _ready(cluster: Cluster, name: str) -> bool:
    conditions = cluster.core.read_node(name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


class PodWatch:
    """Every update of the namespace's pods, from a watch: which ever had PodScheduled False
    (Unschedulable), and the most pods on nodes at once."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.unschedulable: dict[str, str] = {}
        self.bound: set[str] = set()
        self.peak_bound = 0
        self.broken: str | None = None  # why the watch ended early: then it saw too little to tell
        self._stopped = False
        self._watch = kubernetes.watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for event in self._watch.stream(self.cluster.core.list_namespaced_pod, self.namespace,
                                            timeout_seconds=300):
                self._see(event)
        except Exception as exc:  # the stream closed by stop() ends this way too
            if not self._stopped:
                self.broken = repr(exc)
        if not self._stopped:
            self.broken = self.broken or "the pod watch ended before the test did"

    def _see(self, event: dict[str, Any]) -> None:
        pod = event["object"]
        for condition in pod.status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False":
                self.unschedulable[pod.metadata.name] = f"{condition.reason}: {condition.message}"
        name = pod.metadata.name
        if pod.spec.node_name and pod.status.phase in ("Pending", "Running") and event["type"] != "DELETED":
            self.bound.add(name)
        else:
            self.bound.discard(name)
        self.peak_bound = max(self.peak_bound, len(self.bound))

    def __enter__(self) -> PodWatch:
        self._thread.start()
        time.sleep(0.5)  # the watch is open before the first job is submitted
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped = True
        self._watch.stop()
        self._thread.join(5)


def _pool_reasons(barge: Barge) -> dict[str, str] | None:
    waiting = {j["metadata"]["name"]: (j.get("status") or {}).get("statusReason") or ""
               for j in barge.cluster.batchjobs(barge.namespace) if (j.get("status") or {}).get("state") == "RUNNABLE"}
    said = {n: r for n, r in waiting.items() if "the nodes of compute environment" in r}
    return said or None


def test_an_environment_larger_than_its_nodes_admits_only_what_the_nodes_hold(barge: Barge, own_nodes: str) -> None:
    ce = barge.name("room")
    barge.apply(compute_environment(ce, 64, pool=own_nodes), job_queue(ce, [ce]),
                job_definition("two", cpu="2", delay="4s"))
    names = [f"j-{i}" for i in range(20)]  # 40 vCPU of jobs: 8 at a time on 16 vCPU of nodes, under 64 of quota
    with PodWatch(barge.cluster, barge.namespace) as watch:
        barge.apply(*[batch_job(n, "two", ce) for n in names])
        reasons = eventually(lambda: _pool_reasons(barge), 60, message="waiting jobs told the nodes are the limit")
        done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=180)
    reason = next(iter(reasons.values()))
    print(f"\na waiting job's statusReason: {reason}\nat most {watch.peak_bound} pods on nodes at once")
    assert reason.startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 2 vCPU; the nodes of compute "
                             f"environment {ce} have room for "), reason
    assert "(its quota has" in reason and "of 64 vCPU free)" in reason, reason
    assert {n: s["state"] for n, s in done.items() if s["state"] != "SUCCEEDED"} == {}
    assert watch.broken is None, watch.broken
    assert watch.unschedulable == {}, f"Barge pods waited Unschedulable: {watch.unschedulable}"
    assert 0 < watch.peak_bound <= NODES * NODE_VCPUS // 2
    ran_on = {s["attempts"][-1]["nodeName"] for s in done.values()}
    assert ran_on <= {f"kwok-{own_nodes}-{i}" for i in range(NODES)}, ran_on



def test_an_environment_whose_nodes_do_not_exist_admits_nothing_and_says_so(barge: Barge) -> None:
    ce = barge.name("nowhere")
    barge.apply(compute_environment(ce, 4, pool=f"none-{barge.namespace}"), job_queue(ce, [ce]),
                job_definition("one"), batch_job("stuck", "one", ce))
    reason = eventually(lambda: (r := barge.status("stuck").get("statusReason") or "").find(
        "has no Ready, schedulable node") >= 0 and r, 60, message="the reason that no node matches")
    assert reason == (f"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU; compute environment {ce} has no "
                      "Ready, schedulable node its pods may use (its quota has 4 of 4 vCPU free)"), reason
    time.sleep(2)
    status = barge.status("stuck")
    assert status["state"] == "RUNNABLE" and not status.get("computeEnvironment"), status
    assert not barge.cluster.core.list_namespaced_pod(barge.namespace).items, "no pod was created"


def _pod(name: str, node: str | None, cpu: str, delay: str = "3600s") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox",
                                            "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    else:  # kube-scheduler finds no node for it: it stays unbound
        spec["nodeSelector"] = {"barge.dev/pool": "no-such-pool"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "annotations": {DELAY: delay}},
            "spec": spec}


def _job(name: str, node: str, cpu: str, delay: str) -> dict[str, Any]:
    """kwok completes only pods a Job owns (its pod-complete stage): a Job of one pod, bound by nodeName."""
    template = _pod(name, node, cpu, delay)
    template["spec"]["restartPolicy"] = "Never"
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"metadata": template["metadata"], "spec": template["spec"]}}}


def test_the_room_follows_every_pod_bound_to_a_node_until_it_finishes(barge: Barge, own_nodes: str) -> None:
    """Any pod takes room (not only Barge's); one not on a node takes none; a finished one gives it back
    (the field-selected watch tells: it leaves the selection)."""
    cluster, namespace, node = barge.cluster, barge.namespace, f"kwok-{own_nodes}-0"
    cluster.core.create_namespaced_pod(namespace, _pod("sleeper", node, "1500m"))
    store = Store()

    def on_node() -> Resources:
        return store.node_used().get(node, Resources())

    async def scenario() -> None:
        informer = Informer(Kube(kubeconfig=str(cluster.kubeconfig)), (namespace,),
                            lambda what, kind, body: store.remember_bound_pod(body, deleted=kind == "DELETED"),
                            lambda what, _, items: store.relist_bound_pods(items))
        versions = await informer.list_into("boundpods", store.remember_bound_pod, cluster_wide=True)
        assert on_node().cpu_milli == 1500  # listed
        informer.follow("boundpods", versions)
        try:
            await asyncio.to_thread(cluster.core.create_namespaced_pod, namespace, _pod("unbound", None, "1"))
            await asyncio.to_thread(cluster.batch.create_namespaced_job, namespace, _job("short", node, "1", "2s"))
            await _until(lambda: on_node().cpu_milli == 2500, 30, "the short pod counted on its node")
            await _until(lambda: on_node().cpu_milli == 1500, 60, "the short pod's room given back once it finished")
            await asyncio.to_thread(cluster.core.delete_namespaced_pod, "sleeper", namespace, grace_period_seconds=0)
            await _until(lambda: on_node().is_zero(), 30, "the deleted pod's room given back")
        finally:
            informer.stop()

    asyncio.run(scenario())


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
