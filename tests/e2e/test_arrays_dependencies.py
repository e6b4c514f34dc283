"""Arrays, dependencies, retries, timeouts and jobStateTimeLimitActions on the real cluster."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from typing import Any

from barge.core.resources import parse_cpu_milli
from tests.e2e.barge_objects import (
    Barge,
    batch_job,
    compute_environment,
    failing,
    job_definition,
    job_queue,
)
from tests.e2e.kube import eventually

BY_INDEX = "pod-fail-by-index.stage.barge.dev/exit-codes"
BY_ATTEMPT = "pod-fail-by-attempt.stage.barge.dev/exit-codes"


def _env(barge: Barge, max_vcpus: int = 16) -> str:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, max_vcpus), job_queue(jq, [ce]))
    return jq


def _pods(barge: Barge, job_id: str) -> list[Any]:
    return barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=f"barge.dev/job-id={job_id}").items


def _finished_at(pod: Any) -> dt.datetime:
    return pod.status.container_statuses[0].state.terminated.finished_at


class PeakCpu:
    """Samples the CPU requested by live pods of the namespace, to prove the quota held."""

    def __init__(self, barge: Barge) -> None:
        self.barge, self.peak, self._stop = barge, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pods = self.barge.cluster.core.list_namespaced_pod(self.barge.namespace).items
            live = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
            cpu = sum(parse_cpu_milli(c.resources.requests["cpu"]) for p in live for c in p.spec.containers)
            self.peak = max(self.peak, cpu)
            time.sleep(0.2)

    def __enter__(self) -> PeakCpu:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_array_of_1000_with_two_failing_children_and_a_retry_rule(barge: Barge) -> None:
    jq = _env(barge, max_vcpus=100)
    retry = {"attempts": 2, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"},
                                                 {"onExitCode": "*", "action": "EXIT"}]}
    barge.apply(job_definition("child", cpu="1", delay="1s", annotations={BY_INDEX: "7=3,500=3"},
                               retryStrategy=retry))
    with PeakCpu(barge) as peak:
        barge.apply(batch_job("big", "child", jq, arrayProperties={"size": 1000}))
        status = barge.wait_state("big", "SUCCEEDED", "FAILED", timeout=400)
    assert status["state"] == "FAILED" and "arrayProperties" in status, status
    array = status["arrayProperties"]
    assert array["size"] == 1000 and array["failedIndices"] == "7,500"
    assert array["statusSummary"] == {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0, "RUNNING": 0,
                                      "SUCCEEDED": 998, "FAILED": 2}
    for index in ("7", "500"):
        attempts = array["children"][index]["attempts"]
        assert [a["exitCode"] for a in attempts] == [3, 3], attempts
    assert status.get("attempts") in (None, []), "children keep their attempts under the child"
    assert len(json.dumps(status)) < 16384, "the status stays small"
    jobs = barge.cluster.batch.list_namespaced_job(barge.namespace).items
    assert len(jobs) == 1 and jobs[0].spec.completions == 1000
    assert peak.peak <= 100_000, f"children requested {peak.peak}m CPU on a 100-vCPU quota"
    assert peak.peak >= 50_000, "the array never grew into the free capacity"


def test_array_children_see_their_index_size_and_own_attempt(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("child", annotations={BY_INDEX: "1=3"}, retryStrategy={"attempts": 2}),
                batch_job("small", "child", jq, arrayProperties={"size": 3}))
    status = barge.wait_state("small", "FAILED", "SUCCEEDED")
    pods = {p.metadata.name: p for p in _pods(barge, status["jobId"])}
    assert sorted(pods) == ["small-0-1", "small-1-1", "small-1-2", "small-2-1"]
    env = {e.name: e.value for e in pods["small-1-2"].spec.containers[0].env}
    assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == "1" and env["AWS_BATCH_JOB_ARRAY_SIZE"] == "3"
    assert env["AWS_BATCH_JOB_ID"] == f"{status['jobId']}:1" and env["AWS_BATCH_JOB_ATTEMPT"] == "2"


def test_n_to_n_child_waits_for_the_same_child(barge: Barge) -> None:
    jq = _env(barge, max_vcpus=20)
    barge.apply(job_definition("slow", cpu="1", delay="3s"), job_definition("fast", cpu="1", delay="1s"))
    n_to_n = [{"jobName": "a", "type": "N_TO_N"}]
    barge.apply(batch_job("b", "fast", jq, arrayProperties={"size": 50}, dependsOn=n_to_n),
                batch_job("a", "slow", jq, arrayProperties={"size": 50}))
    a = barge.wait_state("a", "SUCCEEDED", "FAILED", timeout=180)
    b = barge.wait_state("b", "SUCCEEDED", "FAILED", timeout=180)
    assert a["state"] == b["state"] == "SUCCEEDED"
    a_done = {int(p.metadata.labels["barge.dev/array-index"]): _finished_at(p) for p in _pods(barge, a["jobId"])}
    b_created = {int(p.metadata.labels["barge.dev/array-index"]): p.metadata.creation_timestamp
                 for p in _pods(barge, b["jobId"])}
    assert sorted(b_created) == list(range(50))
    early = [i for i in range(50) if b_created[i] < a_done[i]]
    assert not early, f"children of b started before the same child of a finished: {early}"
    a_last = max(a_done.values())
    assert min(b_created.values()) < a_last, "b waited for the whole of a instead of child by child"


def test_sequential_array_runs_children_in_order(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step", delay="1s"),
                batch_job("seq", "step", jq, arrayProperties={"size": 5}, dependsOn=[{"type": "SEQUENTIAL"}]))
    status = barge.wait_state("seq", "SUCCEEDED", "FAILED", timeout=120)
    assert status["state"] == "SUCCEEDED"
    pods = sorted(_pods(barge, status["jobId"]), key=lambda p: int(p.metadata.labels["barge.dev/array-index"]))
    for before, after in itertools.pairwise(pods):
        assert after.metadata.creation_timestamp >= _finished_at(before)


def test_sequential_array_stops_after_a_failed_child(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step", annotations={BY_INDEX: "2=1"}),
                batch_job("seq", "step", jq, arrayProperties={"size": 5}, dependsOn=[{"type": "SEQUENTIAL"}]))
    status = barge.wait_state("seq", "SUCCEEDED", "FAILED", timeout=120)
    array = status["arrayProperties"]
    assert status["state"] == "FAILED" and array["succeededIndices"] == "0-1" and array["failedIndices"] == "2-4"
    assert array["children"]["3"]["attempts"][0]["statusReason"] == "Dependent Job failed"
    assert len(_pods(barge, status["jobId"])) == 3, "children after the failed one never ran"


def test_diamond_applied_in_reverse_order(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step", delay="2s"))
    barge.apply(batch_job("d", "step", jq, dependsOn=[{"jobName": "b"}, {"jobName": "c"}]),
                batch_job("c", "step", jq, dependsOn=[{"jobName": "a"}]),
                batch_job("b", "step", jq, dependsOn=[{"jobName": "a"}]),
                batch_job("a", "step", jq))
    done = barge.wait_all(["a", "b", "c", "d"], "SUCCEEDED", "FAILED", timeout=120)
    assert {s["state"] for s in done.values()} == {"SUCCEEDED"}

    def started(n: str) -> str:
        return str(done[n]["attempts"][0]["startedAt"])

    def stopped(n: str) -> str:
        return str(done[n]["attempts"][0]["stoppedAt"])

    assert started("b") >= stopped("a") and started("c") >= stopped("a")
    assert started("d") >= max(stopped("b"), stopped("c"))


def test_a_cycle_fails_every_job_in_it_naming_the_cycle(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step"),
                batch_job("c1", "step", jq, dependsOn=[{"jobName": "c2"}]),
                batch_job("c2", "step", jq, dependsOn=[{"jobName": "c3"}]),
                batch_job("c3", "step", jq, dependsOn=[{"jobName": "c1"}]),
                batch_job("outside", "step", jq, dependsOn=[{"jobName": "c1"}]))
    for name in ("c1", "c2", "c3"):
        reason = barge.wait_state(name, "FAILED")["statusReason"]
        assert reason.startswith("Dependency cycle: ") and all(n in reason for n in ("c1", "c2", "c3")), reason
    assert barge.wait_state("outside", "FAILED")["statusReason"] == "Dependent Job failed"


def test_failure_cascades_three_levels_and_afternotok_cleanup_runs(barge: Barge) -> None:
    jq = _env(barge)
    fail = failing(2)
    barge.apply(job_definition("bad", labels=fail["labels"], annotations=fail["annotations"]),
                job_definition("step"))
    barge.apply(batch_job("root", "bad", jq),
                batch_job("child", "step", jq, dependsOn=[{"jobName": "root"}]),
                batch_job("grandchild", "step", jq, dependsOn=[{"jobName": "child"}]),
                batch_job("cleanup", "step", jq, dependsOn=[{"jobName": "root", "condition": "Failed"}]),
                batch_job("always", "step", jq, dependsOn=[{"jobName": "root", "condition": "Finished"}]))
    assert barge.wait_state("root", "FAILED")["attempts"][0]["exitCode"] == 2
    for name in ("child", "grandchild"):
        status = barge.wait_state(name, "FAILED")
        assert status["statusReason"] == "Dependent Job failed" and not status.get("attempts")
    assert barge.wait_state("cleanup", "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"
    assert barge.wait_state("always", "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"


def test_failed_condition_on_a_job_that_succeeded_is_not_met(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step"), batch_job("ok", "step", jq),
                batch_job("on-failure", "step", jq, dependsOn=[{"jobName": "ok", "condition": "Failed"}]))
    reason = barge.wait_state("on-failure", "FAILED")["statusReason"]
    assert reason.startswith("Dependency condition not met") and "'ok'" in reason and "SUCCEEDED" in reason


def test_dependency_on_a_job_that_does_not_exist_yet_waits(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("step"), batch_job("later", "step", jq, dependsOn=[{"jobName": "first"}]))
    eventually(lambda: "does not exist yet" in (barge.status("later").get("statusReason") or ""), 30,
               message="a reason naming the missing dependency")
    assert barge.status("later")["state"] == "PENDING"
    barge.apply(batch_job("first", "step", jq))
    assert barge.wait_state("later", "SUCCEEDED")["state"] == "SUCCEEDED"


def test_dependencies_by_job_id_as_aws_writes_them(barge: Barge) -> None:
    jq = _env(barge)
    fail = failing(2)
    barge.apply(job_definition("bad", labels=fail["labels"], annotations=fail["annotations"]),
                job_definition("step"), batch_job("root", "bad", jq))
    root_id = eventually(lambda: barge.status("root").get("jobId"), 30, message="root's jobId")
    barge.apply(batch_job("by-id", "step", jq, dependsOn=[{"jobId": root_id}]),
                batch_job("on-failure", "step", jq, dependsOn=[{"jobId": root_id, "condition": "Failed"}]))
    assert barge.wait_state("root", "FAILED")["attempts"][0]["exitCode"] == 2
    status = barge.wait_state("by-id", "FAILED")
    assert status["statusReason"] == "Dependent Job failed" and not status.get("attempts")
    assert barge.wait_state("on-failure", "SUCCEEDED", "FAILED")["state"] == "SUCCEEDED"


def test_retry_runs_a_second_attempt_that_sees_its_number(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("flaky", annotations={BY_ATTEMPT: "1=3"}, retryStrategy={"attempts": 2}),
                batch_job("flaky", "flaky", jq))
    status = barge.wait_state("flaky", "SUCCEEDED", "FAILED")
    assert status["state"] == "SUCCEEDED"
    assert [a["exitCode"] for a in status["attempts"]] == [3, 0]
    pods = sorted(_pods(barge, status["jobId"]), key=lambda p: p.metadata.labels["barge.dev/attempt"])
    assert [next(e.value for e in p.spec.containers[0].env if e.name == "AWS_BATCH_JOB_ATTEMPT") for p in pods] == \
        ["1", "2"]


def test_exit_rule_stops_retries(barge: Barge) -> None:
    jq = _env(barge)
    retry = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "4*", "action": "EXIT"}]}
    barge.apply(job_definition("dies", annotations={BY_ATTEMPT: "1=42,2=42,3=42"}, retryStrategy=retry),
                batch_job("dies", "dies", jq))
    status = barge.wait_state("dies", "FAILED")
    assert [a["exitCode"] for a in status["attempts"]] == [42]


def test_timeout_stops_the_attempt_and_is_never_retried(barge: Barge) -> None:
    jq = _env(barge)
    barge.apply(job_definition("sleeper", delay="600s", retryStrategy={"attempts": 3},
                               timeout={"attemptDurationSeconds": 60}),
                batch_job("single", "sleeper", jq), batch_job("array", "sleeper", jq, arrayProperties={"size": 2}))
    single = barge.wait_state("single", "FAILED", "SUCCEEDED", timeout=150)
    assert single["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(single["attempts"]) == 1
    array = barge.wait_state("array", "FAILED", "SUCCEEDED", timeout=150)
    assert array["arrayProperties"]["failedIndices"] == "0-1"
    child = array["arrayProperties"]["children"]["0"]["attempts"]
    assert len(child) == 1 and child[0]["statusReason"] == "Job attempt duration exceeded timeout"
    def running() -> list[str]:
        pods = _pods(barge, single["jobId"]) + _pods(barge, array["jobId"])
        return [f"{p.metadata.name} deleting={p.metadata.deletion_timestamp}" for p in pods
                if p.status.phase == "Running"]

    deadline = time.monotonic() + 60
    while running() and time.monotonic() < deadline:
        time.sleep(1)
    assert running() == [], "timed-out pods must be stopped"


def test_job_state_time_limit_action_cancels_a_job_blocked_too_long(barge: Barge) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    action = {"reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", "state": "RUNNABLE",
              "maxTimeSeconds": 600, "action": "CANCEL"}
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce], jobStateTimeLimitActions=[action]),
                job_definition("huge", cpu="8"), job_definition("fits", cpu="8"))
    barge.apply(batch_job("huge", "huge", jq))
    status = eventually(lambda: (s := barge.status("huge")).get("waiting") and s, 30, message="a waiting reason")
    assert status["waiting"]["category"] == action["reason"]
    time.sleep(2)
    assert barge.status("huge")["state"] == "RUNNABLE", "cancelled before maxTimeSeconds"
    # Ten minutes of waiting, without waiting ten minutes: move the recorded start of the wait back.
    since = status["waiting"]["since"] - 601
    barge.cluster.custom.patch_namespaced_custom_object_status(
        "barge.dev", "v1alpha1", barge.namespace, "batchjobs", "huge",
        {"status": {"waiting": {"category": action["reason"], "since": since}}})
    cancelled = barge.wait_state("huge", "FAILED", timeout=30)
    assert cancelled["isCancelled"] is True
    assert cancelled["statusReason"].startswith("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")
