"""What the rest of the project stands on: nodes, the Job controller, kwok's stages, quotas."""

from __future__ import annotations

from typing import Any

from tests.e2e.kube import Cluster, eventually


def job(name: str, *, completions: int = 1, annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None, cpu: str = "100m", indexed: bool = False,
        extra_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "completions": completions, "parallelism": completions, "backoffLimit": 0,
        "template": {
            "metadata": {"annotations": annotations or {}, "labels": labels or {}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu}}}]},
        },
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    spec.update(extra_spec or {})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def job_condition(cluster: Cluster, namespace: str, name: str) -> tuple[str, str] | None:
    status = cluster.batch.read_namespaced_job(name, namespace).status
    for condition in status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type, condition.reason or ""
    return None


def test_nodes_of_each_pool_are_ready_with_labels_taints_capacity(cluster: Cluster) -> None:
    if not cluster.local:
        return
    nodes = eventually(lambda: cluster.core.list_node(label_selector="type=kwok").items, 60, message="kwok nodes")
    by_pool: dict[str, list[Any]] = {}
    for node in nodes:
        by_pool.setdefault(node.metadata.labels["barge.dev/pool"], []).append(node)
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True", node.metadata.name
    assert {pool: len(n) for pool, n in by_pool.items()} == {"cpu": 4, "gpu": 2}
    cpu_node = by_pool["cpu"][0]
    assert cpu_node.status.capacity["cpu"] == "16" and cpu_node.status.capacity["memory"] == "64Gi"
    assert not cpu_node.spec.taints
    gpu_node = by_pool["gpu"][0]
    assert gpu_node.status.allocatable["nvidia.com/gpu"] == "4"
    assert [(t.key, t.effect) for t in gpu_node.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]
    assert gpu_node.metadata.labels["barge.dev/instance-type"] == "kwok.gpu4"


def test_indexed_job_completes_on_kwok_nodes(cluster: Cluster, namespace: str) -> None:
    cluster.apply([job("indexed", completions=3, indexed=True)], namespace)
    assert eventually(lambda: job_condition(cluster, namespace, "indexed"), 60) == ("Complete", "CompletionsReached")
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="job-name=indexed").items
    assert len(pods) == 3
    assert all(p.spec.node_name and p.spec.node_name.startswith("kwok-") for p in pods)
    assert sorted(p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods) == ["0", "1", "2"]


def test_pod_fails_with_annotated_exit_code_after_delay(cluster: Cluster, namespace: str) -> None:
    failing = {"pod-container-running-failed.stage.kwok.x-k8s.io/exit-code": "3",
               "pod-container-running-failed.stage.kwok.x-k8s.io/delay": "2s"}
    cluster.apply([job("fails", annotations=failing,
                       labels={"pod-container-running-failed.stage.kwok.x-k8s.io": "true"})], namespace)

    def terminated() -> Any:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector="job-name=fails").items
        return pods and pods[0].status.phase in ("Failed", "Succeeded") and pods[0]

    pod = eventually(terminated, 60)
    assert pod.status.phase == "Failed"
    state = pod.status.container_statuses[0].state.terminated
    assert state.exit_code == 3
    # kwok's failure template rewrites startTime; the delay runs after creation, so this bounds it.
    lived = (state.finished_at - pod.metadata.creation_timestamp).total_seconds()
    assert lived >= 2, f"the annotated 2 s run time was not honoured ({lived}s)"


def test_run_time_annotation_is_honoured(cluster: Cluster, namespace: str) -> None:
    cluster.apply([job("slow", annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "6s"})], namespace)
    assert eventually(lambda: job_condition(cluster, namespace, "slow"), 60)[0] == "Complete"
    pod = cluster.core.list_namespaced_pod(namespace, label_selector="job-name=slow").items[0]
    state = pod.status.container_statuses[0].state.terminated
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (state.finished_at - ready.last_transition_time).total_seconds() >= 5


def test_pod_failure_policy_fails_job_on_exit_code(cluster: Cluster, namespace: str) -> None:
    policy = {"backoffLimit": 5, "podFailurePolicy": {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]}}]}}
    cluster.apply([job("policy", extra_spec=policy,
                       labels={"pod-container-running-failed.stage.kwok.x-k8s.io": "true"},
                       annotations={"pod-container-running-failed.stage.kwok.x-k8s.io/exit-code": "3"})],
                  namespace)
    assert eventually(lambda: job_condition(cluster, namespace, "policy"), 60) == ("Failed", "PodFailurePolicy")


def test_fail_by_completion_index_stage(cluster: Cluster, namespace: str) -> None:
    codes = {"pod-fail-by-index.stage.barge.dev/exit-codes": "1=3,3=4"}
    cluster.apply([job("byindex", completions=5, indexed=True, annotations=codes,
                       extra_spec={"backoffLimitPerIndex": 0, "backoffLimit": None, "maxFailedIndexes": 5})],
                  namespace)

    def all_done() -> Any:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector="job-name=byindex").items
        return len(pods) == 5 and all(p.status.phase in ("Succeeded", "Failed") for p in pods) and pods

    pods = eventually(all_done, 60)
    outcome = {int(p.metadata.annotations["batch.kubernetes.io/job-completion-index"]):
               (p.status.phase, p.status.container_statuses[0].state.terminated.exit_code) for p in pods}
    assert outcome == {0: ("Succeeded", 0), 1: ("Failed", 3), 2: ("Succeeded", 0), 3: ("Failed", 4),
                       4: ("Succeeded", 0)}


def test_resource_quota_stops_pods_beyond_its_limit(cluster: Cluster, namespace: str) -> None:
    cluster.apply([{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "cpu"},
                    "spec": {"hard": {"requests.cpu": "4"}}}], namespace)
    eventually(lambda: cluster.core.read_namespaced_resource_quota("cpu", namespace).status.hard, 30,
               message="quota status")
    slow = {"pod-complete.stage.kwok.x-k8s.io/delay": "60s"}
    cluster.apply([job("q", completions=3, cpu="2", annotations=slow)], namespace)

    def refused() -> Any:
        events = cluster.core.list_namespaced_event(namespace).items
        return [e for e in events if "exceeded quota" in (e.message or "")]

    assert eventually(refused, 60, message="an 'exceeded quota' event")
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="job-name=q").items
    assert len(pods) == 2


def test_deleting_a_namespace_with_a_running_job_pod_finishes(cluster: Cluster) -> None:
    """kwok stops a deleted running pod like a kubelet would, so the Job controller releases it."""
    name = "t-del-" + str(abs(hash(cluster.kubeconfig)) % 10**6)
    cluster.kubectl("create", "namespace", name)
    cluster.apply([job("long", annotations={"pod-complete.stage.kwok.x-k8s.io/delay": "600s"})], name)

    def running() -> Any:
        pods = cluster.core.list_namespaced_pod(name, label_selector="job-name=long").items
        return pods and pods[0].status.phase == "Running"

    eventually(running, 60, message="the pod to run")
    cluster.kubectl("delete", "namespace", name, "--wait=false")

    def gone() -> bool:
        return name not in [n.metadata.name for n in cluster.core.list_namespace().items]

    eventually(gone, 90, message="the namespace to be deleted")
