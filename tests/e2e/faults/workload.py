"""The mixed workload every fault test runs (one-pod jobs, retries, dependency chains, arrays with
failing and flaky children), what each job's script implies once it is finished, and the check of
a finished run against it: jobs lost, wrong outcomes, attempts run or counted twice."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from barge.core.arrays import format_ranges, parse_ranges
from barge.core.states import DEPENDENT_FAILED, FAILED, JOB_STATES, SUCCEEDED, TERMINAL
from tests.e2e.barge_objects import Barge, batch_job, job_definition
from tests.e2e.faults.observer import Observer

BY_INDEX = "pod-fail-by-index.stage.barge.dev/exit-codes"      # array child i fails with the code listed
BY_ATTEMPT = "pod-fail-by-attempt.stage.barge.dev/exit-codes"  # attempt n fails with the code listed


@dataclass(frozen=True)
class Mix:
    singles: int                # one-pod jobs
    chains: int                 # a -> b -> c
    arrays: int
    array_sizes: tuple[int, int]


@dataclass
class Expected:
    """What a job's script implies once it is finished."""
    name: str
    state: str
    exit_codes: list[int] = field(default_factory=list)       # one-pod: one per attempt
    reason: str | None = None                                 # the statusReason, when it is the point
    size: int = 0                                             # arrays
    child_attempts: dict[int, int] = field(default_factory=dict)
    failed_children: set[int] = field(default_factory=set)

    @property
    def attempts(self) -> int:
        return len(self.exit_codes)

    def failures(self, index: int) -> int:
        """Failed attempts of an array child."""
        attempts = self.child_attempts[index]
        return attempts if index in self.failed_children else attempts - 1


@dataclass
class Workload:
    definitions: list[dict[str, Any]]
    batchjobs: list[dict[str, Any]]
    expected: dict[str, Expected]

    @property
    def children(self) -> int:
        return sum(e.size for e in self.expected.values())

    @property
    def one_pod(self) -> int:
        return sum(1 for e in self.expected.values() if not e.size)


def definitions() -> list[dict[str, Any]]:
    flaky: dict[str, Any] = {"annotations": {BY_ATTEMPT: "1=3"}, "retryStrategy": {"attempts": 2}}
    return [
        *[job_definition(f"ok-{d}s", cpu="1", delay=f"{d}s") for d in (1, 2, 3, 4)],
        job_definition("wide", cpu="2", delay="2s"),
        job_definition("flaky", cpu="1", delay="1s", **flaky),  # fails its first attempt, succeeds the second
        job_definition("doomed", cpu="1", delay="1s", annotations={BY_ATTEMPT: "1=3,2=3"},
                       retryStrategy={"attempts": 2}),  # fails both of its attempts
        job_definition("exits", cpu="1", delay="1s", annotations={BY_ATTEMPT: "1=42,2=42,3=42"},
                       retryStrategy={"attempts": 3, "evaluateOnExit": [{"onExitCode": "4*", "action": "EXIT"}]}),
    ]


SINGLE_KINDS = (  # definition, weight, state, exit codes of its attempts
    ("ok", 55, SUCCEEDED, [0]),
    ("wide", 15, SUCCEEDED, [0]),
    ("flaky", 15, SUCCEEDED, [3, 0]),
    ("doomed", 8, FAILED, [3, 3]),
    ("exits", 7, FAILED, [42]),
)


def plan(rng: random.Random, scale: Mix, queue: str) -> Workload:
    defs = definitions()
    jobs: list[dict[str, Any]] = []
    expected: dict[str, Expected] = {}

    def add(name: str, definition: str, expect: Expected, **spec: Any) -> None:
        jobs.append(batch_job(name, definition, queue, **spec))
        expected[name] = expect

    weights = [w for _, w, _, _ in SINGLE_KINDS]
    for i in range(scale.singles):
        kind, _, state, codes = rng.choices(SINGLE_KINDS, weights)[0]
        definition = f"ok-{rng.randint(1, 4)}s" if kind == "ok" else kind
        add(f"job-{i:04d}", definition, Expected(f"job-{i:04d}", state, list(codes)))

    for c in range(scale.chains):
        a, b, cc = (f"chain-{c:03d}-{x}" for x in "abc")
        shape = ("ok", "doomed-head", "array-middle")[c % 3]
        if shape == "doomed-head":
            add(a, "doomed", Expected(a, FAILED, [3, 3]))
            add(b, "ok-1s", Expected(b, FAILED, reason=DEPENDENT_FAILED), dependsOn=[{"jobName": a}])
            add(cc, "ok-1s", Expected(cc, FAILED, reason=DEPENDENT_FAILED), dependsOn=[{"jobName": b}])
        else:
            add(a, "ok-1s", Expected(a, SUCCEEDED, [0]))
            if shape == "array-middle":
                add(b, "ok-1s", Expected(b, SUCCEEDED, size=5, child_attempts=dict.fromkeys(range(5), 1)),
                    dependsOn=[{"jobName": a}], arrayProperties={"size": 5})
            else:
                add(b, "ok-2s", Expected(b, SUCCEEDED, [0]), dependsOn=[{"jobName": a}])
            add(cc, "ok-1s", Expected(cc, SUCCEEDED, [0]), dependsOn=[{"jobName": b}])

    for k in range(scale.arrays):
        name, size = f"array-{k:03d}", rng.randint(*scale.array_sizes)
        shape = ("ok", "failing-children", "flaky-children")[k % 3]
        if shape == "ok":
            add(name, f"ok-{rng.randint(1, 2)}s",
                Expected(name, SUCCEEDED, size=size, child_attempts=dict.fromkeys(range(size), 1)),
                arrayProperties={"size": size})
        elif shape == "failing-children":
            failing = set(rng.sample(range(size), rng.randint(1, 2)))
            by_index = ",".join(f"{i}=3" for i in sorted(failing))
            defs.append(job_definition(f"fail-{name}", cpu="1", delay="1s", annotations={BY_INDEX: by_index},
                                       retryStrategy={"attempts": 2}))
            attempts = {i: 2 if i in failing else 1 for i in range(size)}
            add(name, f"fail-{name}", Expected(name, FAILED, size=size, child_attempts=attempts,
                                               failed_children=failing), arrayProperties={"size": size})
        else:
            add(name, "flaky", Expected(name, SUCCEEDED, size=size, child_attempts=dict.fromkeys(range(size), 2)),
                arrayProperties={"size": size})
    return Workload(defs, jobs, expected)


def check(expected: Expected, status: dict[str, Any], observer: Observer) -> tuple[list[str], list[str]]:
    """(wrong outcomes, attempts run or counted twice) of one finished job."""
    wrong: list[str] = []
    twice: list[str] = []
    name = expected.name
    said = f"{name}: state {status.get('state')} ({status.get('statusReason')})"
    if status.get("state") != expected.state:
        wrong.append(f"{said}, expected {expected.state}")
    if expected.reason and status.get("statusReason") != expected.reason:
        wrong.append(f"{said}, expected the reason {expected.reason!r}")
    job_id = status.get("jobId") or ""
    seen = observer.attempts_of(job_id)
    kube_jobs = observer.job_attempts_of(job_id)
    if not expected.size:
        codes = [a.get("exitCode") for a in status.get("attempts") or []]
        counted = status.get("attemptCount") or 0
        if counted > expected.attempts or len(codes) > expected.attempts:
            twice.append(f"{name}: attemptCount {counted}, attempts {codes}; its script implies {expected.exit_codes}")
        elif codes != expected.exit_codes or counted != expected.attempts:
            wrong.append(f"{name}: attemptCount {counted}, attempts {codes}; expected {expected.exit_codes}")
        ran = sorted(seen.get(None, set()))
        if len(ran) > expected.attempts:
            twice.append(f"{name}: pods of attempts {ran} ran; its script implies {expected.attempts}")
        elif ran != list(range(1, expected.attempts + 1)):
            wrong.append(f"{name}: pods of attempts {ran} seen; expected 1..{expected.attempts}")
        if kube_jobs != {str(n) for n in range(1, expected.attempts + 1)}:
            wrong.append(f"{name}: Kubernetes Jobs of attempts {sorted(kube_jobs, key=str)}; "
                         f"expected 1..{expected.attempts}")
        if expected.attempts:
            # The placement in the status is where the last attempt ran (what the quota counted).
            ran_on, created = observer.placement_of(job_id, str(expected.attempts))
            if ran_on != status.get("computeEnvironment"):
                wrong.append(f"{name}: status.computeEnvironment {status.get('computeEnvironment')} but its "
                             f"Kubernetes Job {status.get('kubernetesJob')} (created {created}) runs its pod on "
                             f"{ran_on}: the quota counted it in the wrong place")
        return wrong, twice
    array = status.get("arrayProperties") or {}
    summary = array.get("statusSummary") or {}
    want = dict.fromkeys(JOB_STATES, 0) | {FAILED: len(expected.failed_children),
                                            SUCCEEDED: expected.size - len(expected.failed_children)}
    if array.get("size") != expected.size or sum(summary.values()) != expected.size or summary != want:
        wrong.append(f"{name}: size {array.get('size')}, statusSummary {summary}; expected {want}")
    if array.get("failedIndices", "") != format_ranges(expected.failed_children):
        wrong.append(f"{name}: failedIndices {array.get('failedIndices')!r}; "
                     f"expected {format_ranges(expected.failed_children)!r}")
    failures: dict[int, list[int]] = defaultdict(list)
    for index in expected.child_attempts:
        if expected.failures(index):
            failures[expected.failures(index)].append(index)
    want_counts = {str(n): format_ranges(indices) for n, indices in sorted(failures.items())}
    counts = array.get("failureCounts") or {}
    if counts != want_counts:
        listed = Counter(i for ranges in counts.values() for i in parse_ranges(ranges))
        more_than_once = sorted(i for i, n in listed.items() if n > 1)
        note = f" (indices under more than one count: {format_ranges(more_than_once)})" if more_than_once else ""
        (twice if _more_failures(counts, expected) else wrong).append(
            f"{name}: failureCounts {counts}; expected {want_counts}{note}")
    children = array.get("children") or {}
    recorded = {int(i): len(c.get("attempts") or []) for i, c in children.items()}
    want_recorded = {i: expected.failures(i) for i in expected.child_attempts if expected.failures(i)}
    if recorded != want_recorded:
        wrong.append(f"{name}: failed attempts recorded per child {recorded}; expected {want_recorded}")
    for index, attempts in sorted(expected.child_attempts.items()):
        ran = sorted(seen.get(str(index), set()))
        if len(ran) > attempts:
            twice.append(f"{name} child {index}: pods of attempts {ran}; its script implies {attempts}")
        elif ran != list(range(1, attempts + 1)):
            wrong.append(f"{name} child {index}: pods of attempts {ran} seen; expected 1..{attempts}")
    if kube_jobs != {None}:
        wrong.append(f"{name}: Kubernetes Jobs {sorted(kube_jobs, key=str)}; expected the array's one Job")
    return wrong, twice


def _more_failures(counts: dict[str, str], expected: Expected) -> bool:
    return any(int(n) > expected.failures(i) for n, ranges in counts.items() for i in parse_ranges(ranges)
               if i in expected.child_attempts)


def wait_finished(barge: Barge, names: set[str], seconds: float) -> dict[str, dict[str, Any]]:
    """Every BatchJob's status once all of `names` are finished, or what they are at the deadline."""
    deadline = time.monotonic() + seconds
    interval = 1 + len(names) / 500  # a list of a thousand BatchJobs is megabytes on a shared machine
    statuses: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            statuses = {j["metadata"]["name"]: j.get("status") or {} for j in barge.cluster.batchjobs(barge.namespace)}
        except Exception:  # the apiserver is busy: look again
            time.sleep(1)
            continue
        if all((statuses.get(n) or {}).get("state") in TERMINAL for n in names):
            break
        time.sleep(interval)
    return statuses


@dataclass
class Verdict:
    lost: list[str]
    wrong: list[str]
    twice: list[str]
    by_state: Counter[str | None]


def verdict(work: Workload, statuses: dict[str, dict[str, Any]], observer: Observer) -> Verdict:
    """A finished run judged job by job against what each script implies."""
    lost = sorted(f"{n}: {'gone' if n not in statuses else statuses[n].get('state')} "
                  f"({(statuses.get(n) or {}).get('statusReason')})"
                  for n in work.expected if (statuses.get(n) or {}).get("state") not in TERMINAL)
    wrong: list[str] = []
    twice = observer.duplicates()
    for name, expected in sorted(work.expected.items()):
        if (statuses.get(name) or {}).get("state") in TERMINAL:
            w, t = check(expected, statuses[name], observer)
            wrong += w
            twice += t
    return Verdict(lost, wrong, twice, Counter((s or {}).get("state") for s in statuses.values()))
