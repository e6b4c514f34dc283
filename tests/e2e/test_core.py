"""A job's whole life through queues and compute environments, on the real cluster."""

from __future__ import annotations

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


def _setup(barge: Barge, max_vcpus: int = 8, **definition: Any) -> tuple[str, str]:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, max_vcpus), job_queue(jq, [ce]),
                job_definition("work", **definition))
    return ce, jq


def test_job_runs_through_every_state_with_env_params_and_placement(barge: Barge) -> None:
    ce, jq = _setup(barge, delay="4s", command=["sh", "-c", "render Ref::frame Ref::codec Ref::unknown"],
                    parameters={"frame": "1", "codec": "h264"})
    barge.apply(batch_job("one", "work", jq, parameters={"frame": "42"}))
    running = barge.wait_state("one", "RUNNING")
    assert running["computeEnvironment"] == ce
    status = barge.wait_state("one", "SUCCEEDED", "FAILED")
    assert status["state"] == "SUCCEEDED", status
    job = barge.job("one")
    assert status["jobId"] == job["metadata"]["uid"]
    [attempt] = status["attempts"]
    assert attempt["exitCode"] == 0 and attempt["podName"] and attempt["nodeName"].startswith("kwok-cpu-")
    assert attempt["startedAt"] and attempt["stoppedAt"] and status["startedAt"] and status["stoppedAt"]

    kube_jobs = barge.cluster.batch.list_namespaced_job(
        barge.namespace, label_selector=f"barge.dev/job-id={status['jobId']}").items
    assert len(kube_jobs) == 1
    owner = kube_jobs[0].metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("BatchJob", "one", status["jobId"])
    pods = barge.cluster.core.list_namespaced_pod(
        barge.namespace, label_selector=f"barge.dev/job-id={status['jobId']}").items
    assert len(pods) == 1
    # Barge creates the pod itself under the Job it manages, named and labelled as the Job controller would
    kube_job = kube_jobs[0].metadata
    assert kube_jobs[0].spec.managed_by == "barge.dev/operator"
    assert pods[0].metadata.name == attempt["podName"] and attempt["podName"].startswith(f"{kube_job.name}-")
    [pod_owner] = pods[0].metadata.owner_references
    assert (pod_owner.kind, pod_owner.name, pod_owner.uid) == ("Job", kube_job.name, kube_job.uid)
    assert pods[0].metadata.labels["job-name"] == kube_job.name
    container = pods[0].spec.containers[0]
    assert container.command == ["sh", "-c", "render 42 h264 Ref::unknown"]
    env = {e.name: e.value for e in container.env}
    assert env["AWS_BATCH_JOB_ID"] == status["jobId"]
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert env["AWS_BATCH_JQ_NAME"] == jq and env["AWS_BATCH_CE_NAME"] == ce
    assert pods[0].spec.node_selector == {"barge.dev/pool": "cpu"}


def test_quota_is_never_exceeded_with_twenty_jobs_at_once(barge: Barge) -> None:
    _setup(barge, max_vcpus=8, cpu="2", delay="3s")
    names = [f"j{i:02d}" for i in range(20)]
    peak = {"pods": 0, "jobs": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            pods = barge.cluster.core.list_namespaced_pod(barge.namespace).items
            live = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
            cpu = sum(parse_cpu_milli(c.resources.requests["cpu"]) for p in live for c in p.spec.containers)
            peak["pods"] = max(peak["pods"], cpu)
            jobs = barge.cluster.batchjobs(barge.namespace)
            active = [j for j in jobs if (j.get("status") or {}).get("state") in ("STARTING", "RUNNING")]
            peak["jobs"] = max(peak["jobs"], len(active))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    barge.apply(*[batch_job(n, "work", barge.name("q")) for n in names])
    try:
        done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=180)
    finally:
        stop.set()
        watcher.join()
    assert {s["state"] for s in done.values()} == {"SUCCEEDED"}
    assert peak["jobs"] <= 4, f"{peak['jobs']} jobs were STARTING/RUNNING at once on 8 vCPUs"
    assert peak["pods"] <= 8000, f"running pods requested {peak['pods']}m CPU on an 8-vCPU quota"
    assert peak["jobs"] >= 3, "the environment was never used near its quota"


def _start_order(barge: Barge, names: list[str]) -> list[str]:
    done = barge.wait_all(names, "SUCCEEDED", timeout=180)
    return sorted(names, key=lambda n: done[n]["attempts"][0]["startedAt"])


def test_high_priority_queue_first_and_fifo_inside_a_queue(barge: Barge) -> None:
    ce, high, low = barge.name("ce"), barge.name("high"), barge.name("low")
    barge.apply(compute_environment(ce, 2), job_queue(high, [ce], priority=100), job_queue(low, [ce], priority=1),
                job_definition("work", cpu="2", delay="2s"), job_definition("blocker", cpu="2", delay="6s"))
    barge.apply(batch_job("blocker", "blocker", low))
    barge.wait_state("blocker", "RUNNING", "STARTING")
    lows = [f"low-{i}" for i in range(3)]
    highs = [f"high-{i}" for i in range(3)]
    for name in lows:
        barge.apply(batch_job(name, "work", low))
        time.sleep(0.3)
    for name in highs:
        barge.apply(batch_job(name, "work", high))
        time.sleep(0.3)
    assert _start_order(barge, lows + highs) == highs + lows


def test_compute_environments_tried_in_order(barge: Barge) -> None:
    first, second, jq = barge.name("first"), barge.name("second"), barge.name("q")
    barge.apply(compute_environment(first, 2), compute_environment(second, 8),
                job_queue(jq, [first, second]), job_definition("work", cpu="2", delay="5s"))
    barge.apply(*[batch_job(f"j{i}", "work", jq) for i in range(3)])
    running = barge.wait_all(["j0", "j1", "j2"], "RUNNING", "STARTING", "SUCCEEDED")
    placed = sorted(s["computeEnvironment"] for s in running.values())
    assert placed == sorted([first, second, second])


def test_non_zero_exit_code_fails_the_job_with_it(barge: Barge) -> None:
    _, jq = _setup(barge)
    barge.apply(job_definition("bad", **{"annotations": failing(3)["annotations"], "labels": failing(3)["labels"]}),
                batch_job("bad", "bad", jq))
    status = barge.wait_state("bad", "FAILED", "SUCCEEDED")
    assert status["state"] == "FAILED"
    assert status["attempts"][-1]["exitCode"] == 3
    assert status["statusReason"] == "Essential container in task exited"


def test_missing_queue_definition_and_disabled_queue_fail_with_the_piece_named(barge: Barge) -> None:
    ce, jq, off = barge.name("ce"), barge.name("q"), barge.name("off")
    barge.apply(compute_environment(ce, 8), job_queue(jq, [ce]), job_queue(off, [ce], state="DISABLED"),
                job_definition("work"))
    barge.apply(batch_job("no-queue", "work", "nope-queue"), batch_job("no-def", "nope-def", jq),
                batch_job("off", "work", off))
    assert "nope-queue" in barge.wait_state("no-queue", "FAILED")["statusReason"]
    assert "nope-def" in barge.wait_state("no-def", "FAILED")["statusReason"]
    reason = barge.wait_state("off", "FAILED")["statusReason"]
    assert off in reason and "DISABLED" in reason


def test_runnable_reasons_say_what_is_missing_where(barge: Barge) -> None:
    ce, jq = _setup(barge, max_vcpus=4, cpu="4", delay="30s")
    barge.apply(job_definition("huge", cpu="16"), job_definition("gpu", resources={
        "requests": {"cpu": "1", "nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}))
    barge.apply(batch_job("filler", "work", jq))
    barge.wait_state("filler", "RUNNING", "STARTING")
    barge.apply(batch_job("huge", "huge", jq), batch_job("gpu", "gpu", jq), batch_job("waits", "work", jq))

    def reason(name: str, prefix: str) -> str:
        return eventually(lambda: (r := barge.status(name).get("statusReason") or "").startswith(prefix) and r,
                          30, message=f"{name} reason {prefix}; seen {barge.status(name)}")

    assert ce in reason("huge", "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - ")
    assert "GPU" in reason("gpu", "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - ")
    waits = reason("waits", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - ")
    assert ce in waits and "0 of 4 vCPU" in waits
    assert barge.status("huge")["state"] == "RUNNABLE"


def test_disabled_environment_holds_jobs_until_enabled(barge: Barge) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 8, state="DISABLED"), job_queue(jq, [ce]), job_definition("work"))
    barge.apply(batch_job("held", "work", jq))
    eventually(lambda: "DISABLED" in (barge.status("held").get("statusReason") or ""), 30,
               message="a reason naming the DISABLED environment")
    time.sleep(2)
    assert barge.status("held")["state"] == "RUNNABLE"
    barge.apply(compute_environment(ce, 8))
    assert barge.wait_state("held", "SUCCEEDED")["computeEnvironment"] == ce


def test_cancel_runnable_and_terminate_running(barge: Barge) -> None:
    _ce, jq = _setup(barge, max_vcpus=1, cpu="1", delay="60s")
    barge.apply(batch_job("runs", "work", jq), batch_job("waits", "work", jq))
    barge.wait_state("runs", "RUNNING")
    barge.wait_state("waits", "RUNNABLE")
    barge.cluster.kubectl("patch", "batchjob", "waits", "-n", barge.namespace, "--type=merge",
                          "-p", '{"spec":{"cancel":{"reason":"not needed"}}}')
    cancelled = barge.wait_state("waits", "FAILED")
    assert cancelled["isCancelled"] is True and cancelled["statusReason"] == "not needed"
    barge.cluster.kubectl("patch", "batchjob", "runs", "-n", barge.namespace, "--type=merge",
                          "-p", '{"spec":{"terminate":{"reason":"stop it"}}}')
    terminated = barge.wait_state("runs", "FAILED")
    assert terminated["isTerminated"] is True and terminated["statusReason"] == "stop it"
    assert terminated["attempts"][-1]["statusReason"] == "stop it"
    eventually(lambda: not barge.cluster.batch.list_namespaced_job(
        barge.namespace, label_selector=f"barge.dev/job-id={terminated['jobId']}").items, 30,
        message="the terminated job's Kubernetes Job to be deleted")
    again = barge.cluster.kubectl("patch", "batchjob", "runs", "-n", barge.namespace, "--type=merge",
                                  "-p", '{"spec":{"terminate":{"reason":"changed my mind"}}}', check=False)
    assert again.returncode != 0 and "spec.terminate is final" in again.stderr


def test_deleting_a_batchjob_removes_its_job_and_pods(barge: Barge) -> None:
    _, jq = _setup(barge, delay="60s")
    barge.apply(batch_job("doomed", "work", jq))
    job_id = barge.wait_state("doomed", "RUNNING")["jobId"]
    barge.cluster.kubectl("delete", "batchjob", "doomed", "-n", barge.namespace)
    selector = f"barge.dev/job-id={job_id}"
    eventually(lambda: not barge.cluster.batch.list_namespaced_job(barge.namespace, label_selector=selector).items
               and not barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=selector).items,
               60, message="the Kubernetes Job and pods to be garbage-collected")


def test_a_running_job_whose_pod_or_kubernetes_job_is_deleted_by_hand_ends_its_attempt(barge: Barge) -> None:
    """Nothing but Barge should delete them, but people do: the attempt fails (and is retried when the
    retry strategy allows), it does not stay RUNNING for ever."""
    _, jq = _setup(barge, delay="600s")
    barge.apply(batch_job("pod-deleted", "work", jq), batch_job("job-deleted", "work", jq,
                                                                retryStrategy={"attempts": 2}))
    ids = {name: barge.wait_state(name, "RUNNING")["jobId"] for name in ("pod-deleted", "job-deleted")}
    barge.cluster.kubectl("delete", "pods", "-n", barge.namespace, "-l", f"barge.dev/job-id={ids['pod-deleted']}",
                          "--grace-period=0", "--force")
    barge.cluster.kubectl("delete", "jobs", "-n", barge.namespace, "-l", f"barge.dev/job-id={ids['job-deleted']}")
    # kwok, like a kubelet, kills the container of a deleted pod (exit code 137) before the pod goes;
    # a pod that vanishes without that (a lost node) fails the attempt as "PodDeleted" (unit-tested).
    [attempt] = barge.wait_state("pod-deleted", "FAILED")["attempts"]
    assert attempt.get("exitCode") == 137 or attempt.get("reason") == "PodDeleted", attempt
    retried = eventually(lambda: (s := barge.status("job-deleted")).get("currentAttempt") == 2
                         and s["state"] in ("STARTING", "RUNNING") and s, 60, message="the second attempt")
    assert retried["attempts"][0]["podName"], retried


def test_definition_edits_do_not_change_submitted_jobs(barge: Barge) -> None:
    _ce, jq = _setup(barge, max_vcpus=1, cpu="1", delay="3s", command=["echo", "original"])
    barge.apply(batch_job("blocker", "work", jq))
    barge.wait_state("blocker", "STARTING", "RUNNING")
    barge.apply(batch_job("later", "work", jq))
    barge.wait_state("later", "RUNNABLE")
    barge.apply(job_definition("work", cpu="1", delay="3s", command=["echo", "edited"]))
    job_id = barge.wait_state("later", "SUCCEEDED")["jobId"]
    pod = barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=f"barge.dev/job-id={job_id}").items[0]
    assert pod.spec.containers[0].command == ["echo", "original"]


def test_finished_job_keeps_its_status_after_kubernetes_cleans_up(barge: Barge) -> None:
    _, jq = _setup(barge)
    barge.apply(batch_job("kept", "work", jq))
    status = barge.wait_state("kept", "SUCCEEDED")
    barge.cluster.kubectl("delete", "jobs", "-n", barge.namespace, "-l", f"barge.dev/job-id={status['jobId']}",
                          "--cascade=foreground")
    time.sleep(3)
    after = barge.status("kept")
    assert after["state"] == "SUCCEEDED" and after["attempts"] == status["attempts"]


def test_events_tell_the_story_and_statuses_count(barge: Barge) -> None:
    ce, jq = _setup(barge, max_vcpus=1, cpu="1", delay="3s")
    barge.apply(batch_job("story", "work", jq), batch_job("waits", "work", jq))
    barge.wait_all(["story", "waits"], "SUCCEEDED")

    def events(name: str) -> list[tuple[str, str]]:
        found = barge.cluster.core.list_namespaced_event(
            barge.namespace, field_selector=f"involvedObject.name={name}").items
        return [(e.reason, e.message) for e in sorted(found, key=lambda e: e.metadata.creation_timestamp)]

    def story(name: str, needed: set[str]) -> list[tuple[str, str]] | None:
        seen = events(name)
        return seen if needed <= {reason for reason, _ in seen} else None

    first, second = sorted(["story", "waits"], key=lambda n: barge.status(n)["attempts"][0]["startedAt"])
    placed_at_once = eventually(lambda: story(first, {"Starting", "Running", "Succeeded"}), 30,
                                message="state-change events")
    starting = next(message for reason, message in placed_at_once if reason == "Starting")
    assert "Admitted to job queue" in starting and "(RUNNABLE)" in starting and ce in starting
    assert eventually(lambda: story(second, {"Runnable", "Starting", "Running", "Succeeded"}), 30,
                      message="events of the job that waited for capacity")
    queue = eventually(lambda: (s := barge.cluster.cluster_object("jobqueues", jq).get("status") or {})
                       .get("jobCounts", {}).get("SUCCEEDED") == 2 and s, 30, message="queue counts")
    assert queue["status"] == "VALID"
    environment = barge.cluster.cluster_object("computeenvironments", ce)["status"]
    assert environment["status"] == "VALID" and environment["vcpuUsage"].endswith("/1")


def test_disabling_an_environment_posts_an_event(barge: Barge) -> None:
    ce, _ = _setup(barge)
    eventually(lambda: (barge.cluster.cluster_object("computeenvironments", ce).get("status") or {}).get("state"),
               30, message="the environment's status")
    barge.apply(compute_environment(ce, 8, state="DISABLED"))

    def disabled_event() -> list[str]:
        found = barge.cluster.core.list_namespaced_event("default", field_selector=f"involvedObject.name={ce}").items
        return [e.message for e in found if e.reason == "ComputeEnvironmentDisabled"]

    assert "DISABLED" in eventually(disabled_event, 30, message="a ComputeEnvironmentDisabled event")[0]


def test_an_invalid_environment_says_why_and_its_waiting_jobs_are_told_it_is_invalid(barge: Barge) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    managed = compute_environment(ce, 8, desiredvCpus=4)
    managed["spec"]["type"] = "MANAGED"  # it starts at minvCpus 0: desiredvCpus above it is refused
    barge.apply(managed, job_queue(jq, [ce]), job_definition("work"))
    barge.apply(batch_job("waits", "work", jq))

    def invalid() -> dict[str, Any] | None:
        status = barge.cluster.cluster_object("computeenvironments", ce).get("status") or {}
        return status if status.get("status") == "INVALID" else None

    status = eventually(invalid, 30, message="the environment INVALID")
    assert status["statusReason"].startswith("spec.computeResources.desiredvCpus:")
    reason = eventually(lambda: barge.status("waits").get("statusReason") if barge.status("waits").get("waiting")
                        else None, 30, message="the waiting job's reason")
    assert f"'{ce}' is INVALID" in reason and barge.status("waits")["state"] == "RUNNABLE"
