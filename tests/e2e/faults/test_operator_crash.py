"""The operator killed (SIGKILL) at random moments under a mixed workload loses no job and runs
none twice, and the quota holds at every sampled instant.

A seeded generator (BARGE_FAULT_SEED, printed in the output and in every assertion message) draws
the workload, the moments of the kills, the pauses before each restart and the moments new jobs are
submitted, so a failing run replays with the same seed. The short version (the default, run in CI)
has 60-100 jobs and array children and 5-8 kills; BARGE_FAULT_SCALE=full has over 1,000 jobs and
20-24 kills:

    flock /tmp/cluster.lock env BARGE_FAULT_SCALE=full BARGE_FAULT_SEED=17 scripts/test -m faults -k crash -s
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from barge.core.arrays import format_ranges, parse_ranges
from barge.core.states import DEPENDENT_FAILED, FAILED, JOB_STATES, SUCCEEDED, TERMINAL
from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import OperatorProcess
from tests.e2e.faults.conftest import fault_seed, full_scale
from tests.e2e.faults.observer import Observer

BY_INDEX = "pod-fail-by-index.stage.barge.dev/exit-codes"      # array child i fails with the code listed
BY_ATTEMPT = "pod-fail-by-attempt.stage.barge.dev/exit-codes"  # attempt n fails with the code listed


@dataclass(frozen=True)
class Scale:
    name: str
    singles: int                # one-pod jobs
    chains: int                 # a -> b -> c
    arrays: int
    array_sizes: tuple[int, int]
    kills: tuple[int, int]      # how many, drawn in this range
    waves: int                  # submissions spread over the kills
    quotas: tuple[int, int]     # maxvCpus of the two compute environments
    finish_seconds: float       # after the last restart, every job is finished within this


SHORT = Scale("short", singles=30, chains=3, arrays=3, array_sizes=(5, 20), kills=(5, 8), waves=3,
              quotas=(4, 3), finish_seconds=300)
FULL = Scale("full", singles=1000, chains=30, arrays=12, array_sizes=(5, 20), kills=(20, 24), waves=8,
             quotas=(24, 16), finish_seconds=1800)
SCALE = FULL if full_scale() else SHORT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(5400 if SCALE is FULL else 900)]


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


def plan(rng: random.Random, scale: Scale, queue: str) -> Workload:
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


@dataclass
class Schedule:
    """When each kill comes (seconds the operator runs first), how long it stays down, and before
    which kill each wave of submissions goes in (wave 0 before the first)."""
    run_for: list[float]
    down_for: list[float]
    waves: dict[int, list[list[dict[str, Any]]]]


def schedule(rng: random.Random, scale: Scale, batchjobs: list[dict[str, Any]]) -> Schedule:
    kills = rng.randint(*scale.kills)
    run_for = [round(rng.uniform(0.2, 6.0), 2) for _ in range(kills)]
    down_for = [0.0 if rng.random() < 0.5 else round(rng.uniform(0.1, 2.0), 2) for _ in range(kills)]
    shuffled = list(batchjobs)
    rng.shuffle(shuffled)
    chunks = [shuffled[i::scale.waves] for i in range(scale.waves)]
    # Later waves go in before kills drawn from the first two thirds, so every wave meets kills.
    later = range(1, max(2, kills * 2 // 3))
    positions = [0, *sorted(rng.sample(later, min(scale.waves - 1, len(later))))]
    waves: dict[int, list[list[dict[str, Any]]]] = defaultdict(list)
    for i, chunk in enumerate(chunks):
        waves[positions[min(i, len(positions) - 1)]].append(chunk)
    return Schedule(run_for, down_for, dict(waves))


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


def test_operator_killed_at_random_moments_loses_no_job_and_runs_none_twice(
        barge: Barge, process: OperatorProcess, capsys: pytest.CaptureFixture[str]) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    replay = (f"[seed {seed}: replay with BARGE_FAULT_SEED={seed}"
              f"{' BARGE_FAULT_SCALE=full' if SCALE is FULL else ''}; operator log {process.log_path}]")

    def say(text: str) -> None:
        with capsys.disabled():
            print(text, flush=True)

    say(f"\nfault tier: operator SIGKILL, {SCALE.name} scale, BARGE_FAULT_SEED={seed}, "
        f"operator log {process.log_path}")
    ce_a, ce_b, queue = barge.name("ce-a"), barge.name("ce-b"), barge.name("q")
    quotas = {ce_a: SCALE.quotas[0] * 1000, ce_b: SCALE.quotas[1] * 1000}
    work = plan(rng, SCALE, queue)
    faults = schedule(rng, SCALE, work.batchjobs)
    barge.apply(compute_environment(ce_a, SCALE.quotas[0]), compute_environment(ce_b, SCALE.quotas[1]),
                job_queue(queue, [ce_a, ce_b]))
    barge.apply(*work.definitions)

    kills = 0
    in_flight: list[int] = []  # pods running (or starting) at each kill, as last sampled
    killed_at: list[str] = []  # when, in the observer's time (as in breaches) and UTC (as in logs)
    died_alone: list[str] = []
    began = time.monotonic()
    with Observer(barge.cluster, barge.namespace, quotas, interval=0.2,
                  limit_seconds=SCALE.finish_seconds + 1200) as observer:
        try:
            for k, (run_for, down_for) in enumerate(zip(faults.run_for, faults.down_for, strict=True)):
                for wave in faults.waves.get(k, []):
                    barge.apply(*wave)
                time.sleep(run_for)
                assert process.process is not None
                if process.process.poll() is not None:
                    died_alone.append(f"before kill {k + 1}: exit code {process.process.returncode}")
                in_flight.append(observer.live)
                process.stop(kill=True)
                kills += 1
                now = dt.datetime.now(dt.UTC)
                killed_at.append(f"{observer.elapsed():.1f}s ({now:%H:%M:%S}.{now.microsecond // 1000:03d})")
                time.sleep(down_for)
                process.start()
        finally:
            if process.process is None:
                process.start()
        last_restart = time.monotonic()
        statuses = wait_finished(barge, set(work.expected), SCALE.finish_seconds)
        finished_after = time.monotonic() - last_restart
    observer.sweep()
    duration = time.monotonic() - began

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
    by_state = Counter((s or {}).get("state") for s in statuses.values())
    peaks = ", ".join(f"{ce.removeprefix(barge.namespace + '-')} {observer.peak_milli.get(ce, 0) / 1000:g}/"
                      f"{quota / 1000:g}" for ce, quota in quotas.items())
    say(f"""fault tier figures (seed {seed}, {SCALE.name}):
  kills injected (SIGKILL)   {kills} (pods in flight at each: {in_flight}), restarts after 0-2 s
  BatchJobs                  {len(work.expected)} ({work.one_pod} one-pod, \
{len(work.expected) - work.one_pod} arrays with {work.children} children); final states {dict(by_state)}
  jobs lost                  {len(lost)}
  wrong outcomes             {len(wrong)}
  duplicated attempts        {len(twice)}
  quota breaches             {len(observer.breaches)} in {observer.samples} samples (peak vCPU {peaks})
  operator exits not ours    {len(died_alone)}
  duration                   {duration:.0f} s ({finished_after:.0f} s from the last restart to the last job)
  kills at                   {", ".join(killed_at)}""")
    for title, found in (("jobs lost", lost), ("wrong outcomes", wrong), ("duplicated attempts", twice),
                         ("quota breaches", observer.breaches)):
        if found:
            say(f"  {title}:\n" + "\n".join(f"    {item}" for item in found[:10]))

    assert observer.samples >= duration / 2, f"{replay} the sampler took {observer.samples} samples in " \
        f"{duration:.0f} s; errors: {observer.errors[-5:]}"
    assert not died_alone, f"{replay} the operator exited without being killed: {died_alone}"
    assert not lost, f"{replay} {len(lost)} jobs not finished {SCALE.finish_seconds:.0f} s after the last " \
        f"restart: {lost[:20]}"
    assert not twice, f"{replay} created or counted twice: {twice[:20]}"
    assert not observer.breaches, f"{replay} quota exceeded at {len(observer.breaches)} sampled instants: " \
        f"{observer.breaches[:5]}; kills at {killed_at}; placements recorded wrongly: " \
        f"{[w for w in wrong if 'computeEnvironment' in w][:10]}"
    assert not observer.unplaced_pods, f"{replay} live pods without a compute environment label: " \
        f"{sorted(observer.unplaced_pods)[:10]}"
    assert not wrong, f"{replay} {len(wrong)} jobs did not end as their script implies: {wrong[:20]}"
