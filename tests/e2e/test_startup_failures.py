"""Containers that cannot start (issue 17): their attempt ends after the grace period with AWS's
statusReason, their capacity is freed at once, and the retry strategy decides.

kwok runs no containers: the pod-waiting stage (operator/barge/dev/stages.py) keeps an annotated
pod's main container waiting with the reason a kubelet would report. The operator runs with a grace
period of GRACE seconds here (the default is a minute).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from barge.core.times import parse_time
from barge.dev.stages import WAITING_INDICES_ANNOTATION, WAITING_MESSAGE_ANNOTATION, WAITING_REASON_ANNOTATION
from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import OperatorProcess
from tests.e2e.kube import eventually

GRACE = 3
# The grace period, the sweep that looks again every 2 s, and a loaded 2-core machine.
ENDS_WITHIN = GRACE + 30
PULL_MESSAGE = 'Failed to pull image "busybx": not found'


@pytest.fixture(scope="module", autouse=True)
def short_grace(operator_process: OperatorProcess | None) -> Iterator[None]:
    if operator_process is None:
        pytest.skip("the operator is installed externally; these tests restart a local one with a short grace period")
    operator_process.restart(BARGE_STARTUP_FAILURE_SECONDS=str(GRACE))
    yield
    operator_process.restart()


def cannot_start(reason: str, message: str, indices: str | None = None) -> dict[str, str]:
    """Template annotations that make kwok report the main container waiting with `reason`."""
    annotations = {WAITING_REASON_ANNOTATION: reason, WAITING_MESSAGE_ANNOTATION: message}
    if indices is not None:
        annotations[WAITING_INDICES_ANNOTATION] = indices
    return annotations


def queue(barge: Barge, max_vcpus: int = 4) -> str:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, max_vcpus), job_queue(jq, [ce]))
    return jq


def pods_of(barge: Barge, status: dict[str, Any]) -> list[str]:
    pods = barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=f"barge.dev/job-id={status['jobId']}")
    return [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp]


def test_a_typo_in_the_image_fails_the_job_in_aws_words_and_frees_its_capacity(barge: Barge) -> None:
    jq = queue(barge, max_vcpus=1)
    barge.apply(job_definition("typo", cpu="1", annotations=cannot_start("ErrImagePull", PULL_MESSAGE)),
                job_definition("fine", cpu="1"), batch_job("typo", "typo", jq))
    barge.wait_state("typo", "STARTING")
    barge.apply(batch_job("next", "fine", jq))
    waiting = eventually(lambda: (s := barge.status("next")).get("state") == "RUNNABLE"
                         and "CAPACITY" in (s.get("statusReason") or "") and s, 30,
                         message="the second job waiting for the capacity the first holds")
    assert barge.status("typo")["state"] == "STARTING", waiting

    failed = barge.wait_state("typo", "FAILED", "SUCCEEDED", timeout=ENDS_WITHIN)
    assert failed["state"] == "FAILED" and failed["statusReason"] == f"CannotPullContainerError: {PULL_MESSAGE}"
    [attempt] = failed["attempts"]
    assert attempt["statusReason"] == failed["statusReason"] and attempt["reason"] == "ErrImagePull"
    assert attempt["podName"].startswith("typo-") and attempt["nodeName"].startswith("kwok-cpu-")
    assert "exitCode" not in attempt, "the container never ran"
    stopped, created = parse_time(failed["stoppedAt"]), parse_time(failed["createdAt"])
    assert stopped is not None and created is not None and stopped - created >= GRACE, "the grace period was given"
    eventually(lambda: not pods_of(barge, failed), 30, message="the pod that cannot start to be stopped")
    assert not [j for j in barge.cluster.batch.list_namespaced_job(barge.namespace).items
                if j.metadata.name.startswith("typo-") and not j.metadata.deletion_timestamp]

    ran = barge.wait_state("next", "SUCCEEDED", "FAILED", timeout=60)
    assert ran["state"] == "SUCCEEDED", ran


def test_a_retry_strategy_gives_a_pod_that_cannot_start_a_second_attempt(barge: Barge) -> None:
    jq = queue(barge)
    barge.apply(job_definition("typo", annotations=cannot_start("ErrImagePull", PULL_MESSAGE),
                               retryStrategy={"attempts": 2}),
                batch_job("twice", "typo", jq))
    failed = barge.wait_state("twice", "FAILED", "SUCCEEDED", timeout=2 * ENDS_WITHIN)
    assert failed["state"] == "FAILED" and failed["attemptCount"] == 2, failed
    assert [(a["reason"], a["statusReason"]) for a in failed["attempts"]] == [
        ("ErrImagePull", f"CannotPullContainerError: {PULL_MESSAGE}")] * 2
    first, second = (a["podName"] for a in failed["attempts"])
    assert first != second and first.startswith("twice-1-") and second.startswith("twice-2-")


def test_an_exit_rule_on_the_kubernetes_reason_stops_after_one_attempt(barge: Barge) -> None:
    jq = queue(barge)
    missing = 'secret "db-password" not found'
    barge.apply(job_definition("secretive", annotations=cannot_start("CreateContainerConfigError", missing),
                               retryStrategy={"attempts": 3, "evaluateOnExit": [
                                   {"onReason": "CreateContainerConfigError", "action": "EXIT"}]}),
                batch_job("no-secret", "secretive", jq))
    failed = barge.wait_state("no-secret", "FAILED", "SUCCEEDED", timeout=ENDS_WITHIN)
    assert failed["state"] == "FAILED" and failed["attemptCount"] == 1, failed
    assert failed["statusReason"] == f"ResourceInitializationError: {missing}"
    assert failed["attempts"][0]["reason"] == "CreateContainerConfigError"


def test_an_array_child_that_cannot_start_fails_alone(barge: Barge) -> None:
    jq = queue(barge)
    barge.apply(job_definition("mostly", annotations=cannot_start("ImagePullBackOff", PULL_MESSAGE, indices="1")),
                batch_job("three", "mostly", jq, arrayProperties={"size": 3}))
    done = barge.wait_state("three", "FAILED", "SUCCEEDED", timeout=ENDS_WITHIN + 30)
    array = done["arrayProperties"]
    assert done["state"] == "FAILED" and array["failedIndices"] == "1" and array["succeededIndices"] == "0,2", done
    [attempt] = array["children"]["1"]["attempts"]
    assert attempt["statusReason"] == f"CannotPullContainerError: {PULL_MESSAGE}"
    assert attempt["reason"] == "ImagePullBackOff" and attempt["podName"] == "three-1-1"
    eventually(lambda: "three-1-1" not in pods_of(barge, done), 30, message="the child's pod to be stopped")


def test_a_sequential_child_that_cannot_start_stops_its_successors(barge: Barge) -> None:
    jq = queue(barge)
    barge.apply(job_definition("chain", annotations=cannot_start("ErrImagePull", PULL_MESSAGE, indices="1")),
                batch_job("chain", "chain", jq, arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}]))
    done = barge.wait_state("chain", "FAILED", "SUCCEEDED", timeout=ENDS_WITHIN + 30)
    array = done["arrayProperties"]
    assert done["state"] == "FAILED" and array["succeededIndices"] == "0" and array["failedIndices"] == "1-2", done
    assert array["children"]["1"]["attempts"][0]["statusReason"] == f"CannotPullContainerError: {PULL_MESSAGE}"
    assert array["children"]["2"]["attempts"][0]["statusReason"] == "Dependent Job failed"
    eventually(lambda: "chain-1-1" not in pods_of(barge, done), 30, message="the child's pod to be stopped")
