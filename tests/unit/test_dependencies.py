"""Dependency verdicts: AWS's success-only default, Slurm-style conditions, waiting, cycles."""

from __future__ import annotations

import pytest

from barge.core import dependencies as deps


@pytest.mark.parametrize(("state", "condition", "ready", "failure"), [
    ("SUCCEEDED", "Succeeded", True, None),
    ("FAILED", "Succeeded", False, "Dependent Job failed"),
    ("RUNNING", "Succeeded", False, None),
    ("FAILED", "Failed", True, None),
    ("SUCCEEDED", "Failed", False, "Dependency condition not met: 'a' is SUCCEEDED (condition Failed)"),
    ("SUCCEEDED", "Finished", True, None),
    ("FAILED", "Finished", True, None),
    (None, "Succeeded", False, None),
])
def test_judge(state: str | None, condition: str, ready: bool, failure: str | None) -> None:
    verdict = deps.judge("a", state, condition)
    assert (verdict.ready, verdict.failure) == (ready, failure)


def test_missing_dependency_waits_and_says_so() -> None:
    verdict = deps.job_level([{"jobName": "later"}], lambda name: None)
    assert not verdict.ready and not verdict.failure and "does not exist yet" in (verdict.waiting_on or "")


def test_a_failure_wins_over_waiting_and_child_level_types_are_not_job_level() -> None:
    states = {"a": "RUNNING", "b": "FAILED"}
    verdict = deps.job_level([{"jobName": "a"}, {"jobName": "b"}, {"jobName": "c", "type": "N_TO_N"}], states.get)
    assert verdict.failure == "Dependent Job failed"
    assert deps.job_level([{"type": "SEQUENTIAL"}], states.get).ready


def test_cycles_are_found_and_named() -> None:
    edges = {"x": ["y"], "y": ["z", "w"], "z": ["x"], "w": []}
    assert deps.find_cycle("x", lambda n: edges.get(n, [])) == ["x", "y", "z", "x"]
    assert deps.find_cycle("w", lambda n: edges.get(n, [])) is None
    assert deps.find_cycle("self", lambda n: ["self"]) == ["self", "self"]
    assert deps.cycle_reason(["x", "y", "x"]) == "Dependency cycle: x -> y -> x"
