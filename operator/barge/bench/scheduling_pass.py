"""One scheduling pass of the operator over a deep queue, without a cluster.

    .venv/bin/python -m barge.bench.scheduling_pass [N] [--profile] [--shares S]

Fills the store with N RUNNABLE BatchJobs behind a full compute environment over NODES nodes (P4's
shape; with --shares, on a fair-share queue whose jobs are spread over S share identifiers), then times
the operator's scheduling pass (snapshot, the pure schedule(), reasons, then the queues' and compute
environments' status refresh) and its periodic sweep, with the API writes answered in memory.
Prints milliseconds per call, the median of five.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import inspect
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from barge.bench.store_memory import QUEUE, body
from barge.config import Settings
from barge.controller.operator import Operator
from barge.controller.records import EnvironmentRecord, PolicyRecord, QueueRecord
from barge.core.noderoom import Node
from barge.core.resources import Resources
from barge.core.scheduler import schedule
from barge.kube import Kube

NODES = 100


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) applied to a copy of target, as the apiserver applies it."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


class AnsweringKube(Kube):
    """Every status patch succeeds at once, answered like the apiserver; nothing leaves the process.
    A compute environment's or queue's new status reaches the indexes as kopf's watch would bring it.
    No client is built: any other call (a create, a delete) fails, and the bench makes none."""

    def __init__(self) -> None:  # Kube's own would load a kubeconfig
        self.bodies: dict[tuple[str, str, str], dict[str, Any]] = {}  # (kind, namespace or "", name)
        self.version = 10**9
        self.indexes: dict[str, dict[str, list[EnvironmentRecord | QueueRecord | PolicyRecord]]] = {
            "computeenvironments": {}, "jobqueues": {}, "schedulingpolicies": {}}

    def add(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body["metadata"]
        self.bodies[(kind, metadata.get("namespace", ""), metadata["name"])] = body
        if kind == "ComputeEnvironment":
            self.indexes["computeenvironments"][metadata["name"]] = [EnvironmentRecord.from_body(body)]
        elif kind == "JobQueue":
            self.indexes["jobqueues"][metadata["name"]] = [QueueRecord.from_body(body)]
        elif kind == "SchedulingPolicy":
            self.indexes["schedulingpolicies"][metadata["name"]] = [PolicyRecord.from_body(body)]

    async def patch_status(self, kind: str, name: str, status: dict[str, Any],
                           namespace: str | None = None) -> dict[str, Any] | None:
        key = (kind, namespace or "", name)
        held = self.bodies.get(key)
        if held is None:
            return None
        self.version += 1
        answered = {**held, "metadata": {**held["metadata"], "resourceVersion": str(self.version)},
                    "status": merge_patch(held.get("status") or {}, status)}
        self.add(kind, answered)
        return answered

    def post_event(self, reference: dict[str, Any], kind: str, reason: str, message: str) -> None:
        return None


def operator(n: int, shares: int = 0) -> Operator:
    kube = AnsweringKube()
    op = Operator(Settings(events=False), kube)
    environment = {"metadata": {"name": QUEUE, "uid": "ce"},
                   "spec": {"state": "ENABLED", "computeResources": {"maxvCpus": 1}}}
    queue: dict[str, Any] = {"metadata": {"name": QUEUE, "uid": "q"},
             "spec": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": QUEUE}]}}
    if shares:
        queue["spec"]["schedulingPolicy"] = QUEUE
        weights = [{"shareIdentifier": f"share-{i}", "weightFactor": (0.5, 1.0, 2.0)[i % 3]} for i in range(shares)]
        kube.add("SchedulingPolicy", {"metadata": {"name": QUEUE, "uid": "sp"},
                                      "spec": {"fairsharePolicy": {"shareDistribution": weights}}})
    kube.add("ComputeEnvironment", environment)
    kube.add("JobQueue", queue)
    nodes = [Node(f"kwok-cpu-{i}", {"barge.dev/pool": "cpu"}, (), Resources(16_000, 64 * 2**30), True)
             for i in range(NODES)]  # the nodes' room is computed every pass too
    op.store.capture({**kube.indexes, "jobdefinitions": {}, "nodes": {n.name: [n] for n in nodes}})
    blocker = body(n)
    blocker["metadata"]["name"] = "blocker"
    blocker["status"] |= {"state": "RUNNING", "computeEnvironment": QUEUE}
    jobs = [blocker, *(body(i) for i in range(n))]
    for i, job in enumerate(jobs):
        if shares:
            job["spec"]["shareIdentifier"] = f"share-{i % shares}"
    for job in jobs:
        kube.add("BatchJob", job)
        op.store.remember(job)
    op.store.listed.set()
    return op


async def timed(step: Callable[[], object]) -> float:
    """Milliseconds per call of step (awaited if it returns an awaitable), the median of five."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        result = step()
        if inspect.isawaitable(result):
            await result
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


async def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "100000"))
    shares = int(sys.argv[sys.argv.index("--shares") + 1]) if "--shares" in sys.argv else 0
    op = operator(n, shares)
    scheduler = op.scheduler

    async def scheduling_pass() -> None:  # as Scheduler.run does it: the pass, then the status refresh
        await op.summaries.refresh(await scheduler.scheduling_pass())
        await op.shares.refresh(scheduler._share_counts)

    settings = scheduler.settings
    scheduler.settings = dataclasses.replace(settings, reason_updates_per_cycle=n)
    await scheduling_pass()  # the first pass writes every reason (as admission does in the cluster)
    scheduler.settings = settings
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.enable()
        await scheduling_pass()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    jobs = list(op.store.jobs())
    snapshot, _ = scheduler.snapshot(jobs)
    usage = schedule(snapshot, time.time()).usage
    on = f"a fair-share queue of {shares} shares" if shares else "a FIFO queue"
    print(f"{n} RUNNABLE jobs on {on}, one full compute environment (ms, median of 5):")
    print(f"  scheduling pass    {await timed(scheduling_pass):8.1f}")
    print(f"  of which snapshot  {await timed(lambda: scheduler.snapshot(jobs)):8.1f}")
    print(f"  of which schedule  {await timed(lambda: schedule(snapshot, time.time())):8.1f}"
          "   (the cycle of barge_scheduling_cycle_seconds)")
    print(f"  of which statuses  {await timed(lambda: op.summaries.refresh(usage)):8.1f}"
          "   (queues' and compute environments')")
    print(f"  sweep              {await timed(op.housekeeping.sweep):8.1f}")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
