"""Step `managed` of `barge bench` (opt-in: `--only managed`): MANAGED compute environments on
Karpenter (its kwok provider locally; the cluster must run it: `barge dev cluster up --karpenter`).

- managed_cold_start_s: from submitting one job to a MANAGED environment with no nodes (scale from
  zero) to the job RUNNING.
- managed_packing: for a burst of mixed-size short jobs, node vCPU-seconds provisioned per job
  vCPU-second used. Provisioned: the environment's nodes' instance sizes, sampled every second from
  the burst's submission until every job has finished. Used: each job's vCPU request times its run
  time (status.startedAt to stoppedAt). 1.0 would be perfect packing with no node start-up.
  managed_packing_with_scale_down also counts the nodes until Karpenter removed them (the NodePool's
  consolidateAfter, 30 s, and Karpenter's disruption loop).

The size of the burst is BARGE_BENCH_MANAGED_JOBS (default 500). Figures are printed and merged into
the run's results under managed_*.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from barge.core import nodepools
from barge.core.resources import parse_cpu_milli
from barge.core.states import GROUP, VERSION
from barge.dev import cluster

if TYPE_CHECKING:
    from barge.bench.run import Bench

NODE_CLASS = "karpenter.kwok.sh/KWOKNodeClass/default"
MAX_VCPUS = 256
SHAPES = (("half", "500m"), ("one", "1"), ("two", "2"), ("four", "4"))  # the burst cycles through these
RUN_SECONDS = ("5s", "10s", "15s")


class NodeSampler:
    """The environment's nodes' vCPUs (instance sizes), integrated over time, from a thread."""

    def __init__(self, bench: Bench, environment: str) -> None:
        self.bench, self.environment = bench, environment
        self.vcpu_seconds = 0.0
        self.peak_vcpus = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def vcpus(self) -> float:
        nodes = self.bench.core.list_node(label_selector=f"{nodepools.ENVIRONMENT_LABEL}={self.environment}",
                                          _preload_content=False)
        items = json.loads(nodes.data).get("items") or []
        return sum(nodepools.node_cpu_milli((n["metadata"].get("labels") or {}), (n.get("status") or {}).get(
            "capacity") or {}) for n in items) / 1000

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                now_vcpus = self.vcpus()
            except Exception:  # a busy apiserver: the next sample covers the gap
                continue
            now = time.monotonic()
            self.vcpu_seconds += now_vcpus * (now - last)
            self.peak_vcpus = max(self.peak_vcpus, now_vcpus)
            last = now

    def __enter__(self) -> NodeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def used_vcpu_seconds(jobs: list[dict[str, Any]], requests: dict[str, int]) -> float:
    """Each job's vCPU request times how long it ran: from status.startedAt (RUNNING first seen) to
    status.stoppedAt. Not the attempt's own times: kwok's simulated containers report a terminated
    state whose startedAt is their finish time. The burst's jobs run once (no retry strategy)."""
    total = 0.0
    for job in jobs:
        status = job.get("status") or {}
        started, stopped = _seconds(status.get("startedAt")), _seconds(status.get("stoppedAt"))
        if started is not None and stopped is not None:
            total += requests[job["spec"]["jobDefinition"]] / 1000 * max(0.0, stopped - started)
    return total


def managed(bench: Bench) -> None:
    if not cluster.karpenter_running():
        raise RuntimeError("step managed needs Karpenter on the local cluster: barge dev cluster up --karpenter")
    n = int(os.environ.get("BARGE_BENCH_MANAGED_JOBS", "500"))
    bench.stop_operator()
    bench.start_operator(BARGE_NODE_CLASS=NODE_CLASS)
    ns = bench.fresh_namespace("bench-managed")
    bench.apply([{"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComputeEnvironment", "metadata": {"name": ns},
                  "spec": {"type": "MANAGED", "state": "ENABLED",
                           "computeResources": {"minvCpus": 0, "maxvCpus": MAX_VCPUS}}},
                 {"apiVersion": f"{GROUP}/{VERSION}", "kind": "JobQueue", "metadata": {"name": ns},
                  "spec": {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": ns}]}}])
    requests: dict[str, int] = {}
    for shape, cpu in SHAPES:
        for delay in RUN_SECONDS:
            name = f"{shape}-{delay}"
            bench.definition(ns, name, cpu=cpu, delay=delay)
            requests[name] = parse_cpu_milli(cpu)
    sampler = NodeSampler(bench, ns)
    bench.wait(lambda: sampler.vcpus() == 0, 300, "a cold MANAGED environment (no nodes)", interval=2)
    submitted = time.monotonic()
    bench.submit(ns, ["cold"], "one-5s", ns)
    bench.wait(lambda: (bench.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", "cold")
                        .get("status") or {}).get("state") in ("RUNNING", "SUCCEEDED"), 300, "the cold job RUNNING",
               interval=0.2)
    cold_start = time.monotonic() - submitted
    bench.wait(lambda: sampler.vcpus() == 0, 300, "the environment empty again", interval=2)
    definitions = list(requests)
    names = [f"j-{i}" for i in range(n)]
    with sampler:
        started = time.monotonic()
        for i, definition in enumerate(definitions):
            bench.submit(ns, names[i::len(definitions)], definition, ns)
        bench.wait(lambda: bench.count_states(ns).get("SUCCEEDED", 0) >= n + 1, 1800, "the burst done", interval=5)
        burst = time.monotonic() - started
        during = sampler.vcpu_seconds
        bench.wait(lambda: sampler.vcpus() == 0, 600, "the nodes removed after the burst", interval=2)
    used = used_vcpu_seconds([j for j in bench.batchjobs(ns) if j["metadata"]["name"] != "cold"], requests)
    figures = {"managed_cold_start_s": round(cold_start, 2), "managed_burst_jobs": n,
               "managed_burst_s": round(burst, 1), "managed_peak_vcpus": sampler.peak_vcpus,
               "managed_provisioned_vcpu_s": round(during, 1),
               "managed_used_vcpu_s": round(used, 1),
               "managed_packing": round(during / used, 2) if used else None,
               "managed_packing_with_scale_down": round(sampler.vcpu_seconds / used, 2) if used else None}
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    bench.results |= figures
    bench.cleanup(ns)
