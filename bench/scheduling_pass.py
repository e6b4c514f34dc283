"""One scheduling pass of the operator over a deep queue, without a cluster.

    .venv/bin/python bench/scheduling_pass.py [N] [--profile]

Fills the store with N RUNNABLE BatchJobs behind a full compute environment (P4's shape), then times
the operator's scheduling pass (snapshot, the pure schedule(), reasons) and its other periodic loops,
with the API writes answered in memory. Prints milliseconds per call, the median of five.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from store_memory import QUEUE, body  # noqa: E402

from barge.config import Settings  # noqa: E402
from barge.controller.controller import Controller  # noqa: E402
from barge.controller.records import EnvironmentRecord, QueueRecord  # noqa: E402
from barge.core.scheduler import schedule  # noqa: E402


class AnsweringKube:
    """Every status patch succeeds at once, answered like the apiserver; nothing leaves the process."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 10**9

    async def patch_status(self, kind: str, name: str, status: dict[str, Any],
                           namespace: str | None = None) -> dict[str, Any]:
        body = self.bodies[(namespace or "", name)]
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        body["status"] = {k: v for k, v in {**body["status"], **status}.items() if v is not None}
        return body

    def post_event(self, *_: Any) -> None:
        return None


def controller(n: int) -> Controller:
    kube = AnsweringKube()
    ctl = Controller(Settings(events=False), kube)  # type: ignore[arg-type]
    environment = EnvironmentRecord.from_body({"metadata": {"name": QUEUE, "uid": "ce"}, "spec": {
        "state": "ENABLED", "computeResources": {"maxvCpus": 1}}})
    queue = QueueRecord.from_body({"metadata": {"name": QUEUE, "uid": "q"}, "spec": {
        "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": QUEUE}]}})
    ctl.store.capture({"computeenvironments": {QUEUE: [environment]}, "jobqueues": {QUEUE: [queue]},
                       "jobdefinitions": {}})
    blocker = body(n)
    blocker["metadata"]["name"] = "blocker"
    blocker["status"] |= {"state": "RUNNING", "computeEnvironment": QUEUE}
    for job in [blocker, *(body(i) for i in range(n))]:
        kube.bodies[(job["metadata"]["namespace"], job["metadata"]["name"])] = job
        ctl.store.remember(job)
    ctl.store.listed.set()
    return ctl


async def timed(step: Any) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        await step()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


async def main() -> None:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "100000"))
    ctl = controller(n)
    ctl.settings = dataclasses.replace(ctl.settings, reason_updates_per_cycle=n)
    await ctl.scheduling_pass()  # the first pass writes every reason (as admission does in the cluster)
    ctl.settings = Settings(events=False)
    if "--profile" in sys.argv:
        profile = cProfile.Profile()
        profile.enable()
        await ctl.scheduling_pass()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    jobs = list(ctl.store.jobs())
    print(f"{n} RUNNABLE jobs, one full compute environment (ms, median of 5):")
    print(f"  scheduling pass    {await timed(ctl.scheduling_pass):8.1f}")
    snapshot, _ = ctl.snapshot(jobs)
    print(f"  of which snapshot  {await timed(lambda: asyncio.sleep(0, ctl.snapshot(jobs))):8.1f}")
    print(f"  of which schedule  {await timed(lambda: asyncio.sleep(0, schedule(snapshot, time.time()))):8.1f}"
          "   (the cycle of barge_scheduling_cycle_seconds)")
    print(f"  sweep              {await timed(ctl.sweep):8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
