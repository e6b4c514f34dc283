"""MANAGED compute environments on Karpenter (its kwok provider on the local cluster): nodes come when
jobs wait, stay within maxvCpus, and go when the queue is empty; the NodePool says what the environment
asks for."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
import pytest

from barge.core import nodepools
from tests.e2e.barge_objects import API, Barge, batch_job, job_definition, job_queue
from tests.e2e.kube import Cluster, eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
def karpenter(barge: Barge) -> Barge:
    try:
        barge.cluster.custom.get_api_resources("karpenter.sh", "v1")
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            pytest.skip("the cluster runs without Karpenter (karpenter.sh/v1 is not served): "
                        "start it with `barge dev cluster up --karpenter`")
        raise
    return barge


def managed_environment(name: str, max_vcpus: int, **resources: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": name},
            "spec": {"type": "MANAGED", "state": "ENABLED",
                     "computeResources": {"minvCpus": 0, "maxvCpus": max_vcpus, **resources}}}


def nodepool(cluster: Cluster, environment: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = cluster.custom.get_cluster_custom_object(
            "karpenter.sh", "v1", "nodepools", nodepools.nodepool_name(environment))
        return found
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def environment_nodes(cluster: Cluster, environment: str) -> list[dict[str, Any]]:
    nodes = cluster.core.list_node(label_selector=f"{nodepools.ENVIRONMENT_LABEL}={environment}").items
    return [cluster.api.sanitize_for_serialization(n) for n in nodes]


class NodeWatch:
    """Samples the environment's nodes while jobs run: the most vCPUs (instance sizes) seen at once,
    and the largest single node."""

    def __init__(self, cluster: Cluster, environment: str) -> None:
        self.cluster, self.environment = cluster, environment
        self.peak_vcpus = self.largest_node = self.peak_nodes = 0
        self.names: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                nodes = environment_nodes(self.cluster, self.environment)
            except Exception:
                continue
            sizes = [nodepools.node_cpu_milli(n["metadata"].get("labels") or {}, n["status"].get("capacity") or {})
                     for n in nodes]
            self.peak_vcpus = max(self.peak_vcpus, sum(sizes) // 1000)
            self.largest_node = max([self.largest_node, *(s // 1000 for s in sizes)])
            self.peak_nodes = max(self.peak_nodes, len(nodes))
            self.names |= {n["metadata"]["name"] for n in nodes}

    def __enter__(self) -> NodeWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_managed_environment_scales_from_zero_within_max_and_back(karpenter: Barge) -> None:
    barge, cluster = karpenter, karpenter.cluster
    ce = barge.name("managed")
    assert not environment_nodes(cluster, ce), "starts over no nodes"
    barge.apply(managed_environment(ce, 32), job_queue(ce, [ce]), job_definition("two", cpu="2", delay="5s"))
    eventually(lambda: nodepool(cluster, ce), 30, message=f"the NodePool of {ce}")
    names = [f"j-{i}" for i in range(16)]
    with NodeWatch(cluster, ce) as watch:
        started = time.monotonic()
        barge.apply(*[batch_job(n, "two", ce) for n in names])
        eventually(lambda: environment_nodes(cluster, ce), 90, message="Karpenter's first node")
        print(f"\nfirst node after {time.monotonic() - started:.1f}s")
        environment = eventually(
            lambda: (e := cluster.cluster_object("computeenvironments", ce)).get("status", {}).get("nodes") and e,
            30, message="status.nodes")
        assert environment["status"]["status"] == "VALID", environment["status"]
        assert environment["status"]["provisionedvCpus"] > 0
        done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=240)
        emptied = time.monotonic()
        print(f"16 jobs done after {emptied - started:.1f}s on at most {watch.peak_nodes} nodes, "
              f"{watch.peak_vcpus} vCPU")
    assert {n: s["state"] for n, s in done.items() if s["state"] != "SUCCEEDED"} == {}
    assert watch_nodes(done) <= watch.names, "every job ran on a node Karpenter made for the environment"
    assert 0 < watch.peak_vcpus <= 32 + watch.largest_node, (watch.peak_vcpus, watch.largest_node)
    eventually(lambda: not environment_nodes(cluster, ce), 120, interval=2,
               message="the environment's nodes gone within two minutes of the queue emptying")
    print(f"nodes gone {time.monotonic() - emptied:.1f}s after the queue emptied")
    eventually(lambda: cluster.cluster_object("computeenvironments", ce)["status"].get("nodes") == 0, 30,
               message="status.nodes back to 0")


def test_deleting_an_environment_keeps_its_nodepool_until_its_jobs_are_done(karpenter: Barge) -> None:
    barge, cluster = karpenter, karpenter.cluster
    ce = barge.name("leaving")
    barge.apply(managed_environment(ce, 8), job_queue(ce, [ce]), job_definition("long", cpu="1", delay="25s"))
    eventually(lambda: nodepool(cluster, ce), 30, message=f"the NodePool of {ce}")
    barge.apply(batch_job("last", "long", ce))
    eventually(lambda: barge.status("last").get("state") == "RUNNING", 120, message="the job RUNNING")
    cluster.delete_cluster_object("computeenvironments", ce)

    def deleted() -> bool:
        try:
            cluster.cluster_object("computeenvironments", ce)
        except kubernetes.client.ApiException as exc:
            return exc.status == 404
        return False

    eventually(deleted, 30, message="the environment deleted")
    while barge.status("last").get("state") == "RUNNING":
        assert nodepool(cluster, ce) is not None, "the NodePool went while its job ran"
        time.sleep(1)
    assert barge.status("last")["state"] == "SUCCEEDED", barge.status("last")
    eventually(lambda: nodepool(cluster, ce) is None, 60, message="the NodePool gone once its job was done")


def watch_nodes(done: dict[str, dict[str, Any]]) -> set[str]:
    """The nodes the jobs ran on."""
    return {s["attempts"][-1]["nodeName"] for s in done.values()}


def test_spot_and_instance_types_show_in_the_nodepool_and_follow_the_environment(karpenter: Barge) -> None:
    barge, cluster = karpenter, karpenter.cluster
    ce = barge.name("spot")
    barge.apply(managed_environment(ce, 16, type="SPOT", instanceTypes=["c-4x-amd64-linux", "c-8x-amd64-linux"],
                                    allocationStrategy="SPOT_PRICE_CAPACITY_OPTIMIZED"))
    pool = eventually(lambda: nodepool(cluster, ce), 30, message=f"the NodePool of {ce}")
    requirements = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert requirements["karpenter.sh/capacity-type"] == ["spot"]
    assert requirements["node.kubernetes.io/instance-type"] == ["c-4x-amd64-linux", "c-8x-amd64-linux"]
    assert pool["spec"]["limits"] == {"cpu": "16"}
    assert not pool["metadata"].get("ownerReferences")  # Barge deletes it, once its jobs are done
    assert pool["metadata"]["annotations"]["barge.dev/allocation-strategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    barge.apply(managed_environment(ce, 24, type="EC2", instanceTypes=["c-4x-amd64-linux"]))

    def updated() -> dict[str, Any] | None:
        found = nodepool(cluster, ce)
        return found if found and found["spec"]["limits"] == {"cpu": "24"} else None

    pool = eventually(updated, 30, message="the NodePool following the environment")
    requirements = {r["key"]: r["values"] for r in pool["spec"]["template"]["spec"]["requirements"]}
    assert requirements["karpenter.sh/capacity-type"] == ["on-demand"]
    assert requirements["node.kubernetes.io/instance-type"] == ["c-4x-amd64-linux"]
    assert pool["metadata"]["annotations"]["barge.dev/allocation-strategy"] == "BEST_FIT_PROGRESSIVE"
    cluster.delete_cluster_object("computeenvironments", ce)
    eventually(lambda: nodepool(cluster, ce) is None, 60, message="the NodePool gone with its environment")


def test_min_vcpus_keeps_that_many_vcpus_of_nodes_with_no_jobs(karpenter: Barge) -> None:
    barge, cluster = karpenter, karpenter.cluster
    ce = barge.name("warm")
    barge.apply(managed_environment(ce, 32, minvCpus=8))

    def warm() -> int:
        return sum(nodepools.node_cpu_milli(n["metadata"].get("labels") or {}, n["status"].get("capacity") or {})
                   for n in environment_nodes(cluster, ce)) // 1000

    eventually(lambda: warm() >= 8, 90, message="8 vCPU of nodes with no job submitted")
    time.sleep(40)  # past the NodePool's consolidateAfter (30 s): not empty, so not removed
    assert warm() >= 8, "minvCpus of nodes stay while idle"
    environment = cluster.cluster_object("computeenvironments", ce)["status"]
    assert environment["desiredvCpus"] == 8 and environment["provisionedvCpus"] >= 8, environment
    barge.apply(managed_environment(ce, 32, minvCpus=4))
    eventually(lambda: len(cluster.core.list_pod_for_all_namespaces(
        label_selector=f"{nodepools.ENVIRONMENT_LABEL}={ce}").items) == 1, 30, message="one placeholder at minvCpus 4")
    barge.apply(managed_environment(ce, 32, minvCpus=0))
    eventually(lambda: not cluster.core.list_pod_for_all_namespaces(
        label_selector=f"{nodepools.ENVIRONMENT_LABEL}={ce}").items, 30, message="placeholders gone at minvCpus 0")
