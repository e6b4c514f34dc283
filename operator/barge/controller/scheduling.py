"""The scheduling loop: a snapshot of the store, the pure `schedule()`, then its decisions applied:
placements assumed in the store and their Kubernetes Jobs created, admissions and reasons written,
jobs past a queue's time limit cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from barge import metrics
from barge.config import Settings
from barge.controller.arrays import Arrays
from barge.controller.jobs import Jobs
from barge.controller.records import EnvironmentRecord, JobKey, JobRecord, pool
from barge.controller.router import KeyedLocks
from barge.controller.shares import ShareCounts, Shares
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import job as rules
from barge.core import manifests, noderoom
from barge.core.fairshare import Policy
from barge.core.resources import Resources, pod_requests
from barge.core.scheduler import Runnable, Snapshot, Waiting, schedule
from barge.core.states import ARRAY_MAX_PARALLEL, PENDING, PLACEABLE, QUEUE_MAX_RUNNING, RUNNABLE, STARTING, UNADMITTED

log = logging.getLogger("barge.scheduling")
IDLE_PASS_SECONDS = 2.0
IDLE_PASS_COST_FACTOR = 20  # a pass nothing asked for costs at most 1/20 of the time
COALESCE_SECONDS = 0.02  # let a burst of events gather into one pass
# ... and longer when deciding is costly (many jobs wait): the decision itself (the snapshot and
# schedule(), which hold the event loop) takes at most 1/(1 + COALESCE_COST_FACTOR) of the time.
COALESCE_COST_FACTOR = 3
COALESCE_MAX_SECONDS = 0.2
REQUESTS_KEPT = 4096
CAPS = (QUEUE_MAX_RUNNING, ARRAY_MAX_PARALLEL)


def _key_string(key: JobKey) -> str:
    return f"{key[0]}/{key[1]}"


def _gang_pods(record: JobRecord) -> tuple[Resources, ...] | None:
    """A multi-node job's pods' requests, node by node (each must fit on one node); None: not a gang."""
    nodes = (record.status.get("resolved") or {}).get("nodeProperties")
    if not nodes:
        return None
    pods: list[Resources] = []
    for node_range in nodes.get("nodeRangeProperties") or []:
        first, _, last = str(node_range.get("targetNodes") or "0:0").partition(":")
        try:
            request = pod_requests(((node_range.get("template") or {}).get("spec")) or {})
        except ValueError:
            request = Resources()
        pods += [request] * (int(last or first) - int(first or 0) + 1)
    return tuple(pods)


class Scheduler:
    def __init__(self, settings: Settings, store: Store, status: StatusWriter, locks: KeyedLocks, jobs: Jobs,
                 arrays: Arrays, clock: Callable[[], float],
                 summarize: Callable[[dict[str, Resources]], Awaitable[None]],
                 sweep: Callable[[], Awaitable[None]], shares: Shares) -> None:
        self.settings = settings
        self.store = store
        self.status = status
        self.locks = locks
        self.jobs = jobs
        self.arrays = arrays
        self.clock = clock
        self._summarize = summarize  # queues' and environments' status, after each pass
        self._sweep = sweep  # timeouts and retention, at every wake
        self.shares = shares
        self._share_counts: dict[str, ShareCounts] = {}
        self._wake = asyncio.Event()
        self._runnables: dict[JobKey, Runnable] = {}
        self._requests: dict[Resources, Resources] = {}
        self._reason_written_at: dict[JobKey, float] = {}
        self._last_pass = (0.0, 0.0)  # when the last scheduling pass ended (monotonic), and what it took
        self._reasons_left = False  # the last pass had more reasons to write than its budget
        self._decide_seconds = 0.0  # what the last pass's snapshot and schedule() took
        self._starting_due: dict[JobKey, float] = {}  # placed jobs whose STARTING write was put off, until when

    def kick(self) -> None:
        self._wake.set()

    def forget(self, key: JobKey) -> None:
        self._reason_written_at.pop(key, None)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wakeup())
            asked = self._wake.is_set() or self._reasons_left
            self._wake.clear()
            await asyncio.sleep(min(COALESCE_MAX_SECONDS, max(COALESCE_SECONDS,
                                                              COALESCE_COST_FACTOR * self._decide_seconds)))
            if not self.store.ready:
                continue
            try:
                if asked or self._idle_pass_due():
                    started = time.monotonic()
                    await self._summarize(await self.scheduling_pass())
                    await self.shares.refresh(self._share_counts)
                    self._last_pass = (time.monotonic(), time.monotonic() - started)
                await self._sweep()
                await self.flush_placements()
            except Exception:
                log.exception("scheduling pass failed; retrying")
                await asyncio.sleep(1)

    def _idle_pass_due(self) -> bool:
        """A pass nothing asked for (it re-checks time limits and refreshes reasons) runs every
        IDLE_PASS_SECONDS, or less often when passes are expensive: over 100,000 waiting jobs one
        costs about a second, and repeating it every two seconds would keep a core busy for nothing."""
        at, duration = self._last_pass
        return time.monotonic() - at >= max(IDLE_PASS_SECONDS, IDLE_PASS_COST_FACTOR * duration)

    def _next_wakeup(self) -> float:
        report = self.settings.placement_report_seconds
        due = min((self._starting_due.get(key, at + report) for key, at in self.store.placed_times()), default=None)
        if due is None:
            return IDLE_PASS_SECONDS
        return min(IDLE_PASS_SECONDS, max(0.05, due - self.clock()))

    # --- the snapshot ----------------------------------------------------------------------------

    def snapshot(self, jobs: list[JobRecord]) -> tuple[Snapshot, dict[str, JobRecord]]:
        environment_records = self.store.environments()
        environments = {r.name: r.to_core() for r in environment_records}
        assumed: list[tuple[str, Resources]] | None = [] if self.store.nodes_known else None
        queues = {r.name: r.to_core() for r in self.store.queues()}
        policy_of = {name: queue.policy for name, queue in queues.items() if queue.policy is not None}
        usage: dict[str, Resources] = {}
        runnable: list[Runnable] = []
        runnables: dict[JobKey, Runnable] = {}
        by_key: dict[str, JobRecord] = {}
        running_jobs: dict[str, int] = {}  # per queue, array children included (maxRunningJobs)
        share_running: dict[str, dict[str, int]] = {}  # policy -> share -> vCPU milli in STARTING or RUNNING
        share_runnable: dict[str, dict[str, int]] = {}  # policy -> share -> jobs waiting
        for record in jobs:
            if not self.store.waits_as_written(record):
                record = self.store.effective(record)
            policy = policy_of.get(record.queue) if policy_of else None
            share = str(record.spec.get("shareIdentifier") or "") if policy is not None else None
            if record.state == PENDING and rules.array_size(record) is not None:
                environment, used = self.arrays.usage(record)
                in_flight = self.arrays.in_flight(record)
                if environment and not used.is_zero():
                    usage[environment] = usage.get(environment, Resources()) + used
                    if assumed is not None:
                        self._unbound(record, environment, used, assumed)
                if in_flight:
                    running_jobs[record.queue] = running_jobs.get(record.queue, 0) + in_flight
                if policy is not None and share is not None and used.cpu_milli:
                    held = share_running.setdefault(policy, {})
                    held[share] = held.get(share, 0) + used.cpu_milli
                wants = self.arrays.wants(record)
                if wants:
                    key = _key_string(record.key)
                    by_key[key] = record
                    max_parallel = (record.spec.get("arrayProperties") or {}).get("maxParallel")
                    runnable.append(Runnable(key=key, queue=record.queue,
                                             submitted_at=float(record.status.get("queuedAt") or 0),
                                             request=record.request, count=wants, pinned_environment=environment,
                                             priority=rules.priority(record), share=share,
                                             max_parallel=int(max_parallel) if max_parallel else None,
                                             in_flight=in_flight))
                    if policy is not None and share is not None:
                        waiting = share_runnable.setdefault(policy, {})
                        waiting[share] = waiting.get(share, 0) + wants
                continue
            charged = rules.charge(record)
            if charged is not None:
                usage[charged[0]] = usage.get(charged[0], Resources()) + charged[1]
                if assumed is not None:
                    self._unbound(record, charged[0], charged[1], assumed)
                running_jobs[record.queue] = running_jobs.get(record.queue, 0) + 1
                if policy is not None and share is not None:
                    held = share_running.setdefault(policy, {})
                    held[share] = held.get(share, 0) + charged[1].cpu_milli
            elif rules.schedulable(record):
                job = self._runnable(record, share)
                by_key[job.key] = record
                runnable.append(job)
                runnables[record.key] = job
                if policy is not None and share is not None:
                    waiting = share_runnable.setdefault(policy, {})
                    waiting[share] = waiting.get(share, 0) + 1
        self._runnables = runnables  # what left RUNNABLE is dropped
        policies = self._policies(share_running)
        self._share_counts = {name: ShareCounts(share_running.get(name, {}), share_runnable.get(name, {}))
                              for name in policies}
        room = self._room(environment_records, assumed) if assumed is not None else None
        return Snapshot(environments, queues, usage, runnable, policies, running_jobs, share_running, room), by_key

    def _room(self, environments: list[EnvironmentRecord], assumed: list[tuple[str, Resources]]) -> noderoom.Room:
        """The nodes' room: what is free on each node, the nodes each environment's pods may use, and
        what each MANAGED environment's NodePool may still add."""
        nodes = self.store.nodes()
        free = noderoom.free_room(nodes, self.store.node_used())
        usable = [n for n in nodes if n.name in free]
        names: dict[str, tuple[str, ...]] = {}
        growth: dict[str, int] = {}
        for environment in environments:
            if environment.invalid_reason is not None:  # places nothing; its selector may not even parse
                continue
            where = pool(environment)
            names[environment.name] = tuple(sorted(n.name for n in usable if noderoom.matches(n, where)))
            if environment.managed:
                provisioned = self.store.provisioned.get(environment.name, (0, 0))[1] * 1000
                growth[environment.name] = max(0, environment.capacity.cpu_milli - provisioned)
        return noderoom.Room(free, names, growth, assumed)

    def _unbound(self, record: JobRecord, environment: str, charged: Resources,
                 assumed: list[tuple[str, Resources]]) -> None:
        """The job's pods placed but not on a node yet (or not created yet): they take room first."""
        count, bound = self.store.job_bound(record.uid)
        gang = _gang_pods(record)
        if gang is not None:
            assumed.extend((environment, request) for request in gang[count:])
            return
        if rules.array_size(record) is None:
            if not count:
                assumed.append((environment, charged))
            return
        request = record.request
        left = charged - bound
        unit = request.cpu_milli or request.memory or request.gpus
        amount = left.cpu_milli if request.cpu_milli else left.memory if request.memory else left.gpus
        if unit and amount > 0:
            assumed.extend((environment, request) for _ in range(-(-amount // unit)))

    def _policies(self, share_running: dict[str, dict[str, int]]) -> dict[str, Policy]:
        """Every scheduling policy with its shares' usage now."""
        now = self.clock()
        return {record.name: record.to_core(self.shares.usage(record, share_running.get(record.name, {}), now))
                for record in self.store.policies()}

    def _runnable(self, record: JobRecord, share: str | None = None) -> Runnable:
        """The scheduler's view of a RUNNABLE job, built once per version of the job: a deep queue
        is mostly the same 100,000 jobs pass after pass."""
        cached = self._runnables.get(record.key)
        if cached is not None and cached.source is record and cached.share == share:
            return cached
        waiting = record.status.get("waiting") or {}
        request = record.request
        if len(self._requests) > REQUESTS_KEPT:
            self._requests.clear()
        request = self._requests.setdefault(request, request)  # equal requests, one object: cheap to compare
        return Runnable(key=_key_string(record.key), queue=record.queue,
                        submitted_at=float(record.status.get("queuedAt") or 0), request=request,
                        blocked_category=waiting.get("category"), blocked_since=waiting.get("since"),
                        reason=record.status.get("statusReason"), priority=rules.priority(record), share=share,
                        pods=_gang_pods(record), source=record)

    # --- the pass --------------------------------------------------------------------------------

    async def scheduling_pass(self) -> dict[str, Resources]:
        """One pass; returns each compute environment's usage as decided."""
        began = time.perf_counter()
        snapshot, by_key = self.snapshot(list(self.store.live_jobs()))
        started = time.perf_counter()
        decisions = schedule(snapshot, self.clock())
        metrics.CYCLE_SECONDS.observe(time.perf_counter() - started)
        self._decide_seconds = time.perf_counter() - began
        work = [self._place(by_key[p.key], p.environment) if rules.array_size(by_key[p.key]) is None
                else self.arrays.place_children(by_key[p.key], p.environment, p.count) for p in decisions.placements]
        work += [self._cancel_by_rule(by_key[c.key], c.reason) for c in decisions.cancellations]
        waiting = dict(decisions.waiting)
        for key in self.store.held_admissions():
            wait = waiting.pop(_key_string(key), None)
            if wait is not None:
                work.append(self._write_admission(key, wait))
        work += self._reason_updates(by_key, waiting)
        self._arrays_held(by_key, waiting)
        await asyncio.gather(*work)
        return decisions.usage

    def _arrays_held(self, by_key: dict[str, JobRecord], waiting: dict[str, Waiting]) -> None:
        """Arrays write their own statusReason: tell each whether a cap holds its children back."""
        for key, record in by_key.items():
            if rules.array_size(record) is not None:
                wait = waiting.get(key)
                held = wait.reason if wait is not None and wait.category in CAPS else None
                self.arrays.held(record, held)

    async def _write_admission(self, key: JobKey, wait: Waiting) -> None:
        async with self.locks(key):
            current = self.store.job(key)
            admission = self.store.take_admission(key)
            if admission is None or current is None or current.state not in UNADMITTED:
                return
            await self.status.write(current, {**admission, **rules.waiting_patch(wait)})

    async def _place(self, record: JobRecord, environment_name: str) -> None:
        """Assume the placement and create the job's Kubernetes Job now; STARTING is written later,
        with the pod's first report or by flush_placements."""
        async with self.locks(record.key):
            current = self.store.job(record.key)
            environment = self.store.environment(environment_name)
            if current is None or environment is None:
                return
            current = self.store.effective(current)
            if current.state != RUNNABLE:
                return
            metrics.PLACEMENTS.labels(environment_name).inc()
            kube_job = manifests.kubernetes_job_name(current.name, current.attempt)
            patch = self.store.assume_placement(record.key, self.clock(),
                                                rules.placement_patch(environment_name, kube_job))
            self.status.announce(self.store.job(record.key) or current, STARTING, patch)
            await self.jobs.create_kube_job(self.store.effective(current), environment)

    async def flush_placements(self) -> None:
        """Write STARTING for placed jobs whose container has not run in time (core.job.starting_report_due)."""
        now = self.clock()
        self._starting_due = {key: at for key, at in self._starting_due.items() if self.store.placement_assumed(key)}
        due = [key for key in self.store.placements_due(now - self.settings.placement_report_seconds)
               if self._starting_due.get(key, 0.0) <= now]
        await asyncio.gather(*[self._flush_placement(key, now) for key in due])

    async def _flush_placement(self, key: JobKey, now: float) -> None:
        async with self.locks(key):
            current = self.store.job(key)
            placed = self.store.assumed_placement(key)
            if current is None or placed is None:
                return
            if current.state not in PLACEABLE:  # written by another path already
                self.store.take_placement(key)
                return
            current = self.store.effective(current)
            due = rules.starting_report_due(placed[0], self.jobs.current_pod(current),
                                            self.settings.placement_report_seconds,
                                            self.settings.starting_pod_report_seconds)
            if due > now:
                self._starting_due[key] = due
                return
            await self.status.write(current, {})

    async def _cancel_by_rule(self, record: JobRecord, reason: str) -> None:
        async with self.locks(record.key):
            current = self.store.job(record.key)
            if current is not None and self.store.effective(current).state == RUNNABLE:
                await self.status.write(current, rules.fail(reason, self.clock(), "isCancelled"))

    def _reason_updates(self, by_key: dict[str, JobRecord], waiting: dict[str, Waiting]) -> list[Any]:
        """Tell waiting jobs why, without rewriting 100,000 statuses every pass: a changed category
        is written at once, a changed text at most every reason_refresh_seconds, within a budget."""
        now = self.clock()
        updates: list[Any] = []
        for key, wait in waiting.items():
            if len(updates) >= self.settings.reason_updates_per_cycle:
                break
            record = by_key.get(key)
            if (record is None or rules.array_size(record) is not None
                    or record.status.get("statusReason") == wait.reason):
                continue
            previous = (record.status.get("waiting") or {}).get("category")
            last = self._reason_written_at.get(record.key, 0.0)
            if previous == wait.category and now - last < self.settings.reason_refresh_seconds:
                continue
            self._reason_written_at[record.key] = now
            updates.append(self._write_reason(record, wait))
        self._reasons_left = len(updates) >= self.settings.reason_updates_per_cycle
        return updates

    async def _write_reason(self, record: JobRecord, wait: Waiting) -> None:
        async with self.locks(record.key):
            current = self.store.job(record.key)
            if current is not None and self.store.effective(current).state == RUNNABLE:
                await self.status.write(current, rules.waiting_patch(wait))
