"""Array jobs: one BatchJob, one Kubernetes Job, a compact status whatever the size. Pure code.

What is settled lives in the parent's status as index ranges (succeeded, failed) plus the attempts
of children that failed at least once; what is in flight is read from the children's pods. From
those two, `progress` derives everything else, so a restart at any point converges.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from barge.core import lifecycle
from barge.core.dependencies import Verdict, judge
from barge.core.jobstatus import JobStatusPatch
from barge.core.lifecycle import PodObservation
from barge.core.states import DEPENDENT_FAILED, FAILED, JOB_STATES, SUCCEEDED


def format_ranges(indices: Iterable[int]) -> str:
    """[0,1,2,3,7,9,10] -> "0-3,7,9-10"."""
    ordered = sorted(indices if isinstance(indices, (set, frozenset)) else set(indices))
    if not ordered:
        return ""
    parts: list[str] = []
    start = previous = ordered[0]
    for index in ordered[1:]:
        if index != previous + 1:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = index
        previous = index
    parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(parts)


def parse_ranges(text: str | None) -> set[int]:
    result: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        result.update(range(int(low), int(high or low) + 1))
    return result


DETAILED_CHILDREN = 100  # children whose attempts are kept in full; the rest keep counts only


@dataclass
class Settled:
    """The children whose outcome is recorded in the parent's status."""
    succeeded: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    failures: dict[int, int] = field(default_factory=dict)  # failed attempts per child
    attempts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # detail, capped

    @classmethod
    def from_status(cls, array_status: Mapping[str, Any]) -> Settled:
        children = array_status.get("children") or {}
        failures = {i: int(n) for n, ranges in (array_status.get("failureCounts") or {}).items()
                    for i in parse_ranges(ranges)}
        return cls(parse_ranges(array_status.get("succeededIndices")), parse_ranges(array_status.get("failedIndices")),
                   failures, {int(k): list(v.get("attempts") or []) for k, v in children.items()})

    def next_attempt(self, index: int) -> int:
        return self.failures.get(index, 0) + 1

    def done(self, index: int) -> bool:
        return index in self.succeeded or index in self.failed

    def add_failure(self, index: int, record: dict[str, Any]) -> int:
        self.failures[index] = self.failures.get(index, 0) + 1
        if index in self.attempts or len(self.attempts) < DETAILED_CHILDREN:
            self.attempts.setdefault(index, []).append(record)
        return self.failures[index]

    def failure_counts(self) -> dict[str, str]:
        by_count: dict[int, list[int]] = {}
        for index, count in self.failures.items():
            by_count.setdefault(count, []).append(index)
        return {str(n): format_ranges(indices) for n, indices in sorted(by_count.items())}

    def fingerprint(self) -> tuple[int, int, int]:
        return len(self.succeeded), len(self.failed), sum(self.failures.values())


@dataclass
class Progress:
    settled: Settled
    active: dict[int, PodObservation]      # the pod of each child's current attempt, not terminated
    runnable: list[int]                    # may start now (dependencies met), lowest first, capped
    pending: int                           # waiting for a dependency
    to_stop: list[int]                     # running past the attempt timeout
    changed: bool                          # settled differs from the status it came from
    runnable_count: int = 0                # all that may start now; `runnable` lists the first of them
    not_started: list[PodObservation] = field(default_factory=list)  # could not start: recorded, to delete


def _record_finished(settled: Settled, index: int, pod: PodObservation, retry_strategy: Mapping[str, Any],
                     now: str, no_retry: bool) -> None:
    if pod.phase == "Succeeded":
        settled.succeeded.add(index)
        return
    _record_failure(settled, index, lifecycle.attempt_record(pod, lifecycle.failure_reason(pod), now),
                    retry_strategy, no_retry)


def _record_failure(settled: Settled, index: int, record: dict[str, Any], retry_strategy: Mapping[str, Any],
                    no_retry: bool) -> None:
    """A failed attempt of a child: it runs again when the retry rules say so, else it is failed."""
    attempts_done = settled.add_failure(index, record)
    retry = not no_retry and lifecycle.should_retry(retry_strategy, attempts_done, record["statusReason"],
                                                    record.get("reason"), record.get("exitCode"))
    if not retry:
        settled.failed.add(index)


def fail_child(settled: Settled, index: int, reason: str, now: str, pod: PodObservation | None = None) -> None:
    """A child that ends without (another) attempt: dependency failure, timeout, terminate."""
    record: dict[str, Any] = {"statusReason": reason, "stoppedAt": now}
    if pod is not None:
        record |= {k: v for k, v in {"podName": pod.name, "nodeName": pod.node,
                                     "startedAt": pod.running_since}.items() if v}
    settled.add_failure(index, record)
    settled.failed.add(index)


ChildGate = Callable[[int], str | None]
"""For a child index: None when its own dependencies allow it to run, "wait", or a failure reason."""
ALL_WAIT: ChildGate = lambda index: "wait"  # noqa: E731 - the parent itself waits
RUNNABLE_LISTED = 2000  # more than one scheduling pass can place into any environment


def child_gate(dependencies: Sequence[Mapping[str, Any]], settled: Settled,
               child_state_of: Callable[[str, int], str | None]) -> ChildGate:
    """N_TO_N: child i waits for child i of the named array; SEQUENTIAL: for child i-1 of this one."""
    n_to_n = [d for d in dependencies if d.get("type") == "N_TO_N"]
    sequential = any(d.get("type") == "SEQUENTIAL" for d in dependencies)

    def gate(index: int) -> str | None:
        if sequential and index > 0:
            if index - 1 in settled.failed:
                return DEPENDENT_FAILED
            if index - 1 not in settled.succeeded:
                return "wait"
        for dependency in n_to_n:
            name = str(dependency.get("jobName"))
            verdict = judge(name, child_state_of(name, index), str(dependency.get("condition") or "Succeeded"))
            if verdict.failure:
                return verdict.failure
            if not verdict.ready:
                return "wait"
        return None

    return gate


def progress(size: int, array_status: Mapping[str, Any], pods: Iterable[PodObservation],
             retry_strategy: Mapping[str, Any], timeout_seconds: int | None, gate: ChildGate | None,
             creating: Iterable[int], now: str, now_seconds: float,
             parse_time: Callable[[str | None], float | None], no_retry: bool = False,
             startup_grace_seconds: float | None = None) -> Progress:
    """A child whose pod cannot start is given `startup_grace_seconds` (None: for ever); then its
    attempt is recorded as failed and its pod listed in `not_started` for the caller to delete."""
    settled = Settled.from_status(array_status)
    before = settled.fingerprint()
    active: dict[int, PodObservation] = {}
    not_started: list[PodObservation] = []
    done = settled.succeeded | settled.failed
    # Finished children's pods stay until garbage-collected: drop them before sorting the rest.
    current = [(p.index, p.attempt, p) for p in pods if p.index is not None and p.index < size and p.index not in done]
    for index, _, pod in sorted(current, key=lambda entry: entry[:2]):
        if settled.done(index) or pod.attempt != settled.next_attempt(index):
            continue
        if pod.terminated:
            _record_finished(settled, index, pod, retry_strategy, now, no_retry)
        elif startup_grace_seconds is not None and lifecycle.startup_failure_due(
                pod, now_seconds, startup_grace_seconds, parse_time):
            _record_failure(settled, index, lifecycle.startup_failure_record(pod, now), retry_strategy, no_retry)
            not_started.append(pod)
        else:
            active[index] = pod
    to_stop = []
    if timeout_seconds:
        for index, pod in active.items():
            started = parse_time(pod.running_since)
            if started is not None and now_seconds - started >= timeout_seconds:
                to_stop.append(index)
    in_flight = set(active) | set(creating)
    blocked = settled.succeeded | settled.failed | in_flight
    open_children = size - len(blocked)
    runnable: list[int] = []
    pending = 0
    if gate is ALL_WAIT:
        pending = open_children
    elif gate is None:
        # No per-child dependencies: list the lowest runnable children and count the rest.
        runnable = list(itertools.islice(itertools.filterfalse(blocked.__contains__, range(size)), RUNNABLE_LISTED))
    else:
        for index in range(size):
            if index in blocked:
                continue
            verdict = gate(index)
            if verdict is None:
                runnable.append(index)
            elif verdict == "wait":
                pending += 1
            else:
                fail_child(settled, index, verdict, now)
        open_children = len(runnable)
    count = 0 if gate is ALL_WAIT else open_children
    return Progress(settled, active, runnable, pending, to_stop, before != settled.fingerprint(), count,
                    not_started)


def summary(size: int, p: Progress) -> dict[str, int]:
    """statusSummary: all seven states, zeros included."""
    counts = dict.fromkeys(JOB_STATES, 0)
    counts["SUCCEEDED"] = len(p.settled.succeeded)
    counts["FAILED"] = len(p.settled.failed)
    running = sum(1 for pod in p.active.values() if pod.running_since)
    counts["RUNNING"] = running
    counts["STARTING"] = size - counts["SUCCEEDED"] - counts["FAILED"] - running - p.runnable_count - p.pending
    counts["RUNNABLE"] = p.runnable_count
    counts["PENDING"] = p.pending
    return counts


def array_status(size: int, p: Progress) -> dict[str, Any]:
    """The parent's status.arrayProperties: small whatever the size."""
    return {
        "size": size,
        "statusSummary": summary(size, p),
        "succeededIndices": format_ranges(p.settled.succeeded),
        "failedIndices": format_ranges(p.settled.failed),
        "failureCounts": p.settled.failure_counts(),
        "children": {str(i): {"attempts": a} for i, a in sorted(p.settled.attempts.items())},
    }


def reason(size: int, p: Progress, verdict: Verdict, held: str | None = None) -> str:
    """The parent's statusReason while its children run; `held`: why a cap holds children back."""
    if not verdict.ready:
        return f"Waiting for {verdict.waiting_on}"
    counts = summary(size, p)
    children = "Children: " + ", ".join(f"{counts[s]} {s}" for s in JOB_STATES if counts[s])
    return f"{children}; held back: {held}" if held else children


def replacing(previous: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """`status` (arrayProperties) as a JSON merge patch that replaces `previous`: a merge patch keeps
    map keys it does not name, so a count no child has any more (failureCounts) is sent as null."""
    patch = dict(status)
    for name in ("failureCounts", "children"):
        stale = set(previous.get(name) or {}) - set(status.get(name) or {})
        if stale:
            patch[name] = {**dict.fromkeys(sorted(stale)), **(status.get(name) or {})}
    return patch


def progress_patch(size: int, p: Progress, verdict: Verdict, held: str | None = None) -> JobStatusPatch:
    done = len(p.settled.succeeded) + len(p.settled.failed)
    return {"arrayProperties": array_status(size, p), "statusReason": reason(size, p, verdict, held),
            "arrayProgress": f"{done}/{size}"}


def finished(size: int, p: Progress) -> bool:
    return len(p.settled.succeeded) + len(p.settled.failed) >= size


def finish_patch(size: int, p: Progress, now: str, reason: str | None = None,
                 failed_children_reason: str | None = None, flag: str | None = None) -> JobStatusPatch:
    """The parent's end: children not settled and not running fail with `failed_children_reason`
    (a dependency failed, cancel, terminate); FAILED when any child failed or `flag` is set."""
    settled = p.settled
    if failed_children_reason:
        for index in range(size):
            if not settled.done(index) and index not in p.active:
                fail_child(settled, index, failed_children_reason, now)
        p = dataclasses.replace(p, runnable=[], pending=0, runnable_count=0)  # they are failed now
    failed = len(settled.failed)
    if reason is None:
        reason = (f"All {size} children succeeded" if not failed else
                  f"{failed} of {size} children failed (indices {format_ranges(settled.failed)})")
    patch: JobStatusPatch = {"state": FAILED if failed or flag else SUCCEEDED, "statusReason": reason,
                             "stoppedAt": now, "arrayProperties": array_status(size, p),
                             "arrayProgress": f"{len(settled.succeeded) + failed}/{size}"}
    if flag == "isCancelled":
        patch["isCancelled"] = True
    elif flag == "isTerminated":
        patch["isTerminated"] = True
    return patch
