"""The scheduling rules: a pure function from a snapshot of the cluster to decisions.

AWS Batch semantics: jobs of higher-priority queues go first, FIFO by submission
inside a queue, each job in the first environment of its queue where it fits, the
environment's quota never exceeded, and no head-of-line blocking. Jobs that cannot
start get AWS's statusReason, and the queue's jobStateTimeLimitActions cancel jobs
that have waited too long with the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from barge.core.resources import (
    Capacity,
    Resources,
    format_bytes,
    format_cpu,
)
from barge.core.states import (
    CAPACITY,
    ENVIRONMENT_UNAVAILABLE,
    JOB_RESOURCE_REQUIREMENT,
    MAX_RESOURCE,
    QUEUE_NOT_FOUND,
)

CANCEL = "CANCEL"


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    enabled: bool
    capacity: Capacity
    closed: str = "DISABLED"  # what a job waiting for it is told when it is not enabled (or INVALID)


@dataclass(frozen=True, slots=True)
class TimeLimitAction:
    reason: str
    max_seconds: int
    action: str = CANCEL


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    priority: int
    environments: tuple[str, ...]
    time_limit_actions: tuple[TimeLimitAction, ...] = ()


@dataclass(frozen=True, slots=True)
class Runnable:
    key: str
    queue: str
    submitted_at: float
    request: Resources
    count: int = 1
    pinned_environment: str | None = None
    blocked_category: str | None = None
    blocked_since: float | None = None
    reason: str | None = None  # the statusReason it has now; None: unknown
    source: object = field(default=None, compare=False, repr=False)  # the caller's own, untouched here

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"job {self.key!r}: count must be at least 1, got {self.count}")


@dataclass(frozen=True, slots=True)
class Snapshot:
    environments: Mapping[str, Environment]
    queues: Mapping[str, Queue]
    usage: Mapping[str, Resources]
    jobs: Sequence[Runnable]


@dataclass(frozen=True, slots=True)
class Placement:
    key: str
    environment: str
    count: int


@dataclass(frozen=True, slots=True)
class Waiting:
    key: str
    category: str
    reason: str
    since: float


@dataclass(frozen=True, slots=True)
class Cancellation:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decisions:
    placements: list[Placement]
    # Jobs that wait with a category, reason or since other than the ones they carry: a job already
    # waiting for the same reason since the same time is left out (a deep queue is mostly those).
    waiting: dict[str, Waiting]
    cancellations: list[Cancellation]
    usage: dict[str, Resources]


def schedule(snapshot: Snapshot, now: float) -> Decisions:
    """Place what fits, explain what waits, cancel what waited too long."""
    usage = _initial_usage(snapshot)
    queued, orphans = _split_by_queue(snapshot)
    placements, unplaced, partly_placed = _place_all(queued, snapshot, usage)
    waiting: dict[str, Waiting] = {}
    for job in orphans:
        told = _queue_not_found(job, now)
        if _news(job, told.category, told.reason, told.since):
            waiting[job.key] = told
    cancellations: list[Cancellation] = []
    reasons = _ReasonWriter(snapshot, usage)
    for job in unplaced:
        placed = partly_placed.get(job.key, 0)
        queue = snapshot.queues[job.queue]
        category, reason = reasons.reason(job, queue, placed)
        since = _blocked_since(job, category, now)
        if queue.time_limit_actions and not placed:
            cancellation = _time_limit_cancellation(job, queue, category, since, now)
            if cancellation is not None:
                cancellations.append(cancellation)
                continue
        if _news(job, category, reason, since):  # a deep queue is mostly jobs told this already
            waiting[job.key] = Waiting(job.key, category, reason, since)
    return Decisions(placements, waiting, cancellations, usage)


# --- Placement pass ----------------------------------------------------------


def _initial_usage(snapshot: Snapshot) -> dict[str, Resources]:
    usage = {name: Resources() for name in snapshot.environments}
    usage.update(snapshot.usage)
    return usage


def _split_by_queue(snapshot: Snapshot) -> tuple[list[Runnable], list[Runnable]]:
    queued: list[Runnable] = []
    orphans: list[Runnable] = []
    for job in snapshot.jobs:
        (queued if job.queue in snapshot.queues else orphans).append(job)
    orphans.sort(key=lambda job: (job.submitted_at, job.key))
    return queued, orphans


def _place_all(
    jobs: list[Runnable], snapshot: Snapshot, usage: dict[str, Resources]
) -> tuple[list[Placement], list[Runnable], dict[str, int]]:
    """Place jobs in priority order, updating usage; return the placements, the jobs left (partly)
    unplaced, and how many children of the partly placed ones were placed.

    No object per job is kept beyond the pass's own (no sort-key tuples, no pairs): over 100,000
    jobs those would be promoted by the garbage collector and soon cost a full collection, about a
    second with a deep queue in memory."""
    priority = {name: queue.priority for name, queue in snapshot.queues.items()}
    jobs = sorted(jobs, key=_key_of)
    jobs.sort(key=_submitted_at)
    if len(set(priority.values())) > 1:
        jobs.sort(key=lambda job: -priority[job.queue])
    placer = _Placer(snapshot.environments, usage)
    placements: list[Placement] = []
    unplaced: list[Runnable] = []
    partly_placed: dict[str, int] = {}
    for job in jobs:
        placement = placer.place(job, _candidates(job, snapshot.queues[job.queue]))
        placed = 0 if placement is None else placement.count
        if placement is not None:
            placements.append(placement)
        if placed < job.count:
            unplaced.append(job)
            if placed:
                partly_placed[job.key] = placed
    return placements, unplaced, partly_placed


def _key_of(job: Runnable) -> str:
    return job.key


def _submitted_at(job: Runnable) -> float:
    return job.submitted_at


def _candidates(job: Runnable, queue: Queue) -> tuple[str, ...]:
    if job.pinned_environment is not None:
        return (job.pinned_environment,)
    return queue.environments


class _Placer:
    """Places jobs one at a time into the first candidate environment with room.

    Usage only grows during a pass, so a request that did not fit somewhere will
    not fit there later either: remembering that keeps a backlog of 100,000
    similar jobs to one lookup each.
    """

    def __init__(self, environments: Mapping[str, Environment], usage: dict[str, Resources]) -> None:
        self._environments = environments
        self._usage = usage
        self._full: set[tuple[str, Resources]] = set()
        self._hopeless: set[tuple[tuple[str, ...], Resources]] = set()
        self._last_hopeless: tuple[tuple[str, ...] | None, Resources | None] = (None, None)

    def place(self, job: Runnable, candidates: tuple[str, ...]) -> Placement | None:
        if job.request is self._last_hopeless[1] and candidates is self._last_hopeless[0]:
            return None  # the same objects as the job before, which did not fit: no hashing needed
        shape = (candidates, job.request)
        if shape in self._hopeless:
            self._last_hopeless = shape
            return None
        for name in candidates:
            placement = self._place_in(job, name)
            if placement is not None:
                return placement
        self._hopeless.add(shape)
        self._last_hopeless = shape
        return None

    def _place_in(self, job: Runnable, name: str) -> Placement | None:
        environment = self._environments.get(name)
        if environment is None or not environment.enabled or (name, job.request) in self._full:
            return None
        used = self._usage[name]
        fitting = _children_that_fit(job.request, environment.capacity, used, job.count)
        if fitting == 0:
            self._full.add((name, job.request))
            return None
        self._usage[name] = used + (job.request if fitting == 1 else job.request.times(fitting))
        return Placement(job.key, name, fitting)


def _children_that_fit(request: Resources, capacity: Capacity, used: Resources, wanted: int) -> int:
    if wanted == 1:
        return 1 if request.fits_within(capacity, used) else 0
    free = capacity.free(used)
    fitting = wanted
    for requested, available in (
        (request.cpu_milli, free.cpu_milli),
        (request.memory, free.memory),
        (request.gpus, free.gpus),
    ):
        if requested:
            fitting = min(fitting, available // requested)
    return fitting


# --- Waiting and time limits ---------------------------------------------------


def _queue_not_found(job: Runnable, now: float) -> Waiting:
    reason = f"{QUEUE_NOT_FOUND} - job queue '{job.queue}' does not exist"
    return Waiting(job.key, QUEUE_NOT_FOUND, reason, _blocked_since(job, QUEUE_NOT_FOUND, now))


def _news(job: Runnable, category: str, reason: str, since: float) -> bool:
    """Whether the job carries something other than what it is told now (else it is left out)."""
    return job.reason != reason or job.blocked_category != category or job.blocked_since != since


def _blocked_since(job: Runnable, category: str, now: float) -> float:
    if job.blocked_category == category and job.blocked_since is not None:
        return job.blocked_since
    return now


def _time_limit_cancellation(
    job: Runnable, queue: Queue, category: str, since: float, now: float
) -> Cancellation | None:
    for rule in queue.time_limit_actions:
        if rule.action == CANCEL and rule.reason == category and now - since >= rule.max_seconds:
            reason = (
                f"{category} - cancelled by a jobStateTimeLimitActions rule of job queue "
                f"'{queue.name}' after {rule.max_seconds} seconds RUNNABLE"
            )
            return Cancellation(job.key, reason)
    return None


# --- Reasons -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Dimension:
    """One kind of resource, for explaining why a request does not fit."""

    requested: Callable[[Resources], int]
    limit: Callable[[Capacity], int | None]  # None: no quota in this dimension
    number: Callable[[int], str]
    unit: Callable[[int], str]

    def amount(self, n: int) -> str:
        return f"{self.number(n)} {self.unit(n)}"

    def capacity(self, capacity: Capacity) -> str:
        limit = self.limit(capacity)
        return f"unlimited {self.unit(2)}" if limit is None else self.amount(limit)

    def free(self, capacity: Capacity, used: Resources) -> str:
        limit = self.limit(capacity)
        if limit is None:
            return f"unlimited {self.unit(2)}"
        available = max(0, limit - self.requested(used))
        return f"{self.number(available)} of {self.number(limit)} {self.unit(limit)}"

    def exceeds(self, request: Resources, capacity: Capacity) -> bool:
        limit = self.limit(capacity)
        return limit is not None and self.requested(request) > limit


_CPU = _Dimension(lambda r: r.cpu_milli, lambda c: c.cpu_milli, format_cpu, lambda n: "vCPU")
_MEMORY = _Dimension(lambda r: r.memory, lambda c: c.memory, format_bytes, lambda n: "memory")
_GPU = _Dimension(lambda r: r.gpus, lambda c: c.gpus, str, lambda n: "GPU" if n == 1 else "GPUs")
_DIMENSIONS = (_CPU, _MEMORY, _GPU)
# Kinds of resource an environment has none of unless it declares them.
_DECLARED_KINDS = (_GPU,)


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The environments a job may use, as the snapshot knows them."""

    queue: str
    names: tuple[str, ...]
    existing: tuple[Environment, ...]
    missing: tuple[str, ...]


class _ReasonWriter:
    """Explains, with final usage, why jobs wait; jobs sharing a queue and
    request share the text, so it is computed once per shape."""

    def __init__(self, snapshot: Snapshot, usage: Mapping[str, Resources]) -> None:
        self._environments = snapshot.environments
        self._usage = usage
        self._cache: dict[tuple[str, str | None, Resources, int, int], tuple[str, str]] = {}
        self._last: tuple[Runnable | None, int, tuple[str, str]] = (None, 0, ("", ""))

    def reason(self, job: Runnable, queue: Queue, placed: int) -> tuple[str, str]:
        last_job, last_placed, last = self._last
        if (last_job is not None and job.request is last_job.request and job.queue is last_job.queue
                and job.pinned_environment is last_job.pinned_environment and job.count == last_job.count
                and placed == last_placed):
            return last  # the same objects as the job before: the same text, without hashing
        cache_key = (queue.name, job.pinned_environment, job.request, job.count, placed)
        cached = self._cache.get(cache_key)
        if cached is None:
            cached = self._cache[cache_key] = self._explain(job, queue, placed)
        self._last = (job, placed, cached)
        return cached

    def _explain(self, job: Runnable, queue: Queue, placed: int) -> tuple[str, str]:
        candidates = self._candidates(job, queue)
        existing = candidates.existing
        if existing:
            for kind in _DECLARED_KINDS:
                if kind.requested(job.request) and not any(kind.limit(e.capacity) for e in existing):
                    return JOB_RESOURCE_REQUIREMENT, _undeclared_kind_text(kind, job, candidates)
            if all(_never_fits(job.request, e.capacity) for e in existing):
                return MAX_RESOURCE, _max_resource_text(job, candidates)
        if not any(e.enabled for e in existing):
            return ENVIRONMENT_UNAVAILABLE, _unavailable_text(candidates)
        return CAPACITY, self._capacity_text(job, placed, candidates)

    def _candidates(self, job: Runnable, queue: Queue) -> _Candidates:
        names = _candidates(job, queue)
        existing = tuple(self._environments[n] for n in names if n in self._environments)
        missing = tuple(n for n in names if n not in self._environments)
        return _Candidates(queue.name, names, existing, missing)

    def _capacity_text(self, job: Runnable, placed: int, candidates: _Candidates) -> str:
        request = job.request
        dimensions = [d for d in _DIMENSIONS if d is _CPU or d.requested(request)]
        parts = []
        for name in candidates.names:
            environment = self._environments.get(name)
            if environment is None:
                parts.append(f"{name} does not exist")
            elif not environment.enabled:
                parts.append(f"{name} {environment.closed}")
            else:
                used = self._usage.get(name, Resources())
                free = ", ".join(d.free(environment.capacity, used) for d in dimensions)
                parts.append(f"{name} {free}")
        return f"{CAPACITY} - {_needs(job, placed, request.describe())}; free: {'; '.join(parts)}"


def _never_fits(request: Resources, capacity: Capacity) -> bool:
    return not request.fits_within(capacity, Resources())


def _needs(job: Runnable, placed: int, amount: str) -> str:
    if job.count == 1:
        return f"needs {amount}"
    if placed == 0:
        return f"{job.count} children wait, each needs {amount}"
    return f"{job.count - placed} of {job.count} children wait, each needs {amount}"


def _missing_suffix(candidates: _Candidates) -> str:
    return "".join(f"; {name} does not exist" for name in candidates.missing)


def _label(environment: Environment) -> str:
    return environment.name if environment.enabled else f"{environment.name} ({environment.closed})"


def _undeclared_kind_text(kind: _Dimension, job: Runnable, candidates: _Candidates) -> str:
    needs = _needs(job, 0, kind.amount(kind.requested(job.request)))
    details = ", ".join(f"{_label(e)}: {kind.capacity(e.capacity)}" for e in candidates.existing)
    return (
        f"{JOB_RESOURCE_REQUIREMENT} - {needs}; "
        f"no compute environment of queue '{candidates.queue}' provides {kind.unit(2)} "
        f"({details}{_missing_suffix(candidates)})"
    )


def _max_resource_text(job: Runnable, candidates: _Candidates) -> str:
    request = job.request
    dimensions = [d for d in _DIMENSIONS if any(d.exceeds(request, e.capacity) for e in candidates.existing)]
    needs = _needs(job, 0, ", ".join(d.amount(d.requested(request)) for d in dimensions))
    holds = "; ".join(
        f"{_label(e)} holds at most {', '.join(d.capacity(e.capacity) for d in dimensions)}"
        for e in candidates.existing
    )
    return f"{MAX_RESOURCE} - {needs}; {holds}{_missing_suffix(candidates)}"


def _unavailable_text(candidates: _Candidates) -> str:
    if not candidates.names:
        return f"{ENVIRONMENT_UNAVAILABLE} - job queue '{candidates.queue}' has no compute environments"
    closed = {e.name: e.closed for e in candidates.existing}
    problems = [f"'{n}' is {closed[n]}" if n in closed else f"'{n}' does not exist" for n in candidates.names]
    return f"{ENVIRONMENT_UNAVAILABLE} - compute environment {'; '.join(problems)}"
