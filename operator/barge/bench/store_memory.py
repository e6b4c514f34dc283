"""Memory the operator's store holds per waiting BatchJob, without a cluster.

    .venv/bin/python -m barge.bench.store_memory [N]

Builds N BatchJob bodies as the apiserver sends them for P4's jobs (RUNNABLE behind a full compute
environment), remembers them in a Store and prints the bytes allocated per job (tracemalloc).
"""

from __future__ import annotations

import gc
import json
import sys
import tracemalloc
from typing import Any

from barge.controller.store import Store

TEMPLATE = {"metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "3600s"}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}]}}
QUEUE = "bench-p4-5910556"


def body(i: int) -> dict[str, Any]:
    uid = f"{i:08d}-aaaa-bbbb-cccc-dddddddddddd"
    reason = f"Waiting in job queue '{QUEUE}': compute environment '{QUEUE}' has 0 of 1 vCPU free; the job needs 1 vCPU"
    return json.loads(json.dumps({
        "apiVersion": "barge.dev/v1alpha1", "kind": "BatchJob",
        "metadata": {"name": f"j-{i}", "namespace": "bench-p4", "uid": uid, "resourceVersion": str(100000 + i),
                     "generation": 1, "creationTimestamp": "2026-11-22T00:05:10Z"},
        "spec": {"jobDefinition": "blocker", "jobQueue": QUEUE},
        "status": {"jobId": uid, "createdAt": "2026-11-22T00:05:11Z", "jobQueue": QUEUE, "attemptCount": 0,
                   "currentAttempt": 1, "state": "RUNNABLE", "queuedAt": 1763770000.0 + i / 1000,
                   "statusReason": reason,
                   "resolved": {"template": TEMPLATE, "retryStrategy": {}, "timeoutSeconds": None, "labels": {},
                                "request": {"cpuMilli": 1000, "memory": 0, "gpus": 0}},
                   "waiting": {"category": "CAPACITY", "since": 1763770000.5 + i / 1000},
                   "conditions": [{"type": "Finished", "status": "False", "reason": "Runnable", "message": reason,
                                   "lastTransitionTime": f"2026-11-22T00:05:11.{i % 1000000:06d}Z",
                                   "observedGeneration": 1}],
                   "observedGeneration": 1}}))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    tracemalloc.start()
    store = Store()
    for i in range(n):
        store.remember(body(i))
    gc.collect()
    allocated = sum(stat.size for stat in tracemalloc.take_snapshot().statistics("filename"))
    print(f"{n} waiting BatchJobs: {allocated / n:.0f} bytes per job in the store")


if __name__ == "__main__":
    main()
