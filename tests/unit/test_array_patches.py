"""The array parent's status patches in core/arrays.py: `reason`, `progress_patch`, `finished` and
`finish_patch`, from Progress and Settled objects built directly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barge.core import arrays
from barge.core.dependencies import Verdict
from barge.core.lifecycle import PodObservation
from barge.core.states import DEPENDENT_FAILED, FAILED, JOB_STATES, SUCCEEDED

NOW = "2027-01-15T08:00:00.000000Z"
READY = Verdict(True)


def child(index: int, running: bool = True) -> PodObservation:
    """The pod of a child in flight: RUNNING once its container runs, STARTING before."""
    return PodObservation(name=f"arr-{index}", attempt=1, phase="Running" if running else "Pending", index=index,
                          node="node-1" if running else None,
                          running_since="2027-01-15T07:59:00Z" if running else None)


def make(succeeded: Iterable[int] = (), failed: Iterable[int] = (), running: Iterable[int] = (),
         starting: Iterable[int] = (), runnable: int = 0, pending: int = 0) -> arrays.Progress:
    """Progress with `runnable` children that may start now and `pending` waiting for a dependency."""
    failed = set(failed)
    settled = arrays.Settled(set(succeeded), failed, dict.fromkeys(failed, 1), {})
    active = {i: child(i) for i in running} | {i: child(i, running=False) for i in starting}
    return arrays.Progress(settled, active, runnable=[], pending=pending, to_stop=[], changed=False,
                           runnable_count=runnable)


def summary(**counts: int) -> dict[str, int]:
    return {state: counts.get(state, 0) for state in JOB_STATES}


# --- reason and progress_patch ------------------------------------------------------------------

@pytest.mark.parametrize(("size", "progress", "verdict", "expected"), [
    pytest.param(4, make(runnable=4), Verdict(False, waiting_on="BatchJob 'first' (RUNNING, waiting for Succeeded)"),
                 "Waiting for BatchJob 'first' (RUNNING, waiting for Succeeded)", id="parent-waits"),
    pytest.param(4, make(runnable=4), READY, "Children: 4 RUNNABLE", id="fresh"),
    pytest.param(5, make(succeeded={0}, failed={1}, running={2}, runnable=1, pending=1), READY,
                 "Children: 1 PENDING, 1 RUNNABLE, 1 RUNNING, 1 SUCCEEDED, 1 FAILED", id="one-of-each-in-state-order"),
    pytest.param(4, make(starting={0}, running={1, 2}, runnable=1), READY,
                 "Children: 1 RUNNABLE, 1 STARTING, 2 RUNNING", id="starting-is-the-rest"),
    pytest.param(3, make(succeeded={0, 1, 2}), READY, "Children: 3 SUCCEEDED", id="all-done"),
])
def test_reason(size: int, progress: arrays.Progress, verdict: Verdict, expected: str) -> None:
    assert arrays.reason(size, progress, verdict) == expected


def test_progress_patch() -> None:
    p = make(succeeded={0, 1}, failed={4}, running={2}, runnable=1, pending=2)
    patch = arrays.progress_patch(7, p, READY)
    assert patch == {
        "arrayProgress": "3/7",
        "statusReason": "Children: 2 PENDING, 1 RUNNABLE, 1 RUNNING, 2 SUCCEEDED, 1 FAILED",
        "arrayProperties": {
            "size": 7,
            "statusSummary": summary(PENDING=2, RUNNABLE=1, RUNNING=1, SUCCEEDED=2, FAILED=1),
            "succeededIndices": "0-1", "failedIndices": "4", "failureCounts": {"1": "4"}, "children": {},
        },
    }


@pytest.mark.parametrize(("size", "progress", "expected"), [
    (3, make(), False),
    (3, make(succeeded={0, 1}, running={2}), False),
    (3, make(succeeded={0, 1}, failed={2}), True),
    (3, make(failed={0, 1, 2}), True),
    (2, make(succeeded={0, 1, 2}), True),
])
def test_finished(size: int, progress: arrays.Progress, expected: bool) -> None:
    assert arrays.finished(size, progress) is expected


# --- finish_patch -------------------------------------------------------------------------------

def test_all_succeeded() -> None:
    patch = arrays.finish_patch(3, make(succeeded={0, 1, 2}), NOW)
    assert patch == {
        "state": SUCCEEDED, "statusReason": "All 3 children succeeded", "stoppedAt": NOW, "arrayProgress": "3/3",
        "arrayProperties": {"size": 3, "statusSummary": summary(SUCCEEDED=3), "succeededIndices": "0-2",
                            "failedIndices": "", "failureCounts": {}, "children": {}},
    }


@pytest.mark.parametrize(("succeeded", "failed", "expected_reason"), [
    ({0, 4, 5, 6, 8, 9}, {1, 2, 3, 7}, "4 of 10 children failed (indices 1-3,7)"),
    (set(range(9)), {9}, "1 of 10 children failed (indices 9)"),
    (set(), set(range(10)), "10 of 10 children failed (indices 0-9)"),
])
def test_some_failed(succeeded: set[int], failed: set[int], expected_reason: str) -> None:
    patch = arrays.finish_patch(10, make(succeeded=succeeded, failed=failed), NOW)
    assert patch["state"] == FAILED
    assert patch["statusReason"] == expected_reason
    assert patch["arrayProgress"] == "10/10"
    assert "isCancelled" not in patch and "isTerminated" not in patch


def test_a_given_reason_is_kept() -> None:
    patch = arrays.finish_patch(2, make(succeeded={0}, failed={1}), NOW, reason="Job attempt duration exceeded")
    assert (patch["state"], patch["statusReason"]) == (FAILED, "Job attempt duration exceeded")


def test_failed_children_reason_fails_every_unsettled_child_that_is_not_running() -> None:
    p = make(succeeded={0}, failed={1}, running={3}, runnable=3)
    patch = arrays.finish_patch(6, p, NOW, failed_children_reason=DEPENDENT_FAILED)
    assert p.settled.failed == {1, 2, 4, 5}, "child 3 is running: it is left alone"
    assert patch["state"] == FAILED
    assert patch["statusReason"] == "4 of 6 children failed (indices 1-2,4-5)"
    assert patch["arrayProgress"] == "5/6"
    properties: dict[str, Any] = patch["arrayProperties"]
    assert properties["failedIndices"] == "1-2,4-5"
    assert properties["failureCounts"] == {"1": "1-2,4-5"}
    assert properties["children"] == {str(i): {"attempts": [{"statusReason": DEPENDENT_FAILED, "stoppedAt": NOW}]}
                                      for i in (2, 4, 5)}


@pytest.mark.parametrize(("flag", "expected_flags"), [
    ("isCancelled", {"isCancelled": True}),
    ("isTerminated", {"isTerminated": True}),
])
def test_a_flag_fails_the_parent_and_is_set(flag: str, expected_flags: dict[str, bool]) -> None:
    patch = arrays.finish_patch(2, make(succeeded={0, 1}), NOW, reason="stop it", flag=flag)
    assert patch["state"] == FAILED
    assert patch["statusReason"] == "stop it"
    assert {k: patch.get(k) for k in ("isCancelled", "isTerminated") if k in patch} == expected_flags


# The statusSummary written when the parent finishes counts every child once. A cancelled,
# terminated or dependency-failed array reaches finish_patch with a Progress whose open children
# are counted as PENDING (ALL_WAIT gate) or RUNNABLE; finish_patch fails those children.
@pytest.mark.parametrize(("size", "progress", "reason", "expected"), [
    pytest.param(3, make(pending=3), "Cancelled by user", summary(FAILED=3), id="cancelled-before-any-child-ran"),
    pytest.param(4, make(succeeded={0}, running={1}, runnable=2), DEPENDENT_FAILED,
                 summary(RUNNING=1, SUCCEEDED=1, FAILED=2), id="dependency-failed-with-runnable-children"),
    pytest.param(5, make(succeeded={0}, failed={1}, pending=3), "Terminated by user", summary(SUCCEEDED=1, FAILED=4),
                 id="terminated-with-pending-children"),
    pytest.param(2, make(succeeded={0, 1}), "Cancelled by user", summary(SUCCEEDED=2), id="nothing-left-to-fail"),
])
def test_the_final_summary_counts_each_child_once(size: int, progress: arrays.Progress, reason: str,
                                                   expected: dict[str, int]) -> None:
    patch = arrays.finish_patch(size, progress, NOW, reason, failed_children_reason=reason, flag="isCancelled")
    assert patch["arrayProperties"]["statusSummary"] == expected


@st.composite
def progresses(draw: st.DrawFn) -> tuple[int, arrays.Progress]:
    """A consistent Progress: each child settled, in flight, runnable or pending, exactly once."""
    size = draw(st.integers(min_value=1, max_value=30))
    where = draw(st.lists(st.sampled_from(["succeeded", "failed", "running", "starting", "open"]),
                          min_size=size, max_size=size))
    open_children = where.count("open")
    runnable = draw(st.integers(min_value=0, max_value=open_children))
    p = make(succeeded={i for i, w in enumerate(where) if w == "succeeded"},
             failed={i for i, w in enumerate(where) if w == "failed"},
             running={i for i, w in enumerate(where) if w == "running"},
             starting={i for i, w in enumerate(where) if w == "starting"},
             runnable=runnable, pending=open_children - runnable)
    return size, p


@settings(database=None)
@given(case=progresses(), stop=st.booleans())
def test_finish_patch_accounts_for_every_child(case: tuple[int, arrays.Progress], stop: bool) -> None:
    size, p = case
    in_flight = set(p.active)
    running = sum(1 for pod in p.active.values() if pod.running_since)
    reason = "Cancelled by user" if stop else None
    patch = arrays.finish_patch(size, p, NOW, reason, failed_children_reason=reason,
                                flag="isCancelled" if stop else None)
    settled = p.settled.succeeded | p.settled.failed
    counts = patch["arrayProperties"]["statusSummary"]
    assert patch["arrayProgress"] == f"{len(settled)}/{size}"
    assert (patch["state"] == FAILED) == bool(p.settled.failed or stop)
    if stop:
        assert settled | in_flight == set(range(size)), "every child not in flight is settled"
    assert sum(counts.values()) == size
    assert all(n >= 0 for n in counts.values()), counts
    assert counts[SUCCEEDED] == len(p.settled.succeeded) and counts[FAILED] == len(p.settled.failed)
    assert counts["RUNNING"] == running


# --- the patch that replaces the previous arrayProperties ---------------------------------------

@pytest.mark.parametrize(("previous", "status", "expected"), [
    # child 12 failed a second time: it leaves count 1, which a merge patch would otherwise keep
    ({"failureCounts": {"1": "12", "2": "3"}}, {"failureCounts": {"2": "3,12"}},
     {"failureCounts": {"1": None, "2": "3,12"}}),
    ({"failureCounts": {"1": "4"}}, {"failureCounts": {"1": "4-5"}}, {"failureCounts": {"1": "4-5"}}),
    ({}, {"failureCounts": {"1": "0"}, "children": {}}, {"failureCounts": {"1": "0"}, "children": {}}),
    ({"children": {"7": {"attempts": []}}}, {"children": {}}, {"children": {"7": None}}),
])
def test_array_properties_are_written_as_a_patch_that_replaces_the_previous_ones(
        previous: dict[str, Any], status: dict[str, Any], expected: dict[str, Any]) -> None:
    assert arrays.replacing(previous, status) == expected


def test_applied_as_a_merge_patch_the_result_is_the_new_status() -> None:
    def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:  # RFC 7386
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
        return merged

    previous = {"size": 20, "failureCounts": {"1": "12,14", "2": "3"}, "children": {"12": {"attempts": [{}]}}}
    status = {"size": 20, "failureCounts": {"1": "14", "2": "3,12"}, "children": {"12": {"attempts": [{}, {}]}}}
    assert merge(previous, arrays.replacing(previous, status)) == status
