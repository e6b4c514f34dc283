"""Multi-node parallel jobs on the real API server with kwok's simulated pods (api.md, "Multi-node
parallel jobs"): all-or-nothing placement, the main node's outcome, the other nodes stopped, and a
retry that reruns the whole gang."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes

from barge.core.resources import parse_cpu_milli
from tests.e2e.barge_objects import (
    API,
    DELAY,
    Barge,
    batch_job,
    compute_environment,
    failing,
    job_definition,
    job_queue,
)
from tests.e2e.kube import eventually

BATCHJOB_LABEL = "barge.dev/batchjob"
NODE_LABEL = "barge.dev/node-index"
ATTEMPT_LABEL = "barge.dev/attempt"
LIVE_PHASES = ("Pending", "Running")


def gang_definition(name: str, nodes: int = 4, cpu: str = "4", main: dict[str, Any] | None = None,
                    **spec: Any) -> dict[str, Any]:
    """Node 0 is the main node (runs 2 s, or as `main` says); the others would run 60 s."""
    def template(metadata: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": metadata, "spec": {"containers": [
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "mpirun"],
             "resources": {"requests": {"cpu": cpu}}}]}}
    ranges = [{"targetNodes": "0", "template": template(main or {"annotations": {DELAY: "2s"}})},
              {"targetNodes": "1:", "template": template({"annotations": {DELAY: "60s"}})}]
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name},
            "spec": {"nodeProperties": {"numNodes": nodes, "mainNode": 0, "nodeRangeProperties": ranges}, **spec}}


class GangWatch:
    """Every state of the namespace's live pods (Pending or Running, not being deleted), from a watch:
    which gang nodes were live together, the vCPUs in use, and each pod's first sight."""

    def __init__(self, barge: Barge, gang: str) -> None:
        self.barge, self.gang = barge, gang
        self.live: dict[str, tuple[str, int, str | None]] = {}  # pod -> (batchjob, milli-vCPU, attempt)
        self.gang_sizes: list[int] = []  # live gang pods at each event
        self.peak_cpu = 0
        self.first_seen: dict[str, float] = {}
        self.ended: dict[str, float] = {}  # pod -> when it stopped being live
        self.env: dict[str, dict[str, str]] = {}  # the gang's first attempt: node index -> its main container's env
        self.attempts: dict[str, set[str]] = {}  # attempt -> gang pods seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GangWatch:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        version = None
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            kwargs = {"timeout_seconds": 1, **({"resource_version": version} if version else {})}
            for event in watch.stream(self.barge.cluster.core.list_namespaced_pod, self.barge.namespace, **kwargs):
                self._see(event["type"], event["object"])
                version = event["object"].metadata.resource_version
                if self._stop.is_set():
                    watch.stop()

    def _see(self, kind: str, pod: Any) -> None:
        name, labels = pod.metadata.name, pod.metadata.labels or {}
        owner = labels.get(BATCHJOB_LABEL, "")
        self.first_seen.setdefault(name, time.monotonic())
        if owner == self.gang:
            self.attempts.setdefault(labels.get(ATTEMPT_LABEL, "?"), set()).add(name)
            if labels.get(ATTEMPT_LABEL) == "1":
                self.env[labels[NODE_LABEL]] = {e.name: e.value for e in pod.spec.containers[0].env}
        live = kind != "DELETED" and pod.status.phase in LIVE_PHASES and pod.metadata.deletion_timestamp is None
        if live:
            cpu = sum(parse_cpu_milli(c.resources.requests["cpu"]) for c in pod.spec.containers)
            self.live[name] = (owner, cpu, labels.get(NODE_LABEL))
        elif self.live.pop(name, None) is not None:
            self.ended.setdefault(name, time.monotonic())
        self.peak_cpu = max(self.peak_cpu, sum(cpu for _, cpu, _ in self.live.values()))
        self.gang_sizes.append(sum(1 for owner, _, _ in self.live.values() if owner == self.gang))


def test_a_gang_larger_than_its_environment_waits_with_max_resource(barge: Barge) -> None:
    ce, q = barge.name("ce12"), barge.name("q")
    barge.apply(compute_environment(ce, 12), job_queue(q, [ce]), gang_definition("gang"))
    barge.apply(batch_job("big", "gang", q))

    def told() -> dict[str, Any] | None:
        status = barge.status("big")
        return status if "COMPUTE_ENVIRONMENT_MAX_RESOURCE" in (status.get("statusReason") or "") else None

    status = eventually(told, 30, message="the gang says it can never fit")
    assert status["state"] == "RUNNABLE"
    assert status["statusReason"].startswith("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"), status
    assert "16 vCPU" in status["statusReason"], status["statusReason"]
    pods = barge.cluster.core.list_namespaced_pod(barge.namespace).items
    assert pods == []


def test_a_gang_starts_whole_once_its_environment_has_room_and_ends_with_its_main_node(barge: Barge) -> None:
    ce, q = barge.name("ce16"), barge.name("q")
    barge.apply(compute_environment(ce, 16), job_queue(q, [ce]), gang_definition("gang"),
                job_definition("small", cpu="4", delay="5s"))
    barge.apply(batch_job("busy", "small", q))
    barge.wait_state("busy", "RUNNING")
    with GangWatch(barge, "train") as watch:
        barge.apply(batch_job("train", "gang", q))
        waiting = eventually(lambda: (s := barge.status("train")).get("state") == "RUNNABLE"
                             and "CAPACITY" in (s.get("statusReason") or "") and s, 20)
        assert waiting["state"] == "RUNNABLE"
        busy = barge.wait_state("busy", "SUCCEEDED")
        running = barge.wait_state("train", "RUNNING")
        assert running["computeEnvironment"] == ce
        done = barge.wait_state("train", "SUCCEEDED", "FAILED", timeout=60)
        stopped = eventually(lambda: all(owner != "train" for owner, _, _ in watch.live.values()) or None, 30,
                             message="the other nodes stopped")
        assert stopped
    assert done["state"] == "SUCCEEDED", done
    # Never a partial gang holding room: no gang pod before the busy job ended, never over 16 vCPUs.
    gang_pods = sorted(watch.attempts["1"])
    assert len(gang_pods) == 4
    busy_pod = busy["attempts"][0]["podName"]
    assert min(watch.first_seen[p] for p in gang_pods) >= watch.ended[busy_pod]
    assert watch.peak_cpu <= 16_000
    assert max(watch.gang_sizes) == 4
    # The main node's outcome is the job's; the other nodes were stopped, not left to run their 60 s.
    [attempt] = done["attempts"]
    assert attempt["exitCode"] == 0 and attempt["podName"].endswith("-0")
    nodes = done["nodeProperties"]
    assert (nodes["numNodes"], nodes["mainNode"]) == (4, 0)
    assert [n["nodeIndex"] for n in nodes["nodes"]] == [0, 1, 2, 3]
    assert all(n["podName"] and n["nodeName"].startswith("kwok-cpu-") for n in nodes["nodes"])
    assert nodes["nodes"][0]["exitCode"] == 0
    # AWS's node variables, and the main node's address given to the others.
    job_id = done["jobId"]
    main_ip = nodes["nodes"][0]["podIP"]
    assert sorted(watch.env) == ["0", "1", "2", "3"]
    for index, env in watch.env.items():
        assert env["AWS_BATCH_JOB_ID"] == f"{job_id}#{index}"
        assert (env["AWS_BATCH_JOB_NODE_INDEX"], env["AWS_BATCH_JOB_NUM_NODES"],
                env["AWS_BATCH_JOB_MAIN_NODE_INDEX"]) == (index, "4", "0")
        if index != "0":
            assert env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == main_ip


def test_a_failed_main_node_reruns_the_whole_gang(barge: Barge) -> None:
    ce, q = barge.name("ce16"), barge.name("q")
    barge.apply(compute_environment(ce, 16), job_queue(q, [ce]),
                gang_definition("gang", nodes=3, cpu="2", main=failing(1, delay="2s"),
                                retryStrategy={"attempts": 2}))
    with GangWatch(barge, "retry") as watch:
        barge.apply(batch_job("retry", "gang", q))
        done = barge.wait_state("retry", "SUCCEEDED", "FAILED", timeout=60)
        eventually(lambda: all(owner != "retry" for owner, _, _ in watch.live.values()) or None, 30,
                   message="the other nodes stopped")
    assert done["state"] == "FAILED", done
    assert [a["exitCode"] for a in done["attempts"]] == [1, 1]
    assert {attempt: len(pods) for attempt, pods in watch.attempts.items()} == {"1": 3, "2": 3}
    assert done["nodeProperties"]["nodes"][0]["podName"].startswith("retry-2-")
