"""Containers that cannot start on a real kubelet: a missing image, a missing Secret, a failing init
container. Each ends its attempt in AWS's words and the pod is stopped (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.barge_objects import API, Barge, batch_job, compute_environment, job_queue
from tests.e2e.conftest import OperatorProcess
from tests.e2e.kube import eventually

WORKER = "localhost/barge/worker:busybox"
GRACE = 5
ENDS_WITHIN = GRACE + 90  # the kubelet's first pull attempt and report come first


@pytest.fixture(scope="module", autouse=True)
def short_grace(operator_process: OperatorProcess | None) -> Iterator[None]:
    if operator_process is None:
        pytest.skip("the operator is installed externally; these tests restart a local one with a short grace period")
    operator_process.restart(BARGE_STARTUP_FAILURE_SECONDS=str(GRACE))
    yield
    operator_process.restart()


@pytest.fixture
def real_queue(barge: Barge, real_node: str) -> str:
    ce, jq = barge.name("real-ce"), barge.name("real-q")
    barge.apply(compute_environment(ce, 2, pool="real"), job_queue(jq, [ce]))
    return jq


def definition(name: str, image: str = WORKER, pull: str = "Never", env: list[dict[str, Any]] | None = None,
               init_script: str | None = None) -> dict[str, Any]:
    container = {"name": "main", "image": image, "imagePullPolicy": pull, "command": ["sh", "-c", "echo ran"],
                 "env": env or [], "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 5}
    if init_script is not None:
        spec["initContainers"] = [{"name": "setup", "image": WORKER, "imagePullPolicy": "Never",
                                   "command": ["sh", "-c", init_script]}]
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name},
            "spec": {"template": {"spec": spec}}}


def ends_failed(barge: Barge, name: str) -> dict[str, Any]:
    status = barge.wait_state(name, "FAILED", "SUCCEEDED", timeout=ENDS_WITHIN)
    assert status["state"] == "FAILED", status
    [attempt] = status["attempts"]
    assert attempt["statusReason"] == status["statusReason"] and attempt["nodeName"] == "barge-real"
    return status


def live_pods(barge: Barge, status: dict[str, Any]) -> list[str]:
    pods = barge.cluster.core.list_namespaced_pod(barge.namespace, label_selector=f"barge.dev/job-id={status['jobId']}")
    return [p.metadata.name for p in pods.items]


def test_a_missing_image_fails_with_cannot_pull_and_its_pull_is_stopped(barge: Barge, real_queue: str) -> None:
    barge.apply(definition("typo", image="localhost/barge/no-such-image:typo", pull="IfNotPresent"),
                batch_job("typo", "typo", real_queue))
    status = ends_failed(barge, "typo")
    assert status["statusReason"].startswith("CannotPullContainerError: "), status
    assert "no-such-image" in status["statusReason"], "the kubelet's message names the image"
    assert status["attempts"][0]["reason"] in ("ErrImagePull", "ImagePullBackOff")
    eventually(lambda: not live_pods(barge, status), 60, message="the pod pulling a missing image to be gone")


def test_a_missing_secret_fails_with_resource_initialization(barge: Barge, real_queue: str) -> None:
    secret_env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "password"}}}]
    barge.apply(definition("secretive", env=secret_env), batch_job("no-secret", "secretive", real_queue))
    status = ends_failed(barge, "no-secret")
    assert status["statusReason"] == 'ResourceInitializationError: secret "db-password" not found', status
    assert status["attempts"][0]["reason"] == "CreateContainerConfigError"


def test_a_failing_init_container_fails_with_resource_initialization(barge: Barge, real_queue: str) -> None:
    barge.apply(definition("setup-fails", init_script="exit 3"), batch_job("no-setup", "setup-fails", real_queue))
    status = ends_failed(barge, "no-setup")
    assert status["statusReason"] == "ResourceInitializationError: init container 'setup' exited with code 3", status
    assert status["attempts"][0]["reason"] == "Init:Error" and "exitCode" not in status["attempts"][0]
