"""The scheduling rules: a pure function from a snapshot of the cluster to decisions.

AWS Batch semantics: jobs of higher-priority queues go first, inside a queue by
scheduling priority then submission (a fair-share queue serves its shares as
core.fairshare orders them), each job in the first environment of its queue where it
fits, the environment's quota never exceeded, and no head-of-line blocking. Jobs that
cannot start get AWS's statusReason, and the queue's jobStateTimeLimitActions cancel
jobs that have waited too long with the same reason. Beyond AWS, a queue's
maxRunningJobs and an array's maxParallel cap what runs at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from barge.core.fairshare import Policy, ShareOrder
from barge.core.noderoom import Fitter, Room
from barge.core.resources import (
    Capacity,
    Resources,
    format_bytes,
    format_cpu,
)
from barge.core.states import (
    ARRAY_MAX_PARALLEL,
    CAPACITY,
    ENVIRONMENT_UNAVAILABLE,
    JOB_RESOURCE_REQUIREMENT,
    MAX_RESOURCE,
    POLICY_NOT_FOUND,
    QUEUE_MAX_RUNNING,
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
    policy: str | None = None  # a fair-share queue's SchedulingPolicy
    max_running: int | None = None  # jobs (array children included) in STARTING or RUNNING at most


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
    priority: int = 0  # schedulingPriority: higher first inside its queue (or share)
    share: str | None = None  # shareIdentifier, on a fair-share queue
    max_parallel: int | None = None  # an array's cap on children in STARTING or RUNNING
    in_flight: int = 0  # an array's children in STARTING or RUNNING now
    pods: tuple[Resources, ...] | None = None  # a multi-node gang's pods (request is their sum), each on one node
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
    policies: Mapping[str, Policy] = field(default_factory=dict)
    running_jobs: Mapping[str, int] = field(default_factory=dict)  # per queue: jobs in STARTING or RUNNING
    share_running: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # policy -> share -> cpu milli
    room: Room | None = None  # the nodes' room; None: no node limits (only the quotas)


@dataclass(frozen=True, slots=True)
class Placement:
    key: str
    environment: str
    count: int
    nodes: tuple[str, ...] = ()  # where each pod was assumed to fit (noderoom.GROWTH: a node to come); () no room known


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
    fitter = Fitter(snapshot.room) if snapshot.room is not None else None
    placements, unplaced, partly_placed, held = _place_all(queued, snapshot, usage, fitter)
    waiting: dict[str, Waiting] = {}
    for job in orphans:
        told = _queue_not_found(job, now)
        if _news(job, told.category, told.reason, told.since):
            waiting[job.key] = told
    cancellations: list[Cancellation] = []
    reasons = _ReasonWriter(snapshot, usage, fitter)
    for job in unplaced:
        placed = partly_placed.get(job.key, 0)
        queue = snapshot.queues[job.queue]
        hold = held.get(job.key)
        if hold is not None and hold.reserved is None:
            category, reason = hold.category, hold.reason
        else:
            category, reason = reasons.reason(job, queue, placed)
            if hold is not None and category == CAPACITY:
                reason += hold.reserved or ""
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


@dataclass(frozen=True, slots=True)
class _Hold:
    """Why a job got less than it wanted other than capacity: a cap (category and reason), or, with
    `reserved`, capacity that computeReservation keeps for shares with no running job."""
    category: str = CAPACITY
    reason: str = ""
    reserved: str | None = None


def _place_all(
    jobs: list[Runnable], snapshot: Snapshot, usage: dict[str, Resources], fitter: Fitter | None = None
) -> tuple[list[Placement], list[Runnable], dict[str, int], dict[str, _Hold]]:
    """Place jobs in priority order, updating usage; return the placements, the jobs left (partly)
    unplaced, and how many children of the partly placed ones were placed.

    No object per job is kept beyond the pass's own (no sort-key tuples, no pairs): over 100,000
    jobs those would be promoted by the garbage collector and soon cost a full collection, about a
    second with a deep queue in memory."""
    priority = {name: queue.priority for name, queue in snapshot.queues.items()}
    jobs = sorted(jobs, key=_key_of)
    jobs.sort(key=_submitted_at)
    if any(job.priority for job in jobs):
        jobs.sort(key=_minus_priority)
    if len(set(priority.values())) > 1:
        jobs.sort(key=lambda job: -priority[job.queue])
    placer = _Placer(snapshot.environments, usage, fitter)
    if _capped_or_shared(jobs, snapshot):
        return _Pass(snapshot, placer).run(jobs)
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
    return placements, unplaced, partly_placed, {}


def _capped_or_shared(jobs: list[Runnable], snapshot: Snapshot) -> bool:
    return (any(q.policy is not None or q.max_running is not None for q in snapshot.queues.values())
            or any(job.max_parallel is not None for job in jobs))


class _Stream(Protocol):
    def head(self) -> Runnable | None: ...
    def skip(self) -> None: ...
    def took(self, cpu_milli: int) -> None: ...
    def rest(self) -> list[Runnable]: ...


class _InOrder:
    """Jobs already in the order they are served in (a FIFO queue's)."""

    def __init__(self, jobs: list[Runnable]) -> None:
        self._jobs = jobs
        self._next = 0

    def head(self) -> Runnable | None:
        return self._jobs[self._next] if self._next < len(self._jobs) else None

    def skip(self) -> None:
        self._next += 1

    def took(self, cpu_milli: int) -> None:
        self._next += 1

    def rest(self) -> list[Runnable]:
        rest, self._next = self._jobs[self._next:], len(self._jobs)
        return rest


def _share_of(job: Runnable) -> str:
    return job.share or ""


class _Pass:
    """The placement pass with fair-share queues and caps: each level of queue priority is served
    from its streams (the FIFO queues' jobs, one fair-share order per policy), the stream whose next
    job was submitted first going first."""

    def __init__(self, snapshot: Snapshot, placer: _Placer) -> None:
        self.snapshot = snapshot
        self.placer = placer
        self.running_jobs = dict(snapshot.running_jobs)
        self.placements: list[Placement] = []
        self.unplaced: list[Runnable] = []
        self.partly_placed: dict[str, int] = {}
        self.held: dict[str, _Hold] = {}
        self._room: _Room | None = None

    def run(self, jobs: list[Runnable]) -> tuple[list[Placement], list[Runnable], dict[str, int], dict[str, _Hold]]:
        for level in _levels(jobs, self.snapshot.queues):
            self._room = _Room.of(level, self.snapshot, self.placer)
            if self._room.is_none():
                self._hold_all(level)
            else:
                self._serve(self._streams(level))
        return self.placements, self.unplaced, self.partly_placed, self.held

    def _hold_all(self, jobs: list[Runnable]) -> None:
        """None of these jobs can be placed: each waits, with the reason a cap gives where one applies."""
        queues, policies = self.snapshot.queues, self.snapshot.policies
        for job in jobs:
            queue = queues[job.queue]
            if queue.policy is not None and queue.policy not in policies:
                self._policy_not_found(job, queue.policy)
            elif queue.max_running is None and job.max_parallel is None:
                self.unplaced.append(job)
            else:
                self._try(job, None)

    def _policy_not_found(self, job: Runnable, policy: str) -> None:
        self.unplaced.append(job)
        self.held[job.key] = _Hold(POLICY_NOT_FOUND, f"{POLICY_NOT_FOUND} - job queue '{job.queue}' names "
                                                     f"scheduling policy '{policy}', which does not exist")

    def _room_left(self) -> bool:
        return self._room is None or not self._room.is_none()

    def _streams(self, jobs: list[Runnable]) -> list[tuple[_Stream, ShareOrder[Runnable] | None]]:
        fifo: list[Runnable] = []
        shared: dict[str, list[Runnable]] = {}
        policy_of = {name: queue.policy for name, queue in self.snapshot.queues.items()}
        for job in jobs:
            policy = policy_of[job.queue]
            if policy is None:
                fifo.append(job)
            elif policy not in self.snapshot.policies:
                self._policy_not_found(job, policy)
            else:
                shared.setdefault(policy, []).append(job)
        streams: list[tuple[_Stream, ShareOrder[Runnable] | None]] = [(_InOrder(fifo), None)] if fifo else []
        for name, members in shared.items():
            order = ShareOrder(self.snapshot.policies[name], members, _share_of, _submitted_at,
                               self.snapshot.share_running.get(name, {}))
            streams.append((order, order))
        return streams

    def _serve(self, streams: list[tuple[_Stream, ShareOrder[Runnable] | None]]) -> None:
        if len(streams) == 1:  # most often: one queue, or one fair-share policy, at this priority
            only, order = streams[0]
            head, took, skip, attempt = only.head, only.took, only.skip, self._try
            while (job := head()) is not None:
                cpu_milli = attempt(job, order)
                if cpu_milli:
                    took(cpu_milli)
                else:
                    skip()
                    if not self._room_left():  # the rest cannot fit either: no need to try each
                        self._hold_all(only.rest())
                        return
            return
        while streams:
            chosen: tuple[_Stream, ShareOrder[Runnable] | None] | None = None
            first: Runnable | None = None
            for stream in list(streams):
                job = stream[0].head()
                if job is None:
                    streams.remove(stream)
                elif first is None or job.submitted_at < first.submitted_at:
                    chosen, first = stream, job
            if chosen is None or first is None:
                return
            cpu_milli = self._try(first, chosen[1])
            if cpu_milli:
                chosen[0].took(cpu_milli)
            else:
                chosen[0].skip()
                if not self._room_left():
                    for pending, _ in streams:
                        self._hold_all(pending.rest())
                    return

    def _try(self, job: Runnable, order: ShareOrder[Runnable] | None) -> int:
        """Place what the caps allow of the job; the vCPU (milli) it was given."""
        queue = self.snapshot.queues[job.queue]
        if (queue.max_running is None and job.max_parallel is None
                and (order is None or not order.reserve)):  # nothing but capacity limits it
            placement = self.placer.place(job, _candidates(job, queue))
            if placement is not None:
                self.placements.append(placement)
            placed = 0 if placement is None else placement.count
            if placed < job.count:
                self.unplaced.append(job)
                if placed:
                    self.partly_placed[job.key] = placed
            return placed * job.request.cpu_milli
        wanted, hold = job.count, None
        if queue.max_running is not None:
            room = max(0, queue.max_running - self.running_jobs.get(queue.name, 0))
            if room < wanted:
                wanted, hold = room, _Hold(QUEUE_MAX_RUNNING, f"{QUEUE_MAX_RUNNING} - job queue '{queue.name}' "
                                           f"runs at most {queue.max_running} jobs at a time (maxRunningJobs)")
        if job.max_parallel is not None:
            room = max(0, job.max_parallel - job.in_flight)
            if room < wanted:
                wanted, hold = room, _Hold(ARRAY_MAX_PARALLEL, f"{ARRAY_MAX_PARALLEL} - at most {job.max_parallel}"
                                           " children of this array run at a time (maxParallel)")
        reserve = 0.0
        if order is not None and order.reserve and order.running(_share_of(job)):
            reserve = order.reserve
        placed = 0
        if wanted > 0:
            placement = self.placer.place(job, _candidates(job, queue), wanted, reserve)
            if placement is not None:
                placed = placement.count
                self.placements.append(placement)
                self.running_jobs[queue.name] = self.running_jobs.get(queue.name, 0) + placed
        if placed < job.count:
            self.unplaced.append(job)
            if placed:
                self.partly_placed[job.key] = placed
            if hold is not None and placed == wanted:
                self.held[job.key] = hold
            elif reserve and order is not None:
                self.held[job.key] = _Hold(reserved=_reservation_note(job, order))
        return placed * job.request.cpu_milli if placed else 0


class _Room:
    """Whether any job of a level can still get anything: none can once every compute environment the
    level may use has less vCPU free than its smallest request (usage only grows during a pass). Not
    judged where computeReservation applies (its note in a job's reason needs the job tried)."""

    def __init__(self, placer: _Placer, environments: tuple[str, ...], smallest_cpu_milli: int) -> None:
        self._placer = placer
        self._environments = environments
        self._smallest = smallest_cpu_milli
        self._checked_at = -1
        self._none = False

    @classmethod
    def of(cls, jobs: list[Runnable], snapshot: Snapshot, placer: _Placer) -> _Room:
        queues = {job.queue for job in jobs}
        policies = (snapshot.policies.get(snapshot.queues[name].policy or "") for name in queues)
        reserving = any(policy.compute_reservation for policy in policies if policy is not None)
        smallest = 0 if reserving or not jobs else min(job.request.cpu_milli for job in jobs)
        environments = {e for name in queues for e in snapshot.queues[name].environments}
        environments.update(job.pinned_environment for job in jobs if job.pinned_environment is not None)
        return cls(placer, tuple(sorted(environments)), smallest)

    def is_none(self) -> bool:
        if self._smallest <= 0 or self._none:
            return self._none
        if self._checked_at != self._placer.placed:
            self._checked_at = self._placer.placed
            self._none = not self._placer.has_cpu(self._environments, self._smallest)
        return self._none


def _reservation_note(job: Runnable, order: ShareOrder[Runnable]) -> str:
    policy = order.policy
    return (f"; share '{_share_of(job)}' has running jobs and scheduling policy '{policy.name}' keeps "
            f"{order.reserve:.0%} of maxvCpus free for shares with none (computeReservation "
            f"{policy.compute_reservation}, {order.active_shares} active shares)")


def _levels(jobs: list[Runnable], queues: Mapping[str, Queue]) -> Iterator[list[Runnable]]:
    """Consecutive runs of jobs whose queues have the same priority (jobs come sorted by it)."""
    if len({queue.priority for queue in queues.values()}) <= 1:
        yield jobs
        return
    level: list[Runnable] = []
    priority: int | None = None
    for job in jobs:
        p = queues[job.queue].priority
        if level and p != priority:
            yield level
            level = []
        priority = p
        level.append(job)
    if level:
        yield level


def _minus_priority(job: Runnable) -> int:
    return -job.priority


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

    def __init__(self, environments: Mapping[str, Environment], usage: dict[str, Resources],
                 fitter: Fitter | None = None) -> None:
        self._environments = environments
        self._usage = usage
        self._fitter = fitter
        self._full: set[tuple[str, object, float]] = set()
        self._hopeless: set[tuple[tuple[str, ...], object, float]] = set()
        self._last_hopeless: tuple[tuple[str, ...] | None, object, float] = (None, None, 0.0)
        self._reduced: dict[tuple[str, float], Capacity] = {}
        self.placed = 0  # placements so far: what was judged full stays so until this changes

    def has_cpu(self, environments: tuple[str, ...], cpu_milli: int) -> bool:
        """Whether an enabled one of `environments` has `cpu_milli` of vCPU free."""
        for name in environments:
            environment = self._environments.get(name)
            if (environment is not None and environment.enabled
                    and environment.capacity.cpu_milli - self._usage[name].cpu_milli >= cpu_milli):
                return True
        return False

    def place(self, job: Runnable, candidates: tuple[str, ...], wanted: int | None = None,
              reserve: float = 0.0) -> Placement | None:
        """`wanted` children at most (default: all the job wants); `reserve`: the fraction of each
        environment's vCPUs this job must leave free (computeReservation)."""
        last = self._last_hopeless
        size = _size(job)
        if size is last[1] and candidates is last[0] and reserve == last[2]:
            return None  # the same objects as the job before, which did not fit: no hashing needed
        shape = (candidates, size, reserve)
        if shape in self._hopeless:
            self._last_hopeless = shape
            return None
        for name in candidates:
            placement = self._place_in(job, name, job.count if wanted is None else wanted, reserve)
            if placement is not None:
                return placement
        self._hopeless.add(shape)
        self._last_hopeless = shape
        return None

    def _capacity(self, environment: Environment, reserve: float) -> Capacity:
        if not reserve:
            return environment.capacity
        key = (environment.name, reserve)
        reduced = self._reduced.get(key)
        if reduced is None:
            capacity = environment.capacity
            kept = -(-int(capacity.cpu_milli * reserve * 1000) // 1000)  # rounded up: never less than promised
            reduced = self._reduced[key] = dataclasses.replace(capacity, cpu_milli=capacity.cpu_milli - kept)
        return reduced

    def _place_in(self, job: Runnable, name: str, wanted: int, reserve: float) -> Placement | None:
        environment = self._environments.get(name)
        full = (name, _size(job), reserve)
        if environment is None or not environment.enabled or full in self._full:
            return None
        used = self._usage[name]
        fitting = _children_that_fit(job.request, self._capacity(environment, reserve), used, wanted)
        nodes: tuple[str, ...] = ()
        if fitting and self._fitter is not None and self._fitter.limits(name):
            if job.pods is not None:
                nodes = tuple(self._fitter.take_all(name, job.pods) or ())
                fitting = 1 if nodes else 0
            else:
                nodes = tuple(self._fitter.take(name, job.request, fitting))
                fitting = len(nodes)
        if fitting == 0:
            self._full.add(full)
            return None
        self._usage[name] = used + (job.request if fitting == 1 else job.request.times(fitting))
        self.placed += 1
        return Placement(job.key, name, fitting, nodes)


def _size(job: Runnable) -> object:
    """What decides where a job fits: its request, and a gang's pods too."""
    return job.request if job.pods is None else (job.request, job.pods)


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

    def __init__(self, snapshot: Snapshot, usage: Mapping[str, Resources], fitter: Fitter | None = None) -> None:
        self._environments = snapshot.environments
        self._usage = usage
        self._fitter = fitter
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
        pool_short = False
        for name in candidates.names:
            environment = self._environments.get(name)
            if environment is None:
                parts.append(f"{name} does not exist")
            elif not environment.enabled:
                parts.append(f"{name} {environment.closed}")
            else:
                used = self._usage.get(name, Resources())
                free = ", ".join(d.free(environment.capacity, used) for d in dimensions)
                if self._fitter is not None and self._fitter.limits(name) and request.fits_within(
                        environment.capacity, used):
                    pool_short = True
                    parts.append(_pool_text(self._fitter, name, dimensions, free))
                else:
                    parts.append(f"{name} {free}")
        needs = _needs(job, placed, request.describe())
        if pool_short:
            return f"{CAPACITY} - {needs}; {'; '.join(parts)}"
        return f"{CAPACITY} - {needs}; free: {'; '.join(parts)}"


def _pool_text(fitter: Fitter, name: str, dimensions: list[_Dimension], quota_free: str) -> str:
    """The quota holds the job but the nodes do not: say what the nodes have (and may still get)."""
    largest = fitter.largest_free(name)
    if largest is None:
        text = f"compute environment {name} has no Ready, schedulable node its pods may use"
    else:
        room = ", ".join(d.amount(d.requested(largest)) for d in dimensions)
        text = f"the nodes of compute environment {name} have room for {room} at most on one node"
    if name in fitter.growth:
        text += f", and its NodePool may add {format_cpu(fitter.growth[name])} vCPU more"
        if fitter.growing.get(name):
            text += f" (nodes are being added for {format_cpu(fitter.growing[name])} vCPU of placed jobs)"
    return f"{text} (its quota has {quota_free} free)"


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
