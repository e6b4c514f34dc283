"""A job's transitions from what its pod shows, and AWS's retry rules."""

from __future__ import annotations

import pytest

from barge.core import lifecycle
from barge.core.lifecycle import KubeJobObservation, PodObservation

NOW = "2026-11-21T10:00:00Z"
ONCE = {"attempts": 1}
TWICE = {"attempts": 2}


def pod(phase: str, **kw: object) -> PodObservation:
    return PodObservation(name="p", attempt=1, phase=phase, node="n1", **kw)  # type: ignore[arg-type]


def test_running_container_moves_starting_to_running() -> None:
    out = lifecycle.advance("STARTING", 1, ONCE, pod("Running", running_since="t1"), None, NOW)
    assert out is not None and out.state == "RUNNING" and out.started_at == "t1"


def test_pending_pod_keeps_starting() -> None:
    assert lifecycle.advance("STARTING", 1, ONCE, pod("Pending"), None, NOW) is None


def test_success_records_the_attempt() -> None:
    out = lifecycle.advance("RUNNING", 1, ONCE, pod("Succeeded", exit_code=0, started_at="t1", finished_at="t2"),
                            None, NOW)
    assert out is not None and out.state == "SUCCEEDED"
    assert out.attempt == {"startedAt": "t1", "stoppedAt": "t2", "exitCode": 0,
                           "statusReason": lifecycle.ESSENTIAL_CONTAINER_EXITED, "podName": "p", "nodeName": "n1"}


def test_failure_without_attempts_left_fails_with_exit_code() -> None:
    out = lifecycle.advance("RUNNING", 1, ONCE, pod("Failed", exit_code=3, reason="Error"), None, NOW)
    assert out is not None and out.state == "FAILED" and not out.retry
    assert out.attempt is not None and out.attempt["exitCode"] == 3 and out.attempt["reason"] == "Error"


def test_failure_with_attempts_left_goes_back_to_runnable() -> None:
    out = lifecycle.advance("RUNNING", 1, TWICE, pod("Failed", exit_code=3), None, NOW)
    assert out is not None and out.state == "RUNNABLE" and out.retry


def test_pod_of_an_older_attempt_is_ignored() -> None:
    old = PodObservation(name="p", attempt=1, phase="Failed", exit_code=1)
    assert lifecycle.advance("STARTING", 2, TWICE, old, None, NOW) is None


def test_fast_pod_seen_only_terminated_still_finishes() -> None:
    out = lifecycle.advance("STARTING", 1, ONCE, pod("Succeeded", exit_code=0), None, NOW)
    assert out is not None and out.state == "SUCCEEDED"


def test_kubernetes_job_failure_without_pod_fails_with_its_reason() -> None:
    job = KubeJobObservation(name="j", attempt=1, failed_reason="DeadlineExceeded", failed_message="too slow")
    out = lifecycle.advance("STARTING", 1, ONCE, None, job, NOW)
    assert out is not None and out.state == "FAILED" and "DeadlineExceeded" in out.status_reason


def test_cancel_during_run_prevents_retry() -> None:
    out = lifecycle.advance("RUNNING", 1, TWICE, pod("Failed", exit_code=3), None, NOW, no_more_retries=True)
    assert out is not None and out.state == "FAILED"


@pytest.mark.parametrize(("rules", "exit_code", "reason", "expected"), [
    ([], 1, None, True),
    ([{"onExitCode": "3", "action": "RETRY"}, {"onExitCode": "*", "action": "EXIT"}], 3, None, True),
    ([{"onExitCode": "3", "action": "RETRY"}, {"onExitCode": "*", "action": "EXIT"}], 4, None, False),
    ([{"onExitCode": "1*", "action": "EXIT"}], 37, None, True),
    ([{"onExitCode": "1*", "action": "EXIT"}], 12, None, False),
    ([{"onReason": "OOM*", "onExitCode": "137", "action": "EXIT"}], 137, "OOMKilled", False),
    ([{"onReason": "OOM*", "onExitCode": "137", "action": "EXIT"}], 137, "Error", True),
    ([{"onStatusReason": "Essential*", "action": "EXIT"}], 1, None, False),
    ([{"onExitCode": "1", "action": "EXIT"}], None, None, True),
])
def test_evaluate_on_exit(rules: list[dict[str, str]], exit_code: int | None, reason: str | None,
                          expected: bool) -> None:
    strategy = {"attempts": 3, "evaluateOnExit": rules}
    assert lifecycle.should_retry(strategy, 1, lifecycle.ESSENTIAL_CONTAINER_EXITED, reason, exit_code) is expected


def test_no_retry_when_attempts_are_used_up() -> None:
    assert lifecycle.should_retry({"attempts": 2, "evaluateOnExit": [{"onExitCode": "*", "action": "RETRY"}]},
                                  2, None, None, 1) is False


def test_observe_pod_reads_main_container_and_index() -> None:
    body = {"metadata": {"name": "p", "labels": {"barge.dev/attempt": "2"},
                         "annotations": {"batch.kubernetes.io/job-completion-index": "7"}},
            "spec": {"nodeName": "n", "containers": [{"name": "main"}, {"name": "side"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "side", "state": {"running": {"startedAt": "x"}}},
                {"name": "main", "state": {"terminated": {"exitCode": 3, "reason": "Error",
                                                           "startedAt": "a", "finishedAt": "b"}}}]}}
    seen = lifecycle.observe_pod(body)
    assert (seen.attempt, seen.index, seen.exit_code, seen.reason, seen.node) == (2, 7, 3, "Error", "n")
    assert seen.terminated and seen.started_at == "a" and seen.finished_at == "b"


def test_observe_pod_reports_why_it_cannot_be_scheduled() -> None:
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/6 nodes are available: 6 node(s) didn't match Pod's node affinity/selector."}]}}
    assert "didn't match" in (lifecycle.observe_pod(body).unschedulable or "")
