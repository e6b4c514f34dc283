"""Whether a job (or an array child) may run, from the states of what it depends on. Pure code.

AWS semantics plus Slurm's conditions: `Succeeded` (afterok, the default), `Failed` (afternotok),
`Finished` (afterany). A dependency that does not exist yet is waited for, so a whole DAG can be
applied in any order; a dependency that can no longer meet its condition ends the dependent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from barge.core.states import DEPENDENT_FAILED, FAILED, SUCCEEDED, TERMINAL

SATISFYING = {"Succeeded": frozenset({SUCCEEDED}), "Failed": frozenset({FAILED}), "Finished": TERMINAL}


@dataclass(frozen=True)
class Verdict:
    """`ready`: may run; `failure`: ends the dependent with this reason; else it waits for `waiting_on`."""
    ready: bool
    failure: str | None = None
    waiting_on: str | None = None


def condition_of(dependency: Mapping[str, Any]) -> str:
    return str(dependency.get("condition") or "Succeeded")


def judge(name: str, state: str | None, condition: str) -> Verdict:
    """One dependency on a job (or array child) in `state` (None: does not exist yet)."""
    if state is None:
        return Verdict(False, waiting_on=f"BatchJob '{name}' (it does not exist yet)")
    if state in SATISFYING[condition]:
        return Verdict(True)
    if state in TERMINAL:
        if condition == "Succeeded":
            return Verdict(False, failure=DEPENDENT_FAILED)
        return Verdict(False, failure=f"Dependency condition not met: '{name}' is {state} (condition {condition})")
    return Verdict(False, waiting_on=f"BatchJob '{name}' ({state}, waiting for {condition})")


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    for verdict in verdicts:
        if verdict.failure:
            return verdict
    for verdict in verdicts:
        if not verdict.ready:
            return verdict
    return Verdict(True)


def by_name(dependencies: Sequence[Mapping[str, Any]],
            name_of_id: Callable[[str], str | None]) -> list[Mapping[str, Any]]:
    """Dependencies given by `jobId` (AWS's way) as dependencies on the named job. An id no job has
    (yet) becomes a name no BatchJob can have, so the dependent waits for it as for a missing name."""
    named: list[Mapping[str, Any]] = []
    for dependency in dependencies:
        job_id = dependency.get("jobId")
        if job_id and not dependency.get("jobName"):
            dependency = {**dependency, "jobName": name_of_id(str(job_id)) or f"with jobId {job_id}"}
        named.append(dependency)
    return named


def job_level(dependencies: Sequence[Mapping[str, Any]], state_of: Callable[[str], str | None]) -> Verdict:
    """The dependencies that gate the whole job: every one except N_TO_N and SEQUENTIAL."""
    verdicts = []
    for dependency in dependencies:
        if dependency.get("type") in ("N_TO_N", "SEQUENTIAL"):
            continue
        name = str(dependency.get("jobName"))
        verdicts.append(judge(name, state_of(name), condition_of(dependency)))
    return combine(verdicts)


def find_cycle(start: str, edges_of: Callable[[str], Sequence[str]]) -> list[str] | None:
    """A path start -> ... -> start through existing jobs, or None. Depth-first, each node once."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges_of(node):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def cycle_reason(cycle: list[str]) -> str:
    return "Dependency cycle: " + " -> ".join(cycle)
