"""The CLI's parsing and formatting, and its help: an example for every command."""

from __future__ import annotations

import pytest

from barge.cli import jobs
from barge.cli.main import build_parser


@pytest.mark.parametrize(("text", "expected"), [
    ("prep", {"jobName": "prep"}),
    ("prep:Failed", {"jobName": "prep", "condition": "Failed"}),
    ("a:N_TO_N", {"jobName": "a", "type": "N_TO_N"}),
    ("a:n_to_n:finished", {"jobName": "a", "type": "N_TO_N", "condition": "Finished"}),
    ("SEQUENTIAL", {"type": "SEQUENTIAL"}),
])
def test_depends_on_syntax(text: str, expected: dict[str, str]) -> None:
    assert jobs._dependency(text) == expected


def test_bad_depends_on_and_key_values_name_the_flag() -> None:
    with pytest.raises(jobs.CliError, match="--depends-on 'a:maybe'") as err:
        jobs._dependency("a:maybe")
    assert err.value.code == jobs.BAD_INPUT
    with pytest.raises(jobs.CliError, match="--env expects NAME=VALUE"):
        jobs._key_values(["oops"], "--env")


def test_table_aligns_columns() -> None:
    assert jobs.table([["a", "RUNNING"], ["long-name", "FAILED"]], ["NAME", "STATE"]).splitlines() == [
        "NAME        STATE", "a           RUNNING", "long-name   FAILED"]


def test_progress_line_for_an_array() -> None:
    job = {"status": {"state": "PENDING", "arrayProperties": {"size": 10, "statusSummary": {
        "SUCCEEDED": 4, "FAILED": 1, "RUNNING": 3}}}}
    assert jobs._progress_line(job, width=10) == "[#####.....] 5/10 children done (3 running, 1 failed)  PENDING"


def test_every_command_has_help_with_an_example() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():  # type: ignore[attr-defined]
        if name in jobs.COMMANDS or name == "bench":
            assert sub.epilog and sub.epilog.startswith("example: barge "), name


def _job(name: str, share: str | None, queued: float, priority: int = 0, state: str = "RUNNABLE") -> dict:
    spec = {"jobQueue": "q", **({"shareIdentifier": share} if share else {})}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec,
            "status": {"state": state, "queuedAt": queued,
                       "resolved": {"schedulingPriority": priority, "request": {"cpuMilli": 1000}}}}


POLICY = {"metadata": {"name": "sp"},
          "spec": {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "B", "weightFactor": 0.5}]}},
          "status": {"shares": [{"shareIdentifier": "A", "weightFactor": 1.0, "usage": 0.0, "runningvCpus": 0,
                                 "runnableJobs": 3},
                                {"shareIdentifier": "B", "weightFactor": 0.5, "usage": 12.5, "runningvCpus": 1.0,
                                 "runnableJobs": 1}]}}


def test_queue_position_in_a_fifo_queue_follows_priority_then_submission() -> None:
    waiting = [_job("early", None, 1), _job("urgent", None, 5, priority=9), _job("late", None, 9),
               _job("running", None, 0, state="RUNNING")]
    assert [jobs.queue_position(j, waiting, None) for j in waiting[:3]] == [
        "2 of 3 RUNNABLE in queue 'q'", "1 of 3 RUNNABLE in queue 'q'", "3 of 3 RUNNABLE in queue 'q'"]


def test_queue_position_in_a_fair_share_queue_serves_shares_by_standing() -> None:
    # B runs 1 vCPU at weight 0.5 (standing 0.5+), A runs nothing: A, then B (0.5 < A's 1), then A, A
    waiting = [_job("a1", "A", 1), _job("a2", "A", 2), _job("a3", "A", 3), _job("b1", "B", 4)]
    places = {j["metadata"]["name"]: jobs.queue_position(j, waiting, POLICY).split()[0] for j in waiting}
    assert places == {"a1": "1", "b1": "2", "a2": "3", "a3": "4"}


def test_share_line_shows_weight_usage_and_what_runs() -> None:
    assert jobs.share_line(_job("b1", "B", 4), POLICY) == (
        "B of policy 'sp': weightFactor 0.5, usage 12.5 vCPU-seconds, 1.0 vCPUs running, 1 jobs waiting")
    assert jobs.share_line(_job("c", "C", 4), POLICY).startswith("C of policy 'sp': weightFactor 1.0, usage 0")
    assert jobs.share_line(_job("x", None, 1), POLICY) == "-"
