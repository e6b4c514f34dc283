"""Properties of the scheduling core (barge.core.scheduler.schedule) over random snapshots.

The table tests in test_scheduler.py pin single cases; these pin the rules of the contract
(/work/shared/design/api.md, "JobQueue" and "Semantics that tests must pin down") for any snapshot:
quota, determinism, priority and FIFO without head-of-line blocking, liveness, and the statusReason
and jobStateTimeLimitActions rules. The oracles below are written independently of the scheduler's
helpers (Resources.fits_within, Capacity.free), so a bug there shows up here too.

Runs are reproducible (derandomize, no example database) and the file runs in a few seconds.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from barge.core.resources import Capacity, Resources
from barge.core.scheduler import (
    CANCEL,
    Decisions,
    Environment,
    Placement,
    Queue,
    Runnable,
    Snapshot,
    TimeLimitAction,
    Waiting,
    schedule,
)
from barge.core.states import (
    CAPACITY,
    ENVIRONMENT_UNAVAILABLE,
    JOB_RESOURCE_REQUIREMENT,
    MAX_RESOURCE,
    QUEUE_NOT_FOUND,
    TIME_LIMITED_REASONS,
)

HALF_GI = 2**29
CATEGORIES = (CAPACITY, MAX_RESOURCE, JOB_RESOURCE_REQUIREMENT, ENVIRONMENT_UNAVAILABLE, QUEUE_NOT_FOUND)
ENVIRONMENT_NAMES = ("ce0", "ce1", "ce2", "ce3")
NAMES_IN_QUEUES = (*ENVIRONMENT_NAMES, "gone")  # queues and pins may name environments that do not exist
QUEUE_NAMES = ("q0", "q1", "q2")
MISSING_QUEUE = "no-such-queue"
T = TypeVar("T")

# A profile per cost: every example runs schedule() once or a few times on up to 60 jobs.
FAST = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(FAST, max_examples=100)


# --- Strategies ----------------------------------------------------------------------------------
#
# Each environment, queue, request and job is drawn as one short byte string, one byte per field: a
# snapshot of 60 jobs is then ~100 choices for Hypothesis instead of ~1,000, which is what keeps the
# file fast (Hypothesis draws the bytes of a string near uniformly, unlike the digits of one big
# integer). Byte 0 picks the first option of each table, the simplest, so shrinking simplifies.
# Amounts come from tables rather than free ranges so that exact fits (a request equal to what is
# free) and the edges of the time limits happen often.

FIELDS = 16  # bytes per object: more than any object uses
PACKED = st.binary(min_size=FIELDS, max_size=FIELDS)
CPU_CAPACITIES = (4000, 8000, 16000, 2000, 1000, 3000, 4001, 5500, 6000, 7999, 12000, 1750, 250, 0)
MEMORY_CAPACITIES = (None, None, None, 16 * HALF_GI, 8 * HALF_GI, 4 * HALF_GI, 3 * HALF_GI, 0)
GPU_CAPACITIES = (0, 0, 0, 1, 2, 4)
ENABLED = (True, True, True, True, False)
USAGE_QUARTERS = (None, None, 0, 1, 2, 3, 4)  # admitted usage, in quarters of the quota (None: absent)
# Requests reach past the largest capacity in every dimension (20 vCPU > 16, 12Gi > 8Gi, 8 GPUs > 4).
CPU_REQUESTS = (1000, 0, 250, 500, 500, 750, 1000, 1000, 1500, 2000, 2000, 3000, 4000, 4001, 6000, 12000, 20000)
MEMORY_REQUESTS = (0, 0, 0, 0, 0, 0, HALF_GI, HALF_GI, 2 * HALF_GI, 3 * HALF_GI, 8 * HALF_GI, 24 * HALF_GI)
GPU_REQUESTS = (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 8)
PRIORITIES = (1, 0, 2, 3, 1, 2)
ENVIRONMENTS_PER_QUEUE = (1, 1, 2, 2, 3, 4, 0)
TIME_LIMITS_PER_QUEUE = (0, 1, 1, 2, 3)
MAX_SECONDS = (600, 601, 1200, 3600, 43200, 86399, 86400)
MISSING_QUEUE_ODDS = 12  # one job in 12 names a queue that does not exist
COUNTS = (1, 1, 1, 1, 1, 2, 3, 4, 7, 12)  # one-pod jobs and array parents
PIN_ODDS = 3  # one array in 3 is pinned
BLOCKED_CATEGORIES = (None, None, None, CAPACITY, CAPACITY, MAX_RESOURCE, *CATEGORIES)
WAITED = (0, 1, 599, 600, 601, 1199, 1200, 3600, 43199, 86400, 100_000, 100_000, 12_345)  # seconds before now
CARRIED_REASONS = (None, "an older statusReason")


class _Fields:
    """Fields unpacked from one drawn byte string, a byte each."""

    def __init__(self, packed: bytes) -> None:
        self._bytes = iter(packed)

    def number(self, below: int) -> int:
        return next(self._bytes, 0) % below

    def pick(self, options: tuple[T, ...]) -> T:
        return options[self.number(len(options))]


def _environment(name: str, packed: bytes) -> tuple[Environment, Resources | None]:
    """An environment and its admitted usage (within its quota; None: none reported)."""
    fields = _Fields(packed)
    capacity = Capacity(fields.pick(CPU_CAPACITIES), fields.pick(MEMORY_CAPACITIES), fields.pick(GPU_CAPACITIES))
    environment = Environment(name, fields.pick(ENABLED), capacity)
    quarters = [fields.pick(USAGE_QUARTERS) for _ in range(3)]
    if quarters[0] is None:
        return environment, None
    memory = 16 * HALF_GI if capacity.memory is None else capacity.memory
    cpu_q, memory_q, gpu_q = (q or 0 for q in quarters)
    return environment, Resources(capacity.cpu_milli * cpu_q // 4, memory * memory_q // 4, capacity.gpus * gpu_q // 4)


def _queue(name: str, packed: bytes, existing: list[str]) -> Queue:
    """A queue; its list names mostly existing environments, sometimes one that does not exist."""
    fields = _Fields(packed)
    priority = fields.pick(PRIORITIES)
    left = list(existing)
    size = min(fields.pick(ENVIRONMENTS_PER_QUEUE), len(left))
    order = [left.pop(fields.number(len(left))) for _ in range(size)]
    if fields.number(4) == 0:
        order.insert(fields.number(len(order) + 1), "gone")
    limits = tuple(TimeLimitAction(fields.pick(TIME_LIMITED_REASONS), fields.pick(MAX_SECONDS))
                   for _ in range(fields.pick(TIME_LIMITS_PER_QUEUE)))
    return Queue(name, priority, tuple(order), limits)


def _request(packed: bytes) -> Resources:
    fields = _Fields(packed)
    return Resources(fields.pick(CPU_REQUESTS), fields.pick(MEMORY_REQUESTS), fields.pick(GPU_REQUESTS))


def _job(index: int, packed: bytes, queues: dict[str, Queue], requests: list[Resources], now: float) -> Runnable:
    fields = _Fields(packed)
    shared = requests[fields.number(len(requests))]
    request = dataclasses.replace(shared) if fields.number(5) == 4 else shared  # an equal copy, sometimes
    names = list(queues)
    queue = MISSING_QUEUE if fields.number(MISSING_QUEUE_ODDS) == 0 else names[fields.number(len(names))]
    submitted_at = float(fields.number(31))
    count = fields.pick(COUNTS)
    # An array with children placed is pinned to their environment: mostly one of its queue's.
    where = (*queues[queue].environments, "gone") if queue in queues else ("gone",)
    pinned = where[fields.number(len(where))] if fields.number(PIN_ODDS) == 0 else None
    category = fields.pick(BLOCKED_CATEGORIES)
    waited = fields.pick(WAITED)
    reason = fields.pick(CARRIED_REASONS)
    return Runnable(
        # Keys sort apart from the list order and from submission: equal times are broken by key.
        key=f"ns/j{fields.number(100):02}-{index:02}",
        queue=queue,
        submitted_at=submitted_at,
        request=request,
        count=count,
        pinned_environment=pinned if count > 1 else None,
        blocked_category=category,
        blocked_since=None if category is None else now - waited,
        reason=None if category is None else reason,
    )


@st.composite
def snapshots(draw: st.DrawFn, max_jobs: int = 60) -> tuple[Snapshot, float]:
    """A snapshot as the controller builds it, and the clock of the pass: 1-4 environments (some
    disabled, memory unlimited or not, GPUs or not) with admitted usage within their quota, 1-3
    queues whose lists may name missing environments, with time limits on the three time-limited
    categories, and 0-60 jobs (one-pod jobs and array parents, some pinned, some bigger than every
    environment, some of a missing queue, some carrying a category and since from an earlier pass).
    A few request objects are shared by many jobs, as the controller interns equal requests, and
    some jobs get an equal copy, so the scheduler's identity shortcuts meet both cases."""
    now = float(draw(st.integers(1_000_000, 2_000_000_000)))
    names = draw(st.lists(st.sampled_from(ENVIRONMENT_NAMES), min_size=1, max_size=4, unique=True))
    environments: dict[str, Environment] = {}
    usage: dict[str, Resources] = {}
    for name, packed in zip(names, draw(st.lists(PACKED, min_size=len(names), max_size=len(names))), strict=True):
        environments[name], used = _environment(name, packed)
        if used is not None:
            usage[name] = used
    queue_packs = draw(st.lists(PACKED, min_size=1, max_size=3))
    queues = {name: _queue(name, packed, names) for name, packed in zip(QUEUE_NAMES, queue_packs, strict=False)}
    count = draw(st.sampled_from(range(1, 7)))
    requests = [_request(packed) for packed in draw(st.lists(PACKED, min_size=count, max_size=count))]
    size = draw(st.sampled_from(range(max_jobs + 1)))  # drawn first: Hypothesis draws mostly short lists
    packs = draw(st.lists(PACKED, min_size=size, max_size=size))
    jobs = [_job(i, packed, queues, requests, now) for i, packed in enumerate(packs)]
    return Snapshot(environments, queues, usage, jobs), now


# --- Oracles, independent of the scheduler's own helpers ------------------------------------------


def _plus(used: Resources, request: Resources, n: int = 1) -> Resources:
    return Resources(used.cpu_milli + n * request.cpu_milli, used.memory + n * request.memory,
                     used.gpus + n * request.gpus)


def _within(total: Resources, capacity: Capacity) -> bool:
    """Memory None: no memory quota. GPUs 0: no GPU at all. CPU is always limited."""
    return (total.cpu_milli <= capacity.cpu_milli and total.gpus <= capacity.gpus
            and (capacity.memory is None or total.memory <= capacity.memory))


def _children_with_room(request: Resources, capacity: Capacity, used: Resources, wanted: int) -> int:
    """How many of `wanted` children (each `request`) fit on top of `used`."""
    return next((n for n in range(wanted, 0, -1) if _within(_plus(used, request, n), capacity)), 0)


def _initial_usage(snapshot: Snapshot) -> dict[str, Resources]:
    return {**{name: Resources() for name in snapshot.environments}, **snapshot.usage}


def _candidates(job: Runnable, snapshot: Snapshot) -> tuple[str, ...]:
    """Where a job may go: its pinned environment (an array with children placed), else its queue's list."""
    if job.pinned_environment is not None:
        return (job.pinned_environment,)
    return snapshot.queues[job.queue].environments


def _usable(snapshot: Snapshot, name: str) -> bool:
    environment = snapshot.environments.get(name)
    return environment is not None and environment.enabled


def _first_with_room(job: Runnable, snapshot: Snapshot, usage: Mapping[str, Resources]) -> str | None:
    """The first environment of the job's list, enabled, where one child fits on top of `usage`."""
    for name in _candidates(job, snapshot):
        if _usable(snapshot, name) and _within(_plus(usage[name], job.request),
                                                snapshot.environments[name].capacity):
            return name
    return None


def _ahead(k: Runnable, j: Runnable, snapshot: Snapshot) -> bool:
    """K must be served before J: K's queue has a higher priority, or both are in one queue and K was
    submitted first (equal times: the smaller key first). Queues of equal priority have no order."""
    k_priority, j_priority = snapshot.queues[k.queue].priority, snapshot.queues[j.queue].priority
    if k_priority != j_priority:
        return k_priority > j_priority
    return k.queue == j.queue and (k.submitted_at, k.key) < (j.submitted_at, j.key)


def _expected_category(job: Runnable, snapshot: Snapshot) -> str:
    """The statusReason category a job that is not (fully) placed must have (api.md's rules, the
    precedence the table tests pin): no queue; no environment of the queue provides its kind of
    resource (GPUs); bigger than every environment of its queue can ever hold (disabled ones
    included); no environment enabled; else it waits for capacity."""
    if job.queue not in snapshot.queues:
        return QUEUE_NOT_FOUND
    existing = [snapshot.environments[n] for n in _candidates(job, snapshot) if n in snapshot.environments]
    if existing:
        if job.request.gpus and not any(e.capacity.gpus for e in existing):
            return JOB_RESOURCE_REQUIREMENT
        if not any(_within(job.request, e.capacity) for e in existing):
            return MAX_RESOURCE
    if not any(e.enabled for e in existing):
        return ENVIRONMENT_UNAVAILABLE
    return CAPACITY


def _placed_counts(decisions: Decisions) -> dict[str, int]:
    counts: dict[str, int] = {}
    for placement in decisions.placements:
        counts[placement.key] = counts.get(placement.key, 0) + placement.count
    return counts


def _replay(decisions: Decisions, snapshot: Snapshot) -> list[tuple[Placement, Resources]]:
    """Each placement, in the order listed (the order decided), with its environment's usage just
    before it."""
    jobs = {job.key: job for job in snapshot.jobs}
    usage = _initial_usage(snapshot)
    replayed = []
    for placement in decisions.placements:
        replayed.append((placement, usage[placement.environment]))
        usage[placement.environment] = _plus(usage[placement.environment], jobs[placement.key].request,
                                             placement.count)
    return replayed


def _comparable(decisions: Decisions) -> tuple[object, ...]:
    """What must not change with the order of the input. Placements are listed in the order decided
    (test_placements_are_listed_in_scheduling_order pins it); waiting is a dict; the order of
    cancellations is not promised."""
    cancellations = sorted((c.key, c.reason) for c in decisions.cancellations)
    return decisions.placements, decisions.waiting, cancellations, decisions.usage


def _fresh(names: Iterable[str]) -> tuple[str, ...]:
    return tuple("".join(list(name)) for name in names)


# --- 1. Quota ------------------------------------------------------------------------------------


@FAST
@given(snapshots())
def test_quota_is_never_exceeded_and_usage_is_admitted_plus_placed(case: tuple[Snapshot, float]) -> None:
    """For every environment: admitted usage + request x count of everything placed into it stays
    within its capacity in every dimension with a limit (memory None is unlimited, gpus 0 allows
    none), and Decisions.usage is exactly that sum (for every environment, placed into or not)."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    jobs = {job.key: job for job in snapshot.jobs}
    totals = _initial_usage(snapshot)
    for placement in decisions.placements:
        totals[placement.environment] = _plus(totals[placement.environment], jobs[placement.key].request,
                                              placement.count)
    for name, environment in snapshot.environments.items():
        assert _within(totals[name], environment.capacity), (name, totals[name], environment.capacity)
    assert decisions.usage == totals


@FAST
@given(snapshots())
def test_placements_go_only_where_the_job_may_run(case: tuple[Snapshot, float]) -> None:
    """A job is placed at most once per pass, 1..count children, into an existing, enabled
    environment of its queue's list (or the one it is pinned to), never from a missing queue."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    jobs = {job.key: job for job in snapshot.jobs}
    keys = [placement.key for placement in decisions.placements]
    assert len(keys) == len(set(keys))
    for placement in decisions.placements:
        job = jobs[placement.key]
        assert job.queue in snapshot.queues
        assert 1 <= placement.count <= job.count
        assert placement.environment in _candidates(job, snapshot)
        assert _usable(snapshot, placement.environment)


# --- 2. Determinism ------------------------------------------------------------------------------


@SLOW
@given(snapshots(), st.randoms(use_true_random=False))
def test_the_same_snapshot_gives_the_same_decisions(case: tuple[Snapshot, float], rng: random.Random) -> None:
    """Scheduling again, with the jobs shuffled, with every object an equal copy (no identity
    shared), or with equal requests interned to one object (as the controller does), gives the same
    placements in the same order, the same waiting reasons and the same cancellations; the snapshot
    itself is not changed."""
    snapshot, now = case
    usage_before, jobs_before = dict(snapshot.usage), list(snapshot.jobs)
    first = schedule(snapshot, now)
    assert dict(snapshot.usage) == usage_before
    assert list(snapshot.jobs) == jobs_before

    shuffled = list(snapshot.jobs)
    rng.shuffle(shuffled)
    copied = Snapshot(
        environments={name: dataclasses.replace(e) for name, e in snapshot.environments.items()},
        queues={name: dataclasses.replace(q, environments=_fresh(q.environments),
                                          time_limit_actions=tuple(dataclasses.replace(t)
                                                                   for t in q.time_limit_actions))
                for name, q in snapshot.queues.items()},
        usage={name: dataclasses.replace(u) for name, u in snapshot.usage.items()},
        jobs=[dataclasses.replace(j, queue=_fresh([j.queue])[0], request=dataclasses.replace(j.request))
              for j in snapshot.jobs],
    )
    interned: dict[Resources, Resources] = {}
    one_object = [dataclasses.replace(j, request=interned.setdefault(j.request, j.request)) for j in shuffled]
    for variant in (snapshot, dataclasses.replace(snapshot, jobs=shuffled), copied,
                    dataclasses.replace(snapshot, jobs=one_object)):
        assert _comparable(schedule(variant, now)) == _comparable(first)


# --- 3. Priority and FIFO, without head-of-line blocking -------------------------------------------


@FAST
@given(snapshots())
def test_nothing_placed_jumps_ahead_of_a_waiting_job_that_would_have_fit(case: tuple[Snapshot, float]) -> None:
    """Let J be placed on environment E, and U the usage of E just before J's placement (admitted
    usage plus the placements listed before J's; placements are listed in the order decided). Let K
    be a job of an existing queue left (partly) unplaced, that may use E (E is in its queue's list,
    or K is pinned to E; an array that got children placed this pass lives in that environment), and
    whose one child alone fits E on top of U. Then K is not ahead of J: K's queue does not have a
    higher priority than J's, and K is not J's queue-mate submitted earlier (equal times: smaller key).

    U, not the usage before the pass: with no head-of-line blocking a job K that fit E before the
    pass but not after the jobs ahead of both took their share must not hold back a smaller J behind
    it (test_a_job_that_does_not_fit_does_not_block_smaller_jobs_behind_it places a 2-vCPU job of a
    lower queue while a 6-vCPU job of a higher one, which fit the empty environment, waits)."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    jobs = {job.key: job for job in snapshot.jobs}
    placed = _placed_counts(decisions)
    placed_in = {placement.key: placement.environment for placement in decisions.placements}
    waiting = [job for job in snapshot.jobs if job.queue in snapshot.queues and placed.get(job.key, 0) < job.count]
    for placement, before in _replay(decisions, snapshot):
        j = jobs[placement.key]
        environment = snapshot.environments[placement.environment]
        for k in waiting:
            may_use = (placed_in[k.key],) if k.key in placed_in else _candidates(k, snapshot)
            if k.key == j.key or placement.environment not in may_use:
                continue
            if _within(_plus(before, k.request), environment.capacity):
                assert not _ahead(k, j, snapshot), (
                    f"{j.key} placed on {placement.environment} (usage before {before}) while {k.key}, "
                    f"ahead of it, waits though it fits"
                )


@FAST
@given(snapshots())
def test_no_waiting_job_fits_anywhere_it_may_go_after_the_pass(case: tuple[Snapshot, float]) -> None:
    """No head-of-line blocking, as a whole: after the pass, no job left (partly) unplaced has room
    for one more child in any enabled environment it may use (its queue's list, its pin, or the
    environment its array got children in this pass), at the final usage. A job that does not fit
    never keeps a smaller one behind it from the room that is left."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    placed = _placed_counts(decisions)
    placed_in = {placement.key: placement.environment for placement in decisions.placements}
    for job in snapshot.jobs:
        if job.queue not in snapshot.queues or placed.get(job.key, 0) >= job.count:
            continue
        may_use = (placed_in[job.key],) if job.key in placed_in else _candidates(job, snapshot)
        for name in may_use:
            if _usable(snapshot, name):
                assert not _within(_plus(decisions.usage[name], job.request),
                                   snapshot.environments[name].capacity), (job.key, name)


@FAST
@given(snapshots())
def test_each_placement_respects_the_order_and_takes_the_first_environment_with_room(
    case: tuple[Snapshot, float],
) -> None:
    """Placements are listed in an order that serves higher-priority queues first and each queue
    FIFO; replayed in that order, each goes to the first environment of its list (or its pin) that is
    enabled and has room for one child, with as many children as fit there (up to its count)."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    jobs = {job.key: job for job in snapshot.jobs}
    order = [jobs[placement.key] for placement in decisions.placements]
    for i, earlier in enumerate(order):
        for later in order[i + 1:]:
            assert not _ahead(later, earlier, snapshot), (earlier.key, later.key)
    usage = _initial_usage(snapshot)
    for placement, before in _replay(decisions, snapshot):
        job = jobs[placement.key]
        assert _first_with_room(job, snapshot, usage) == placement.environment
        capacity = snapshot.environments[placement.environment].capacity
        assert placement.count == _children_with_room(job.request, capacity, before, job.count)
        usage[placement.environment] = _plus(before, job.request, placement.count)


# --- 4. Liveness ---------------------------------------------------------------------------------


@FAST
@given(snapshots(max_jobs=10))
def test_a_lone_job_that_fits_is_placed(case: tuple[Snapshot, float]) -> None:
    """Each job alone (nothing else waits): if one child fits on top of the admitted usage in an
    enabled environment it may use, it is placed in the first such one, with as many children as fit;
    otherwise nothing is placed."""
    snapshot, now = case
    usage = _initial_usage(snapshot)
    for job in snapshot.jobs:
        decisions = schedule(dataclasses.replace(snapshot, jobs=[job]), now)
        target = _first_with_room(job, snapshot, usage) if job.queue in snapshot.queues else None
        if target is None:
            assert decisions.placements == []
        else:
            capacity = snapshot.environments[target].capacity
            count = _children_with_room(job.request, capacity, usage[target], job.count)
            assert decisions.placements == [Placement(job.key, target, count)]


@SLOW
@given(snapshots(max_jobs=40))
def test_passes_in_which_placed_jobs_finish_place_every_job_that_can_fit(case: tuple[Snapshot, float]) -> None:
    """Pass after pass, where everything placed finishes before the next pass (usage back to the
    admitted usage) and an array's remaining children are pinned where it got its first ones, every
    job that fits an environment it may use on top of the admitted usage is placed in full, and no
    other job is ever placed. No job is passed over for ever: a job J is done by pass
    count(J) + the children of the other fittable jobs not behind J in the queue order (each pass in
    which J does not progress, one of those took the room J needed). With one-pod jobs only, that is
    at most N passes for N jobs. Time-limit actions are left out: placement only."""
    snapshot, now = case
    queues = {name: dataclasses.replace(q, time_limit_actions=()) for name, q in snapshot.queues.items()}
    snapshot = dataclasses.replace(snapshot, queues=queues)
    usage = _initial_usage(snapshot)
    fittable = [job for job in snapshot.jobs
                if job.queue in snapshot.queues and _first_with_room(job, snapshot, usage) is not None]
    bound = {
        j.key: j.count + sum(k.count for k in fittable if k.key != j.key and not _ahead(j, k, snapshot))
        for j in fittable
    }
    left = {job.key: job for job in snapshot.jobs}
    done_at: dict[str, int] = {}
    for number in range(1, sum(job.count for job in fittable) + 1):
        if all(job.key in done_at for job in fittable):
            break
        decisions = schedule(dataclasses.replace(snapshot, jobs=list(left.values())), now + number)
        for placement in decisions.placements:
            assert placement.key in bound, f"{placement.key} can never fit, yet was placed"
            job = left[placement.key]
            if placement.count == job.count:
                del left[placement.key]
                done_at[placement.key] = number
            else:
                left[placement.key] = dataclasses.replace(job, count=job.count - placement.count,
                                                          pinned_environment=placement.environment)
    assert set(done_at) == {job.key for job in fittable}
    for key, number in done_at.items():
        assert number <= bound[key], (key, number, bound[key])


# --- 5. Reasons and time limits -------------------------------------------------------------------


@FAST
@given(snapshots())
def test_every_job_not_placed_waits_with_the_aws_category(case: tuple[Snapshot, float]) -> None:
    """A job placed in full neither waits nor is cancelled; a cancelled one is not placed and does
    not wait; every other job (partly placed arrays included) gets a Waiting with one of AWS's
    categories, the one the contract's rules give (a job bigger than every environment of its queue
    waits with MAX_RESOURCE; one needing GPUs no environment of its queue has, with
    JOB_RESOURCE_REQUIREMENT; ...), a reason that starts with it, and a since kept from the job when
    the category is unchanged, else now. A job is left out only if it already carries that
    category and since and a reason (the same text: see the feedback test below)."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    placed = _placed_counts(decisions)
    cancelled = {c.key for c in decisions.cancellations}
    assert len(cancelled) == len(decisions.cancellations)
    assert set(decisions.waiting) <= {job.key for job in snapshot.jobs}
    for job in snapshot.jobs:
        told = decisions.waiting.get(job.key)
        if placed.get(job.key, 0) == job.count:
            assert told is None and job.key not in cancelled
            continue
        if job.key in cancelled:
            assert told is None and job.key not in placed
            continue
        category = _expected_category(job, snapshot)
        since = job.blocked_since if job.blocked_category == category and job.blocked_since is not None else now
        if told is None:  # left out as unchanged
            assert job.reason is not None and job.blocked_category == category and job.blocked_since == since
            continue
        assert told.key == job.key
        assert told.category in CATEGORIES
        assert told.category == category, (job, told)
        assert told.reason.startswith(category + " - ")
        assert told.since == since


@FAST
@given(snapshots())
def test_cancellations_are_exactly_the_jobs_past_their_queues_time_limit(case: tuple[Snapshot, float]) -> None:
    """A job is cancelled if and only if nothing of it was placed this pass, its queue exists and has
    a CANCEL jobStateTimeLimitAction for the category it waits with, and it has waited with that
    category (blocked_category, blocked_since) for at least that rule's maxTimeSeconds. The reason
    starts with the category."""
    snapshot, now = case
    decisions = schedule(snapshot, now)
    placed = _placed_counts(decisions)
    cancelled = {c.key: c for c in decisions.cancellations}
    for job in snapshot.jobs:
        category = _expected_category(job, snapshot)
        queue = snapshot.queues.get(job.queue)
        rules = [] if queue is None else [
            rule for rule in queue.time_limit_actions if rule.action == CANCEL and rule.reason == category
        ]
        due = (
            job.key not in placed and job.blocked_category == category and job.blocked_since is not None
            and any(now - job.blocked_since >= rule.max_seconds for rule in rules)
        )
        assert (job.key in cancelled) == due, (job, category, rules)
        if due:
            assert cancelled[job.key].reason.startswith(category + " - ")


def _told(snapshot: Snapshot, decisions: Decisions) -> Snapshot:
    """The next pass's snapshot: each job that was told why it waits now carries it."""
    told = decisions.waiting
    return dataclasses.replace(snapshot, jobs=[
        dataclasses.replace(job, reason=told[job.key].reason, blocked_category=told[job.key].category,
                            blocked_since=told[job.key].since) if job.key in told else job
        for job in snapshot.jobs
    ])


@FAST
@given(snapshots(), st.integers(0, 100_000))
def test_a_job_already_told_its_reason_is_left_out(case: tuple[Snapshot, float], later: int) -> None:
    """Carrying back what a pass said (reason, category, since) into the jobs and scheduling again,
    at the same time or later, leaves every job of an existing queue out of waiting (the Decisions
    docstring: "a job already waiting for the same reason since the same time is left out"), places
    the same, and cancels the same jobs (at the same time) or more (later: the clock only moves on).
    Jobs of a missing queue: test_a_job_of_a_missing_queue_already_told_is_left_out_too."""
    snapshot, now = case
    first = schedule(snapshot, now)
    told = _told(snapshot, first)
    known = {job.key for job in snapshot.jobs if job.queue in snapshot.queues}
    again = schedule(told, now)
    assert set(again.waiting) & known == set()
    assert again.placements == first.placements
    assert again.cancellations == first.cancellations
    assert again.usage == first.usage
    afterwards = schedule(told, now + later)
    assert set(afterwards.waiting) & known == set()
    assert afterwards.placements == first.placements
    assert {c.key for c in first.cancellations} <= {c.key for c in afterwards.cancellations}


@FAST
@given(snapshots(), st.randoms(use_true_random=False))
def test_a_job_told_something_else_is_told_again(case: tuple[Snapshot, float], rng: random.Random) -> None:
    """Only all three together leave a job out: a job that carries its category and since but another
    reason text is told the same Waiting again; one that carries its category and reason but no since
    is told again, waiting since now."""
    snapshot, now = case
    first = schedule(snapshot, now)
    changed: dict[str, Waiting] = {}
    jobs = []
    for job in snapshot.jobs:
        wait = first.waiting.get(job.key)
        if wait is None or rng.random() < 0.3:
            jobs.append(job)
        elif rng.random() < 0.5:
            jobs.append(dataclasses.replace(job, reason=wait.reason + " (older)", blocked_category=wait.category,
                                            blocked_since=wait.since))
            changed[job.key] = wait
        else:
            jobs.append(dataclasses.replace(job, reason=wait.reason, blocked_category=wait.category,
                                            blocked_since=None))
            changed[job.key] = dataclasses.replace(wait, since=now)
    again = schedule(dataclasses.replace(snapshot, jobs=jobs), now)
    for key, wait in changed.items():  # none is cancelled: a since of now is within every time limit
        assert again.waiting.get(key) == wait


@FAST
@given(snapshots())
def test_a_job_of_a_missing_queue_already_told_is_left_out_too(case: tuple[Snapshot, float]) -> None:
    """The same for a job whose queue does not exist: once it carries its QUEUE_NOT_FOUND reason,
    category and since, the next pass leaves it out of waiting like any other job. (The Decisions
    docstring makes no exception for them, and a deep queue of jobs naming a deleted queue is the
    case the rule is for.)"""
    snapshot, now = case
    again = schedule(_told(snapshot, schedule(snapshot, now)), now)
    orphans = {job.key for job in snapshot.jobs if job.queue not in snapshot.queues}
    assert set(again.waiting) & orphans == set(), [again.waiting[key] for key in sorted(set(again.waiting) & orphans)]
