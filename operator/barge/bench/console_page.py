"""How fast the console's jobs list answers with 100,000 BatchJobs in its store:
`python -m barge.bench.console_page [--jobs 100000] [--repeat 30]`.

The console's HTTP app is served in-process (aiohttp's test server, a real socket) over a store filled
with synthetic BatchJobs; each figure is the wall time of one GET, from request to the last byte.
Same-run baseline: the same pages over a store of 1,000 jobs, and /healthz (the HTTP floor). RBAC
reviews are answered at once here: in the console they are cached per user for 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from barge.console.access import Access, Session
from barge.console.app import build_app
from barge.console.store import Store
from barge.core.states import JOB_STATES

PAGES = {
    "/healthz": "HTTP floor",
    "/jobs": "all jobs, newest first, page 1",
    "/jobs?page=1000": "page 1000 (jobs 49,951-50,000)",
    "/jobs?state=RUNNABLE": "state RUNNABLE",
    "/jobs?namespace=team-3&queue=q1&sort=name": "namespace, queue, sorted by name",
    "/jobs?name=job-0004": "name contains job-0004",
}


class OpenAccess(Access):
    """Local mode, RBAC saying yes at once (the console caches each answer per user for 30 s)."""

    async def may(self, session: Session, verb: str, resource: str, namespace: str = "") -> bool:
        return True


def synthetic_job(i: int, rng: random.Random) -> dict[str, Any]:
    state = rng.choice(JOB_STATES)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000 + i))
    return {"apiVersion": "barge.dev/v1alpha1", "kind": "BatchJob",
            "metadata": {"name": f"job-{i:06d}", "namespace": f"team-{i % 10}", "creationTimestamp": created,
                         "uid": f"uid-{i}"},
            "spec": {"jobDefinition": "render", "jobQueue": f"q{i % 3}", "parameters": {"frame": str(i)}},
            "status": {"state": state, "jobId": f"uid-{i}", "attemptCount": 1, "createdAt": created,
                       "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU; free: ce 0 of 64 vCPU"
                       if state == "RUNNABLE" else "Essential container in task exited",
                       "queuedAt": 1_700_000_000 + i}}


def filled_store(jobs: int) -> Store:
    store = Store()
    rng = random.Random(7)
    store.replace("batchjobs", [synthetic_job(i, rng) for i in range(jobs)])
    store.replace("jobqueues", [{"metadata": {"name": f"q{i}"}, "spec": {"priority": i}} for i in range(3)])
    store.replace("computeenvironments", [])
    store.replace("jobdefinitions", [])
    return store


async def measure(jobs: int, repeat: int) -> dict[str, dict[str, float]]:
    store = filled_store(jobs)
    client = TestClient(TestServer(build_app(OpenAccess(base=None, local=True), store)))
    await client.start_server()
    results: dict[str, dict[str, float]] = {}
    try:
        for path in PAGES:
            times = []
            for n in range(repeat + 1):
                start = time.perf_counter()
                response = await client.get(path)
                await response.read()
                elapsed = time.perf_counter() - start
                assert response.status == 200, (path, response.status)
                if n:  # the first request of each page warms the sorted copy; it is reported apart below
                    times.append(elapsed)
            times.sort()
            results[path] = {"p50_ms": 1000 * statistics.median(times),
                             "p95_ms": 1000 * times[max(0, int(len(times) * 0.95) - 1)],
                             "max_ms": 1000 * times[-1]}
        # After a change the sorted copy is rebuilt once: a page right after a watch event.
        times = []
        for n in range(repeat):
            store.apply("batchjobs", "MODIFIED", synthetic_job(n, random.Random(n)))
            start = time.perf_counter()
            response = await client.get("/jobs")
            await response.read()
            times.append(time.perf_counter() - start)
        times.sort()
        results["/jobs after a change"] = {"p50_ms": 1000 * statistics.median(times),
                                           "p95_ms": 1000 * times[max(0, int(len(times) * 0.95) - 1)],
                                           "max_ms": 1000 * times[-1]}
    finally:
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline-jobs", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    figures = {"jobs": args.jobs, "baseline_jobs": args.baseline_jobs,
               "baseline": asyncio.run(measure(args.baseline_jobs, args.repeat)),
               "measured": asyncio.run(measure(args.jobs, args.repeat))}
    print(f"{'page':48} {'p50 ' + str(args.baseline_jobs):>12} {'p50 ' + str(args.jobs):>12} {'p95':>8} {'max':>8}")
    for path in figures["measured"]:
        base, mine = figures["baseline"][path], figures["measured"][path]
        print(f"{path:48} {base['p50_ms']:10.1f}ms {mine['p50_ms']:10.1f}ms {mine['p95_ms']:6.1f}ms "
              f"{mine['max_ms']:6.1f}ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
