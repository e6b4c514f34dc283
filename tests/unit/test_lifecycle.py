"""A job's transitions from what its pod shows, and AWS's retry rules."""

from __future__ import annotations

from typing import Any

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


# --- containers that cannot start ------------------------------------------------------------

GRACE = 60.0
CREATED = "2026-11-21T09:58:00Z"  # two minutes before NOW
ACCEPTED = "2026-11-21T09:59:30Z"  # thirty seconds before NOW: within the grace period


def pod_body(main_state: dict[str, Any], init_statuses: list[dict[str, Any]] | None = None,
             phase: str = "Pending", start_time: str | None = None, **metadata: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [{"name": "main", "state": main_state}]}
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if start_time:
        status["startTime"] = start_time
    return {"metadata": {"name": "job-a-1-xyz", "creationTimestamp": CREATED, "labels": {"barge.dev/attempt": "1"},
                         **metadata},
            "spec": {"nodeName": "n1", "containers": [{"name": "main"}]}, "status": status}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


@pytest.mark.parametrize(("reason", "words"), [
    ("ErrImagePull", "CannotPullContainerError"),
    ("ImagePullBackOff", "CannotPullContainerError"),
    ("InvalidImageName", "CannotPullContainerError"),
    ("ErrImageNeverPull", "CannotPullContainerError"),
    ("CreateContainerError", "CannotCreateContainerError"),
    ("RunContainerError", "CannotCreateContainerError"),
    ("CreateContainerConfigError", "ResourceInitializationError"),
])
def test_a_container_that_cannot_start_ends_its_attempt_in_aws_words(reason: str, words: str) -> None:
    seen = lifecycle.observe_pod(pod_body(waiting(reason, "it went wrong")))
    assert (seen.waiting_reason, seen.waiting_message, seen.waiting_since) == (reason, "it went wrong", CREATED)
    out = lifecycle.advance("STARTING", 1, ONCE, seen, None, NOW, startup_grace_seconds=GRACE)
    assert out is not None and out.state == "FAILED" and out.stop_pod and not out.retry
    assert out.status_reason == f"{words}: it went wrong"
    assert out.attempt == {"stoppedAt": NOW, "statusReason": f"{words}: it went wrong", "reason": reason,
                           "podName": "job-a-1-xyz", "nodeName": "n1"}


@pytest.mark.parametrize("state", [
    pytest.param({"waiting": {"reason": "ContainerCreating"}}, id="creating"),
    pytest.param({"waiting": {"reason": "PodInitializing"}}, id="initializing"),
    pytest.param({"running": {"startedAt": "t1"}}, id="running"),
    pytest.param({}, id="no-state-yet"),
])
def test_a_container_on_its_way_is_not_a_startup_failure(state: dict[str, Any]) -> None:
    seen = lifecycle.observe_pod(pod_body(state))
    assert (seen.waiting_reason, seen.waiting_message, seen.waiting_since) == (None, None, None)
    assert not lifecycle.startup_failure_due(seen, 10**10, GRACE)


def test_an_init_container_that_cannot_start_counts_as_the_pods() -> None:
    init = [{"name": "setup", "state": waiting("CreateContainerConfigError", 'secret "db" not found')}]
    seen = lifecycle.observe_pod(pod_body(waiting("PodInitializing"), init))
    assert (seen.waiting_reason, seen.waiting_message) == ("CreateContainerConfigError", 'secret "db" not found')
    out = lifecycle.advance("STARTING", 1, ONCE, seen, None, NOW, startup_grace_seconds=GRACE)
    assert out is not None and out.status_reason == 'ResourceInitializationError: secret "db" not found'


@pytest.mark.parametrize(("start_time", "grace", "ends"), [
    pytest.param(None, GRACE, True, id="created-two-minutes-ago"),
    pytest.param(ACCEPTED, GRACE, False, id="accepted-by-the-kubelet-30s-ago"),
    pytest.param(ACCEPTED, 30.0, True, id="exactly-at-the-grace-period"),
    pytest.param(ACCEPTED, None, False, id="no-grace-period-set"),
])
def test_the_grace_period_runs_from_the_kubelet_accepting_the_pod(start_time: str | None, grace: float | None,
                                                                  ends: bool) -> None:
    """status.startTime when the kubelet set it (time waiting for a node does not count), else the
    pod's creation."""
    seen = lifecycle.observe_pod(pod_body(waiting("ImagePullBackOff", "Back-off pulling image"),
                                          start_time=start_time))
    out = lifecycle.advance("STARTING", 1, ONCE, seen, None, NOW, startup_grace_seconds=grace)
    assert (out is not None) is ends


@pytest.mark.parametrize(("pod_attempt", "deleting"), [
    pytest.param(1, False, id="an-older-attempts-pod"),
    pytest.param(2, True, id="a-pod-already-being-deleted"),
])
def test_no_startup_failure_from(pod_attempt: int, deleting: bool) -> None:
    stuck = PodObservation(name="p", attempt=pod_attempt, phase="Pending", waiting_reason="ErrImagePull",
                           waiting_message="m", waiting_since=CREATED, deleting=deleting)
    assert lifecycle.advance("STARTING", 2, TWICE, stuck, None, NOW, startup_grace_seconds=GRACE) is None


RETRY_THREE = 3
CONFIG_ERROR = "CreateContainerConfigError"


@pytest.mark.parametrize(("rules", "reason", "retried"), [
    pytest.param([], "ErrImagePull", True, id="no-rule-retries"),
    pytest.param([{"onReason": CONFIG_ERROR, "action": "EXIT"}], CONFIG_ERROR, False, id="onReason-exit"),
    pytest.param([{"onReason": CONFIG_ERROR, "action": "EXIT"}], "ErrImagePull", True, id="onReason-other"),
    pytest.param([{"onReason": "ErrImage*", "action": "EXIT"}], "ErrImageNeverPull", False, id="onReason-prefix"),
    pytest.param([{"onStatusReason": "CannotPullContainerError:*", "action": "EXIT"}], "ImagePullBackOff", False,
                 id="onStatusReason-prefix"),
    pytest.param([{"onStatusReason": "CannotPullContainerError:*", "action": "EXIT"}], "RunContainerError", True,
                 id="onStatusReason-other-family"),
    pytest.param([{"onExitCode": "*", "action": "EXIT"}], "ErrImagePull", True, id="no-exit-code-to-match"),
    pytest.param([{"onReason": "ErrImagePull", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}],
                 "ErrImagePull", True, id="first-rule-wins"),
])
def test_retry_rules_decide_after_a_startup_failure(rules: list[dict[str, str]], reason: str, retried: bool) -> None:
    stuck = lifecycle.observe_pod(pod_body(waiting(reason, "no luck")))
    strategy = {"attempts": RETRY_THREE, "evaluateOnExit": rules}
    out = lifecycle.advance("STARTING", 1, strategy, stuck, None, NOW, startup_grace_seconds=GRACE)
    assert out is not None and out.retry is retried and out.stop_pod
    assert out.state == ("RUNNABLE" if retried else "FAILED")
    assert out.stopped_at == (None if retried else NOW)


def test_cancel_prevents_the_retry_of_a_startup_failure() -> None:
    stuck = lifecycle.observe_pod(pod_body(waiting("ErrImagePull")))
    out = lifecycle.advance("STARTING", 1, TWICE, stuck, None, NOW, no_more_retries=True, startup_grace_seconds=GRACE)
    assert out is not None and out.state == "FAILED"
    assert out.status_reason == "CannotPullContainerError: ErrImagePull", "no message: the reason stands in"


def test_a_failed_init_container_fails_the_attempt_as_resource_initialization() -> None:
    init = [{"name": "setup", "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "no schema"}}}]
    seen = lifecycle.observe_pod(pod_body(waiting("PodInitializing"), init, phase="Failed"))
    assert (seen.reason, seen.exit_code) == ("Init:Error", None)
    out = lifecycle.advance("STARTING", 1, ONCE, seen, None, NOW)
    assert out is not None and out.state == "FAILED" and not out.stop_pod, "the pod ended by itself"
    assert out.status_reason == "ResourceInitializationError: init container 'setup' exited with code 2: no schema"
    assert out.attempt is not None and out.attempt["reason"] == "Init:Error" and "exitCode" not in out.attempt
    retried = lifecycle.advance("STARTING", 1, {"attempts": 2, "evaluateOnExit": [
        {"onReason": "Init:*", "action": "EXIT"}]}, seen, None, NOW)
    assert retried is not None and not retried.retry, "onReason matches kubectl's Init:Error"


def test_a_failed_main_container_after_its_init_containers_is_an_exit() -> None:
    init = [{"name": "setup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
    seen = lifecycle.observe_pod(pod_body({"terminated": {"exitCode": 3, "reason": "Error"}}, init, phase="Failed"))
    out = lifecycle.advance("RUNNING", 1, ONCE, seen, None, NOW)
    assert out is not None and out.status_reason == lifecycle.ESSENTIAL_CONTAINER_EXITED and out.attempt is not None
    assert (out.attempt["exitCode"], out.attempt["reason"]) == (3, "Error")


def test_a_long_kubelet_message_is_cut_to_keep_the_status_small() -> None:
    seen = lifecycle.observe_pod(pod_body(waiting("ErrImagePull", "x" * 5000)))
    out = lifecycle.advance("STARTING", 1, ONCE, seen, None, NOW, startup_grace_seconds=GRACE)
    assert out is not None and len(out.status_reason) == lifecycle.MESSAGE_LIMIT
