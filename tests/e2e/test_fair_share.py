"""Fair share between shares, scheduling priority, and concurrency caps, on the real API server with
simulated pods of a few seconds (api.md, "Scheduling policies (fair share) and priority")."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
import pytest

from tests.e2e.barge_objects import (
    Barge,
    batch_job,
    compute_environment,
    job_definition,
    job_queue,
    scheduling_policy,
)
from tests.e2e.conftest import OperatorProcess, metrics_url
from tests.e2e.kube import GROUP, VERSION, eventually

BATCHJOB_LABEL = "barge.dev/batchjob"
ACTIVE_PHASES = ("Pending", "Running")


class PodWatch:
    """The order in which Barge creates pods, and how many are in flight (Pending or Running: the
    job or child is STARTING or RUNNING) at every event, from a watch of the namespace's pods."""

    def __init__(self, barge: Barge) -> None:
        self.barge = barge
        self.created: list[str] = []  # BatchJob name of each pod, in creation order
        self.active: dict[str, str] = {}  # pod name -> BatchJob name
        self.peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        core = self.barge.cluster.core
        seen: set[str] = set()
        version = None
        while not self._stop.is_set():
            watch = kubernetes.watch.Watch()
            kwargs = {"timeout_seconds": 1, **({"resource_version": version} if version else {})}
            for event in watch.stream(core.list_namespaced_pod, self.barge.namespace, **kwargs):
                pod = event["object"]
                version = pod.metadata.resource_version
                name, owner = pod.metadata.name, (pod.metadata.labels or {}).get(BATCHJOB_LABEL, "")
                with self._lock:
                    if name not in seen:
                        seen.add(name)
                        self.created.append(owner)
                    if event["type"] != "DELETED" and pod.status.phase in ACTIVE_PHASES:
                        self.active[name] = owner
                    else:
                        self.active.pop(name, None)
                    self.peak = max(self.peak, len(self.active))
                if self._stop.is_set():
                    watch.stop()

    def in_flight(self) -> int:
        with self._lock:
            return len(self.active)

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = len(self.active)


def _fair_queue(barge: Barge, cpu: int, policy: dict[str, Any]) -> str:
    ce, q = barge.name("ce"), barge.name("fair")
    policy["metadata"]["name"] = barge.name("sp")
    barge.apply(policy, compute_environment(ce, cpu), job_queue(q, [ce], schedulingPolicy=barge.name("sp")))
    return q


def test_a_lower_weight_factor_starts_twice_as_many_jobs(barge: Barge) -> None:
    q = _fair_queue(barge, 3, scheduling_policy("sp", {"A": 1.0, "B": 0.5}))
    barge.apply(job_definition("work", cpu="1", delay="2s"))
    a = [batch_job(f"a-{i:02d}", "work", q, shareIdentifier="A") for i in range(30)]
    b = [batch_job(f"b-{i:02d}", "work", q, shareIdentifier="B") for i in range(30)]
    with PodWatch(barge) as pods:
        barge.apply(*a)
        barge.apply(*b)
        done = barge.wait_all([j["metadata"]["name"] for j in a + b], "SUCCEEDED", "FAILED", timeout=240)
    assert {s["state"] for s in done.values()} == {"SUCCEEDED"}
    assert pods.peak <= 3
    # The middle of the run: past the first pass (A alone was waiting), up to B's last start.
    order = pods.created
    last_b = max(i for i, name in enumerate(order) if name.startswith("b-"))
    middle = order[6:last_b - 2]
    starts_a = sum(name.startswith("a-") for name in middle)
    starts_b = sum(name.startswith("b-") for name in middle)
    assert starts_a and 1.7 <= starts_b / starts_a <= 2.3, f"A {starts_a}, B {starts_b} starts: {order}"
    policy = barge.cluster.cluster_object("schedulingpolicies", barge.name("sp"))
    shares = {s["shareIdentifier"]: s for s in policy["status"]["shares"]}
    assert shares["A"]["weightFactor"] == 1.0 and shares["B"]["weightFactor"] == 0.5, policy["status"]
    assert shares["A"]["usage"] > 0 and shares["B"]["usage"] > 0, policy["status"]  # 60 vCPU-seconds each, decayed


def test_priority_inside_a_share_and_a_raised_override(barge: Barge) -> None:
    q = _fair_queue(barge, 1, scheduling_policy("sp", {"A": 1.0}))
    barge.apply(job_definition("work", cpu="1", delay="1s"), job_definition("blocker", cpu="1", delay="6s"),
                job_definition("urgent", cpu="1", delay="1s", schedulingPriority=9))
    barge.apply(batch_job("blocker", "blocker", q, shareIdentifier="A"))
    barge.wait_state("blocker", "STARTING", "RUNNING")
    barge.apply(batch_job("p0", "work", q, shareIdentifier="A"))
    time.sleep(0.3)
    barge.apply(batch_job("p9", "urgent", q, shareIdentifier="A"))
    time.sleep(0.3)
    barge.apply(batch_job("raised", "work", q, shareIdentifier="A"))
    barge.wait_state("raised", "RUNNABLE")
    barge.cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, barge.namespace, "batchjobs", "raised",
                                                        {"spec": {"schedulingPriorityOverride": 10}})
    done = barge.wait_all(["p0", "p9", "raised"], "SUCCEEDED", timeout=60)
    order = sorted(done, key=lambda n: done[n]["attempts"][0]["startedAt"])
    assert order == ["raised", "p9", "p0"], {n: s["attempts"][0]["startedAt"] for n, s in done.items()}
    # once it runs, the override is fixed
    refused = barge.cluster.kubectl("patch", "batchjob", "raised", "-n", barge.namespace, "--type=merge",
                                    "-p", '{"spec": {"schedulingPriorityOverride": 1}}', check=False)
    assert refused.returncode != 0 and "may be changed only while the job waits" in refused.stderr


def test_a_newly_active_share_gets_its_reservation_at_once(barge: Barge) -> None:
    q = _fair_queue(barge, 4, scheduling_policy("sp", reservation=50))
    barge.apply(job_definition("long", cpu="1", delay="30s"))
    barge.apply(*[batch_job(f"a-{i}", "long", q, shareIdentifier="A") for i in range(4)])
    # A alone: 50% of 4 vCPUs stay free for shares with no running job
    eventually(lambda: sum(barge.status(f"a-{i}").get("state") in ("STARTING", "RUNNING") for i in range(4)) == 2,
               20, message="two of A's jobs running")
    reason = barge.status("a-3").get("statusReason") or ""
    eventually(lambda: "computeReservation 50" in (barge.status("a-3").get("statusReason") or ""), 10,
               message=f"A's waiting job naming the reservation (last: {reason})")
    submitted = time.monotonic()
    barge.apply(batch_job("b-0", "long", q, shareIdentifier="B"))
    barge.wait_state("b-0", "STARTING", "RUNNING", timeout=15)
    assert time.monotonic() - submitted < 10
    assert sum(barge.status(f"a-{i}").get("state") in ("STARTING", "RUNNING") for i in range(4)) == 2


def test_a_share_that_ran_within_the_decay_window_yields(barge: Barge) -> None:
    q = _fair_queue(barge, 1, scheduling_policy("sp", decay_seconds=600))
    barge.apply(job_definition("work", cpu="1", delay="1s"), job_definition("blocker", cpu="1", delay="6s"))
    barge.apply(batch_job("busy-0", "blocker", q, shareIdentifier="busy"))
    barge.wait_state("busy-0", "RUNNING")
    barge.apply(batch_job("busy-1", "work", q, shareIdentifier="busy"))  # submitted first...
    time.sleep(0.5)
    barge.apply(batch_job("quiet-1", "work", q, shareIdentifier="quiet"))
    done = barge.wait_all(["busy-1", "quiet-1"], "SUCCEEDED", timeout=60)
    assert done["quiet-1"]["attempts"][0]["startedAt"] <= done["busy-1"]["attempts"][0]["startedAt"]
    assert done["quiet-1"]["stoppedAt"] <= done["busy-1"]["attempts"][0]["startedAt"]  # ...but waits for quiet
    url = metrics_url()
    if url is not None:
        import urllib.request

        text = urllib.request.urlopen(url, timeout=10).read().decode()
        line = next(line for line in text.splitlines() if line.startswith("barge_share_usage_vcpu_seconds")
                    and f'policy="{barge.name("sp")}"' in line and 'share="busy"' in line)
        assert float(line.rsplit(" ", 1)[1]) > 0


def test_share_mistakes_fail_the_job_naming_shareidentifier_and_the_queue(barge: Barge) -> None:
    fair = _fair_queue(barge, 1, scheduling_policy("sp"))
    fifo, orphan = barge.name("fifo"), barge.name("orphan")
    barge.apply(job_queue(fifo, [barge.name("ce")]), job_queue(orphan, [barge.name("ce")], schedulingPolicy="nope"),
                job_definition("work", cpu="1", delay="1s"))
    barge.apply(batch_job("no-share", "work", fair), batch_job("share-on-fifo", "work", fifo, shareIdentifier="A"),
                batch_job("no-policy", "work", orphan, shareIdentifier="A"))
    for name, words in (("no-share", ("spec.shareIdentifier is required", fair)),
                        ("share-on-fifo", ("spec.shareIdentifier 'A'", fifo, "FIFO")),
                        ("no-policy", ("schedulingPolicy 'nope'", orphan, "spec.shareIdentifier"))):
        status = barge.wait_state(name, "FAILED", timeout=40)
        assert all(w in status["statusReason"] for w in words), status["statusReason"]
    refused = barge.cluster.kubectl("patch", "jobqueue", fifo, "--type=merge", "-p",
                                    '{"spec": {"schedulingPolicy": "x"}}', check=False)
    assert refused.returncode != 0 and "spec.schedulingPolicy" in refused.stderr


def test_max_parallel_caps_an_array_and_can_be_raised_while_it_runs(barge: Barge) -> None:
    raised = 20
    ce, q = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 8), job_queue(q, [ce]), job_definition("child", cpu="100m", delay="2s"))
    with PodWatch(barge) as pods:
        barge.apply(batch_job("array", "child", q, arrayProperties={"size": 100, "maxParallel": 5}))
        eventually(lambda: "maxParallel" in (barge.status("array").get("statusReason") or ""), 20,
                   message="the array saying maxParallel holds children back")
        eventually(lambda: sum(1 for name in pods.created if name == "array") >= 15, 60, message="15 children")
        assert pods.peak <= 5, f"{pods.peak} children in flight with maxParallel 5"
        pods.reset_peak()
        barge.cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, barge.namespace, "batchjobs", "array",
                                                            {"spec": {"arrayProperties": {"maxParallel": raised}}})
        changed = time.monotonic()
        eventually(lambda: pods.in_flight() > 5, 10, interval=0.1, message="more than 5 children in flight")
        assert time.monotonic() - changed < 5
        barge.wait_state("array", "SUCCEEDED", timeout=120)
    assert 5 < pods.peak <= raised


def test_a_queue_with_max_running_jobs_1_runs_jobs_one_after_another(barge: Barge) -> None:
    ce, q = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 8), job_queue(q, [ce], maxRunningJobs=1),
                job_definition("work", cpu="1", delay="2s"))
    names = ["first", "second", "third"]
    with PodWatch(barge) as pods:
        barge.apply(*[batch_job(n, "work", q) for n in names])
        eventually(lambda: "maxRunningJobs" in (barge.status("third").get("statusReason") or ""), 20,
                   message="a held job naming maxRunningJobs")
        done = barge.wait_all(names, "SUCCEEDED", timeout=60)
    assert pods.peak == 1
    spans = sorted((s["attempts"][0]["startedAt"], s["stoppedAt"]) for s in done.values())
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans


def test_share_usage_survives_an_operator_restart(barge: Barge, operator_process: OperatorProcess | None) -> None:
    if operator_process is None:
        pytest.skip("the operator is installed externally; this test restarts a local one")
    q = _fair_queue(barge, 1, scheduling_policy("sp", decay_seconds=3600))
    barge.apply(job_definition("work", cpu="1", delay="1s"), job_definition("blocker", cpu="1", delay="6s"))
    barge.apply(batch_job("busy-0", "work", q, shareIdentifier="busy"))
    barge.wait_state("busy-0", "SUCCEEDED")

    def written() -> float:
        shares = (barge.cluster.cluster_object("schedulingpolicies", barge.name("sp")).get("status") or {}).get(
            "shares") or []
        return next((s["usage"] for s in shares if s["shareIdentifier"] == "busy"), 0.0)

    eventually(lambda: written() > 0, 20, message="busy's usage in the policy's status")
    operator_process.restart(kill=True)
    barge.apply(batch_job("other-0", "blocker", q, shareIdentifier="other"))
    barge.wait_state("other-0", "RUNNING", timeout=60)
    barge.apply(batch_job("busy-1", "work", q, shareIdentifier="busy"))  # submitted first...
    time.sleep(0.5)
    barge.apply(batch_job("quiet-1", "work", q, shareIdentifier="quiet"))
    done = barge.wait_all(["busy-1", "quiet-1"], "SUCCEEDED", timeout=60)
    # ...but busy ran before the restart, and the restarted operator remembers it
    assert done["quiet-1"]["stoppedAt"] <= done["busy-1"]["attempts"][0]["startedAt"]
