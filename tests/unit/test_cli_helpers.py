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
