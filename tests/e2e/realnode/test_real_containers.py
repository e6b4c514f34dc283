"""AWS-style scripts in real containers on the real node, driven through Barge's own resources."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.barge_objects import API, Barge, batch_job, compute_environment, job_queue
from tests.e2e.kube import eventually

WORKER = "localhost/barge/worker:busybox"


def script_definition(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": WORKER, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                 "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [container], "terminationGracePeriodSeconds": 5}},
                     **spec}}


@pytest.fixture
def real(barge: Barge, real_node: str) -> tuple[Barge, str, str]:
    ce, jq = barge.name("real-ce"), barge.name("real-q")
    barge.apply(compute_environment(ce, 4, pool="real"), job_queue(jq, [ce]))
    return barge, ce, jq


def logs(barge: Barge, pod: str) -> str:
    return barge.cluster.kubectl("logs", "-n", barge.namespace, pod).stdout


def test_aws_style_script_sees_its_environment_and_its_output_comes_back(real: tuple[Barge, str, str]) -> None:
    barge, ce, jq = real
    script = ('echo "id=$AWS_BATCH_JOB_ID attempt=$AWS_BATCH_JOB_ATTEMPT queue=$AWS_BATCH_JQ_NAME '
              'ce=$AWS_BATCH_CE_NAME frame=Ref::frame"')
    barge.apply(script_definition("hello", script, parameters={"frame": "1"}),
                batch_job("hello", "hello", jq, parameters={"frame": "42"}))
    status = barge.wait_state("hello", "SUCCEEDED", "FAILED", timeout=120)
    assert status["state"] == "SUCCEEDED", status
    [attempt] = status["attempts"]
    assert attempt["exitCode"] == 0 and attempt["nodeName"] == "barge-real"
    assert logs(barge, attempt["podName"]).strip() == (
        f"id={status['jobId']} attempt=1 queue={jq} ce={ce} frame=42")


def test_array_child_that_exits_3_fails_alone_and_fails_the_parent(real: tuple[Barge, str, str]) -> None:
    barge, _, jq = real
    script = 'echo "child $AWS_BATCH_JOB_ARRAY_INDEX of $AWS_BATCH_JOB_ARRAY_SIZE"; ' \
             '[ "$AWS_BATCH_JOB_ARRAY_INDEX" = 2 ] && exit 3; exit 0'
    barge.apply(script_definition("five", script), batch_job("five", "five", jq, arrayProperties={"size": 5}))
    status = barge.wait_state("five", "SUCCEEDED", "FAILED", timeout=180)
    assert status["state"] == "FAILED", status
    array = status["arrayProperties"]
    assert array["statusSummary"]["SUCCEEDED"] == 4 and array["statusSummary"]["FAILED"] == 1
    assert array["succeededIndices"] == "0-1,3-4" and array["failedIndices"] == "2"
    [attempt] = array["children"]["2"]["attempts"]
    assert attempt["exitCode"] == 3
    assert logs(barge, attempt["podName"]).strip() == "child 2 of 5"


def test_a_script_that_fails_its_first_attempt_succeeds_on_the_retry(real: tuple[Barge, str, str]) -> None:
    barge, _, jq = real
    script = 'echo "attempt $AWS_BATCH_JOB_ATTEMPT"; [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ] && exit 9; exit 0'
    barge.apply(script_definition("flaky", script, retryStrategy={"attempts": 2}),
                batch_job("flaky", "flaky", jq))
    status = barge.wait_state("flaky", "SUCCEEDED", "FAILED", timeout=180)
    assert status["state"] == "SUCCEEDED", status
    assert [a["exitCode"] for a in status["attempts"]] == [9, 0]
    assert logs(barge, status["attempts"][1]["podName"]).strip() == "attempt 2"


def _sleepers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", b"600"]:
                found.append(int(entry.name))
    return found


def test_timeout_really_stops_the_container(real: tuple[Barge, str, str], cluster: Any) -> None:
    barge, _, jq = real
    barge.apply(script_definition("sleeper", "exec sleep 600", timeout={"attemptDurationSeconds": 60},
                                  retryStrategy={"attempts": 2}),
                batch_job("sleeper", "sleeper", jq))
    barge.wait_state("sleeper", "RUNNING", timeout=120)
    if cluster.local:
        assert eventually(_sleepers, 30, message="the container's sleep 600 on this machine")
    started = time.monotonic()
    status = barge.wait_state("sleeper", "FAILED", "SUCCEEDED", timeout=150)
    assert status["state"] == "FAILED" and status["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(status["attempts"]) == 1, "a timeout is never retried"
    assert time.monotonic() - started < 90
    if cluster.local:
        eventually(lambda: not _sleepers(), 45, message="no sleep 600 left on the node")
    pod = status["attempts"][0]["podName"]

    def pod_stopped() -> bool:
        pods = barge.cluster.core.list_namespaced_pod(barge.namespace, field_selector=f"metadata.name={pod}").items
        return not pods or pods[0].status.phase in ("Failed", "Succeeded")

    eventually(pod_stopped, 60, message=f"pod {pod} stopped")
