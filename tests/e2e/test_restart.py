"""Level-based reconciling: an operator killed at any point converges, creating nothing twice."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import OperatorProcess
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


def test_unschedulable_pod_says_why_in_the_reason(barge: Barge) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    nowhere = compute_environment(ce, 4)
    nowhere["spec"]["computeResources"]["nodeSelector"] = {"barge.dev/pool": "does-not-exist"}
    barge.apply(nowhere, job_queue(jq, [ce]), job_definition("work"))
    barge.apply(batch_job("stuck", "work", jq))
    reason = eventually(lambda: (r := barge.status("stuck").get("statusReason") or "").startswith(
        "Pod cannot be scheduled") and r, 60, message="an unschedulable reason")
    assert "node" in reason and barge.status("stuck")["state"] == "STARTING"
