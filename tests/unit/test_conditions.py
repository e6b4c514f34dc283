"""core/conditions.py set_condition: Kubernetes' meta.SetStatusCondition rules. lastTransitionTime
moves only when the status does; `changed` says whether anything but the time changed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barge.core.conditions import set_condition

T0 = "2027-01-15T08:00:00.000000Z"
T1 = "2027-01-15T09:00:00.000000Z"


def condition(type_: str = "Finished", status: str = "False", reason: str = "Running", message: str = "running",
              time: str = T0, generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": time,
            "observedGeneration": generation}


OTHER = condition("Ready", "True", "Ok", "", T0, 1)


@pytest.mark.parametrize(("before", "args", "after", "changed"), [
    pytest.param([], (False, "Running", "running", 1),
                 [condition(time=T1)], True, id="added-when-absent"),
    pytest.param([OTHER], (True, "Succeeded", "done", 2),
                 [OTHER, condition(status="True", reason="Succeeded", message="done", time=T1, generation=2)], True,
                 id="appended-after-other-types"),
    pytest.param([condition()], (False, "Running", "running", 1),
                 [condition()], False, id="same-everything-keeps-time"),
    pytest.param([condition()], (True, "Succeeded", "running", 1),
                 [condition(status="True", reason="Succeeded", time=T1)], True, id="status-flips-new-time"),
    pytest.param([condition(status="True")], (False, "Running", "running", 1),
                 [condition(time=T1)], True, id="status-flips-back-new-time"),
    pytest.param([condition()], (False, "Runnable", "running", 1),
                 [condition(reason="Runnable")], True, id="reason-change-keeps-time"),
    pytest.param([condition()], (False, "Running", "still running", 1),
                 [condition(message="still running")], True, id="message-change-keeps-time"),
    pytest.param([condition()], (False, "Running", "running", 2),
                 [condition(generation=2)], True, id="generation-change-keeps-time"),
    pytest.param([OTHER, condition(), condition("Other")], (True, "Failed", "boom", 1),
                 [OTHER, condition(status="True", reason="Failed", message="boom", time=T1), condition("Other")],
                 True, id="other-types-preserved-in-place"),
    pytest.param([condition(message="x" * 1024)], (False, "Running", "x" * 5000, 1),
                 [condition(message="x" * 1024)], False, id="truncated-message-equal-to-stored"),
    pytest.param([], (False, "Running", "y" * 1025, 1),
                 [condition(message="y" * 1024, time=T1)], True, id="message-truncated-to-1024"),
])
def test_set_condition(before: list[dict[str, Any]], args: tuple[bool, str, str, int],
                       after: list[dict[str, Any]], changed: bool) -> None:
    snapshot = copy.deepcopy(before)
    status, reason, message, generation = args
    result, did_change = set_condition(before, "Finished", status, reason, message, generation, T1)
    assert result == after
    assert did_change is changed
    assert before == snapshot, "the input is not modified"
    assert result is not before


def test_the_returned_condition_is_a_new_dict() -> None:
    before = [condition()]
    result, _ = set_condition(before, "Finished", False, "Running", "running", 1, T1)
    result[0]["message"] = "edited"
    assert before[0]["message"] == "running"


TIMES = st.integers(min_value=0, max_value=999_999_999).map(lambda s: f"2027-01-15T08:00:00.{s:09d}Z")
CONDITIONS = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["Finished", "Ready", "Other"]),
    "status": st.sampled_from(["True", "False", "Unknown"]),
    "reason": st.sampled_from(["Running", "Succeeded", "X"]),
    "message": st.text(max_size=20),
    "lastTransitionTime": TIMES,
    "observedGeneration": st.integers(min_value=1, max_value=5),
}), max_size=4)


@settings(database=None)
@given(before=CONDITIONS, type_=st.sampled_from(["Finished", "Ready", "New"]), status=st.booleans(),
       reason=st.sampled_from(["Running", "Succeeded", "Y"]), message=st.text(max_size=1100),
       generation=st.integers(min_value=1, max_value=5), first=TIMES, second=TIMES)
def test_setting_the_same_condition_twice_changes_nothing_the_second_time(
        before: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str, generation: int,
        first: str, second: str) -> None:
    once, _ = set_condition(before, type_, status, reason, message, generation, first)
    twice, changed = set_condition(once, type_, status, reason, message, generation, second)
    assert changed is False
    assert twice == once
    mine = [c for c in twice if c["type"] == type_]
    assert mine and all(c["status"] == ("True" if status else "False") and c["message"] == message[:1024]
                        for c in mine)
    assert [c for c in twice if c["type"] != type_] == [c for c in before if c["type"] != type_]
