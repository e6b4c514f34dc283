"""Array progress from the parent's status and the children's pods; index ranges."""

from __future__ import annotations

import json

import pytest

from barge.core import arrays
from barge.core.lifecycle import PodObservation

NOW = "2026-11-21T10:00:00Z"
RETRY_TWICE = {"attempts": 2, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"},
                                                 {"onExitCode": "*", "action": "EXIT"}]}


def pod(index: int, phase: str, attempt: int = 1, exit_code: int | None = None,
        running_since: str | None = None) -> PodObservation:
    return PodObservation(name=f"a-{index}-{attempt}", attempt=attempt, phase=phase, index=index,
                          exit_code=exit_code, running_since=running_since)


def progress(size: int, status: dict, pods: list[PodObservation], **kw: object) -> arrays.Progress:
    args: dict = dict(retry_strategy=RETRY_TWICE, timeout_seconds=None, gate=None, creating=(), now=NOW,
                      now_seconds=1000.0, parse_time=lambda v: float(v) if v else None)
    args.update(kw)
    return arrays.progress(size, status, pods, **args)


@pytest.mark.parametrize(("indices", "text"), [
    ([], ""), ([5], "5"), ([0, 1, 2, 3, 7, 9, 10], "0-3,7,9-10"), ([3, 1, 2], "1-3"), ([7, 500, 501, 502], "7,500-502"),
])
def test_ranges_round_trip(indices: list[int], text: str) -> None:
    assert arrays.format_ranges(indices) == text
    assert arrays.parse_ranges(text) == set(indices)


def test_fresh_array_has_every_child_runnable_in_index_order() -> None:
    p = progress(5, {}, [])
    assert p.runnable == [0, 1, 2, 3, 4] and not p.changed


def test_finished_pods_settle_children_and_failures_retry_per_rule() -> None:
    pods = [pod(0, "Succeeded", exit_code=0), pod(1, "Failed", exit_code=3), pod(2, "Failed", exit_code=4),
            pod(3, "Running", running_since="990")]
    p = progress(5, {}, pods)
    assert p.settled.succeeded == {0} and p.settled.failed == {2}
    assert p.settled.next_attempt(1) == 2, "exit code 3 is retried"
    assert p.runnable == [1, 4] and list(p.active) == [3] and p.changed
    status = arrays.array_status(5, p)
    assert status["statusSummary"] == {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 2, "STARTING": 0, "RUNNING": 1,
                                       "SUCCEEDED": 1, "FAILED": 1}
    assert status["failureCounts"] == {"1": "1-2"} and status["children"]["2"]["attempts"][0]["exitCode"] == 4


def test_second_failure_uses_up_the_attempts_and_restart_converges() -> None:
    first = progress(3, {}, [pod(1, "Failed", exit_code=3)])
    recorded = arrays.array_status(3, first)
    again = progress(3, recorded, [pod(1, "Failed", exit_code=3), pod(1, "Failed", attempt=2, exit_code=3)])
    assert again.settled.failed == {1}
    assert [a["exitCode"] for a in again.settled.attempts[1]] == [3, 3]
    from_scratch = progress(3, {}, [pod(1, "Failed", exit_code=3), pod(1, "Failed", attempt=2, exit_code=3)])
    assert from_scratch.settled.failed == again.settled.failed, "status lost before the write: same outcome"


def test_pods_being_created_are_neither_runnable_nor_counted_twice() -> None:
    p = progress(3, {}, [], creating={0, 1})
    assert p.runnable == [2]
    assert arrays.summary(3, p)["STARTING"] == 2


def test_running_child_past_its_timeout_is_stopped() -> None:
    p = progress(2, {}, [pod(0, "Running", running_since="900"), pod(1, "Running", running_since="990")],
                 timeout_seconds=60)
    assert p.to_stop == [0]


def test_sequential_gate_waits_for_previous_child_and_fails_after_a_failure() -> None:
    settled = arrays.Settled(succeeded={0}, failed={2})
    gate = arrays.child_gate([{"type": "SEQUENTIAL"}], settled, lambda name, index: None)
    assert gate(0) is None and gate(1) is None
    assert gate(2) == "wait", "child 1 has not succeeded yet"
    assert gate(3) == "Dependent Job failed"


def test_n_to_n_gate_follows_the_same_child_of_the_other_array() -> None:
    states = {0: "SUCCEEDED", 1: "FAILED", 2: "RUNNING"}
    gate = arrays.child_gate([{"jobName": "a", "type": "N_TO_N"}], arrays.Settled(),
                             lambda name, index: states.get(index))
    assert gate(0) is None and gate(1) == "Dependent Job failed" and gate(2) == "wait" and gate(3) == "wait"


def test_detail_is_capped_but_attempt_counts_are_kept_for_every_child() -> None:
    pods = [pod(i, "Failed", exit_code=3) for i in range(500)]
    p = progress(500, {}, pods)
    status = arrays.array_status(500, p)
    assert len(status["children"]) == arrays.DETAILED_CHILDREN
    assert status["failureCounts"] == {"1": "0-499"}
    assert arrays.Settled.from_status(status).next_attempt(499) == 2


def test_large_array_lists_only_the_lowest_runnable_children_but_counts_all() -> None:
    p = progress(100_000, {"succeededIndices": "0-9"}, [pod(10, "Running", running_since="999")], creating={11})
    assert p.runnable[:2] == [12, 13] and len(p.runnable) == arrays.RUNNABLE_LISTED
    assert p.runnable_count == 100_000 - 12
    counts = arrays.summary(100_000, p)
    assert counts["RUNNABLE"] == 99_988 and counts["RUNNING"] == 1 and counts["STARTING"] == 1
    assert counts["SUCCEEDED"] == 10 and sum(counts.values()) == 100_000


def test_a_waiting_parent_keeps_every_open_child_pending() -> None:
    p = progress(10, {"succeededIndices": "0-1"}, [], gate=arrays.ALL_WAIT)
    assert p.runnable == [] and p.runnable_count == 0 and p.pending == 8


# --- children whose container cannot start ---------------------------------------------------

GRACE = 60.0


def stuck(index: int, since: float, attempt: int = 1, reason: str = "ErrImagePull") -> PodObservation:
    return PodObservation(name=f"a-{index}-{attempt}", attempt=attempt, phase="Pending", index=index,
                          waiting_reason=reason, waiting_message="pull failed", waiting_since=str(since))


def test_a_child_that_cannot_start_past_the_grace_period_is_retried_and_its_pod_stopped() -> None:
    p = progress(3, {}, [stuck(1, since=900.0), pod(2, "Running", running_since="990")],
                 startup_grace_seconds=GRACE)
    assert [pod.name for pod in p.not_started] == ["a-1-1"] and list(p.active) == [2] and p.changed
    assert p.settled.next_attempt(1) == 2 and 1 in p.runnable, "no rule: retried while attempts remain"
    assert p.settled.attempts[1] == [{"stoppedAt": NOW, "statusReason": "CannotPullContainerError: pull failed",
                                      "reason": "ErrImagePull", "podName": "a-1-1"}]
    assert arrays.summary(3, p)["STARTING"] == 0, "its capacity is no longer counted"


def test_a_child_within_the_grace_period_keeps_starting() -> None:
    p = progress(2, {}, [stuck(0, since=990.0)], startup_grace_seconds=GRACE)
    assert list(p.active) == [0] and not p.not_started and not p.changed
    assert arrays.summary(2, p)["STARTING"] == 1


def test_an_exit_rule_on_the_reason_fails_the_child_at_once() -> None:
    strategy = {"attempts": 3, "evaluateOnExit": [{"onReason": "CreateContainerConfigError", "action": "EXIT"}]}
    p = progress(2, {}, [stuck(0, since=0.0, reason="CreateContainerConfigError")], retry_strategy=strategy,
                 startup_grace_seconds=GRACE)
    assert p.settled.failed == {0} and p.runnable == [1]
    assert p.settled.attempts[0][0]["statusReason"].startswith("ResourceInitializationError: ")


def test_the_last_attempt_that_cannot_start_fails_the_child_and_a_restart_converges() -> None:
    first = progress(2, {}, [stuck(0, since=0.0)], startup_grace_seconds=GRACE)
    recorded = arrays.array_status(2, first)
    pods = [stuck(0, since=0.0), stuck(0, since=0.0, attempt=2)]  # attempt 1's pod not deleted yet
    second = progress(2, recorded, pods, startup_grace_seconds=GRACE)
    assert second.settled.failed == {0} and [p.name for p in second.not_started] == ["a-0-2"]
    assert [a["podName"] for a in second.settled.attempts[0]] == ["a-0-1", "a-0-2"]


def test_without_a_grace_period_a_waiting_child_waits() -> None:
    p = progress(1, {}, [stuck(0, since=0.0)])
    assert list(p.active) == [0] and not p.not_started


def test_a_child_whose_init_container_failed_records_resource_initialization() -> None:
    failed = PodObservation(name="a-0-1", attempt=1, phase="Failed", index=0, reason="Init:Error",
                            message="init container 'setup' exited with code 1")
    p = progress(1, {}, [failed], retry_strategy={"attempts": 1})
    assert p.settled.failed == {0}
    assert p.settled.attempts[0][0]["statusReason"] == (
        "ResourceInitializationError: init container 'setup' exited with code 1")


def test_the_status_of_100000_children_half_failed_stays_well_within_the_object_size_limit() -> None:
    """The worst case for index ranges: every other child failed (after 1-3 attempts), none adjacent.
    etcd refuses objects over 1.5 MiB; the array's status must leave room for the rest of the job."""
    size, settled = 100_000, arrays.Settled()
    for i in range(size):
        if i % 2 == 0:
            settled.succeeded.add(i)
            continue
        for attempt in range(1 + (i // 2) % 3):
            settled.add_failure(i, {"statusReason": "Essential container in task exited", "reason": "Error",
                                    "exitCode": 3, "podName": f"render-big-{i}-{attempt + 1}",
                                    "nodeName": "kwok-cpu-12", "startedAt": NOW, "stoppedAt": NOW})
        settled.failed.add(i)
    status = arrays.array_status(size, arrays.Progress(settled, {}, [], 0, [], True))
    assert status["statusSummary"]["FAILED"] == size // 2 and len(status["children"]) == arrays.DETAILED_CHILDREN
    assert len(json.dumps(status)) < 1024 * 1024
