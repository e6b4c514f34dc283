"""Level-based reconciling: an operator killed at any point converges, creating nothing twice."""

from __future__ import annotations

import time
import urllib.request
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import METRICS_PORT, OperatorProcess
from tests.e2e.kube import eventually


@pytest.fixture
def process(operator_process: OperatorProcess | None) -> OperatorProcess:
    if operator_process is None:
        pytest.skip("the operator is installed externally; this test restarts a local one")
    return operator_process


def test_killed_operator_converges_without_duplicate_jobs(barge: Barge, process: OperatorProcess) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), job_definition("work", cpu="1", delay="2s"))
    names = [f"j{i:02d}" for i in range(16)]
    barge.apply(*[batch_job(n, "work", jq) for n in names])
    for _ in range(3):
        time.sleep(2.5)
        process.restart(kill=True)
    done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=240)
    failed = {n: (s.get("statusReason"), s.get("attempts")) for n, s in done.items() if s["state"] != "SUCCEEDED"}
    assert not failed, failed
    jobs = barge.cluster.batch.list_namespaced_job(barge.namespace).items
    per_batchjob = Counter(j.metadata.labels["barge.dev/job-id"] for j in jobs)
    assert len(per_batchjob) == len(names) and set(per_batchjob.values()) == {1}, per_batchjob


def test_finished_jobs_are_deleted_after_the_retention(barge: Barge, process: OperatorProcess) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), job_definition("work"))
    process.restart(BARGE_FINISHED_JOB_RETENTION="3")
    try:
        barge.apply(batch_job("short-lived", "work", jq))
        barge.wait_state("short-lived", "SUCCEEDED")
        eventually(lambda: "short-lived" not in [j["metadata"]["name"] for j in barge.cluster.batchjobs(
            barge.namespace)], 30, message="the finished BatchJob to be deleted after 3 s")
    finally:
        process.restart()


def test_a_finished_jobs_kubernetes_job_and_pod_are_deleted_after_the_ttl(
        barge: Barge, process: OperatorProcess) -> None:
    """Barge manages one-pod jobs' Jobs, so the TTL controller never sees them finish: Barge deletes
    them (and so their pods) --kubernetes-job-ttl after the job finished; the BatchJob keeps its status."""
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), job_definition("work"))
    process.restart(BARGE_KUBERNETES_JOB_TTL="2")
    try:
        barge.apply(batch_job("tidy", "work", jq))
        status = barge.wait_state("tidy", "SUCCEEDED")
        selector = f"barge.dev/job-id={status['jobId']}"
        eventually(lambda: not barge.cluster.batch.list_namespaced_job(barge.namespace, label_selector=selector).items
                   and not barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=selector).items,
                   60, message="the finished job's Kubernetes Job and pod to be deleted after 2 s")
        assert barge.status("tidy")["attempts"] == status["attempts"]
    finally:
        process.restart()


def test_unschedulable_pod_says_why_in_the_reason(barge: Barge) -> None:
    """The environment's nodes have room (so the job is admitted), but the job's own template asks for
    a node label none has: its pod cannot be scheduled, and the job says why. (An environment whose own
    selector matches no node admits nothing: see test_node_room.)"""
    ce, jq = barge.name("ce"), barge.name("q")
    nowhere = job_definition("work")
    nowhere["spec"]["template"]["spec"]["nodeSelector"] = {"example.com/no-node-has": "this-label"}
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), nowhere)
    barge.apply(batch_job("stuck", "work", jq))
    reason = eventually(lambda: (r := barge.status("stuck").get("statusReason") or "").startswith(
        "Pod cannot be scheduled") and r, 60, message="an unschedulable reason")
    assert "node" in reason and barge.status("stuck")["state"] == "STARTING"


def _recovered_placements() -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "barge_placements_recovered_total")


def test_operator_killed_between_creating_jobs_and_writing_their_status(
        barge: Barge, process: OperatorProcess) -> None:
    """Dispatch creates the Kubernetes Job before it writes STARTING. Killed in between, the next
    operator reads the placement back from the Job: same environment, no second Job, quota intact."""
    small, large, jq = barge.name("small"), barge.name("large"), barge.name("q")
    barge.apply(compute_environment(small, 2), compute_environment(large, 8), job_queue(jq, [small, large]),
                job_definition("work", cpu="1", delay="6s"))
    process.restart(BARGE_PLACEMENT_REPORT_SECONDS="3600")
    names = [f"j{i}" for i in range(8)]
    try:
        barge.apply(*[batch_job(n, "work", jq) for n in names])
        eventually(lambda: len(barge.cluster.batch.list_namespaced_job(barge.namespace).items) == len(names),
                   60, interval=0.05, message="a Kubernetes Job for every BatchJob")
        process.stop(kill=True)
        unrecorded = [n for n in names if barge.status(n).get("state") in (None, "RUNNABLE")]
        assert unrecorded, "every status was written before the kill; the test did not reach its case"
    finally:
        process.restart()
    done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=120)
    assert {s["state"] for s in done.values()} == {"SUCCEEDED"}, done
    jobs = barge.cluster.batch.list_namespaced_job(barge.namespace).items
    placed_on = {j.metadata.labels["barge.dev/batchjob"]: j.metadata.annotations["barge.dev/compute-environment"]
                 for j in jobs}
    assert len(jobs) == len(names) and set(placed_on) == set(names)
    assert {n: s["computeEnvironment"] for n, s in done.items()} == placed_on
    assert sorted(placed_on.values()).count(small) == 2, placed_on
    assert _recovered_placements() == len(unrecorded)
