"""Queues' and compute environments' status after each scheduling pass: job counts, quota usage,
validity (a Ready condition), and the gauges that go with them. Written only when changed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from barge import metrics
from barge.controller.records import EnvironmentRecord, QueueRecord
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import nodepools
from barge.core.conditions import set_condition
from barge.core.resources import Resources, format_bytes, format_cpu
from barge.core.states import ACTIVE, ENABLED, INVALID, JOB_STATES, RUNNING, STARTING, SUBMITTED, VALID
from barge.core.times import iso


class Summaries:
    def __init__(self, store: Store, status: StatusWriter) -> None:
        self.store = store
        self.status = status

    async def refresh(self, usage: dict[str, Resources]) -> None:
        by_queue = self.store.finished_counts()
        by_environment: dict[str, Counter[str]] = {}
        for record in self.store.live_jobs():
            if not self.store.waits_as_written(record):
                record = self.store.effective(record)
            state = record.state or SUBMITTED
            by_queue.setdefault(record.queue, Counter())[state] += 1
            environment = record.status.get("computeEnvironment")
            if state in ACTIVE and environment:
                by_environment.setdefault(environment, Counter())[state] += 1
        await asyncio.gather(
            *[self._queue(q, by_queue.get(q.name, Counter())) for q in self.store.queues()],
            *[self._environment(e, usage.get(e.name, Resources()), by_environment.get(e.name, Counter()))
              for e in self.store.environments()])

    def _ready(self, status: dict[str, Any], valid: bool, reason: str, message: str,
               generation: int) -> list[dict[str, Any]]:
        conditions, _ = set_condition(status.get("conditions") or [], "Ready", valid, reason, message, generation,
                                      iso(self.status.clock()))
        return [c for c in conditions if c.get("type") == "Ready"]

    async def _queue(self, queue: QueueRecord, counts: Counter[str]) -> None:
        for state in JOB_STATES:
            metrics.JOBS.labels(queue.name, state).set(counts.get(state, 0))
        missing = [n for n in queue.environments if self.store.environment(n) is None]
        valid = not missing
        reason = "JobQueue is VALID" if valid else f"compute environment(s) not found: {', '.join(missing)}"
        status = {
            "state": queue.spec.get("state", ENABLED), "status": VALID if valid else INVALID,
            "statusReason": reason, "jobCounts": {s: counts.get(s, 0) for s in JOB_STATES},
            "observedGeneration": queue.generation,
            "conditions": self._ready(queue.status, valid, "Valid" if valid else "ComputeEnvironmentNotFound",
                                      reason, queue.generation),
        }
        await self.status.write_if_changed("JobQueue", queue, status)

    async def _environment(self, environment: EnvironmentRecord, used: Resources, counts: Counter[str]) -> None:
        capacity = environment.capacity
        for resource, limit, value in (("cpu", capacity.cpu_milli / 1000, used.cpu_milli / 1000),
                                       ("memory", capacity.memory, used.memory), ("gpu", capacity.gpus, used.gpus)):
            if limit is not None:
                metrics.QUOTA_LIMIT.labels(environment.name, resource).set(limit)
            metrics.QUOTA_USED.labels(environment.name, resource).set(value)
        valid = environment.invalid_reason is None
        reason = environment.invalid_reason or "ComputeEnvironment is VALID"
        queues = sorted(q.name for q in self.store.queues() if environment.name in q.environments)
        status = {
            "state": environment.spec.get("state", ENABLED), "status": VALID if valid else INVALID,
            "statusReason": reason,
            "usage": {"vcpus": format_cpu(used.cpu_milli), "memory": format_bytes(used.memory), "gpus": used.gpus},
            "vcpuUsage": f"{format_cpu(used.cpu_milli)}/{format_cpu(capacity.cpu_milli)}",
            "desiredvCpus": -(-used.cpu_milli // 1000),
            **self._managed(environment, used),
            "jobCounts": {STARTING: counts.get(STARTING, 0), RUNNING: counts.get(RUNNING, 0)},
            "queues": queues, "observedGeneration": environment.generation,
            "conditions": self._ready(environment.status, valid, "Valid" if valid else "InvalidSpec", reason,
                                      environment.generation),
        }
        await self.status.write_if_changed("ComputeEnvironment", environment, status)

    def _managed(self, environment: EnvironmentRecord, used: Resources) -> dict[str, int]:
        """A MANAGED environment's vCPUs wanted (at least minvCpus) and what its NodePool provisioned."""
        if not environment.managed:
            return {}
        resources = environment.spec.get("computeResources") or {}
        nodes, vcpus = self.store.provisioned.get(environment.name, (0, 0))
        return {"desiredvCpus": nodepools.desired_vcpus(used.cpu_milli, int(resources.get("minvCpus") or 0),
                                                        int(resources.get("maxvCpus") or 0)),
                "provisionedvCpus": vcpus, "nodes": nodes}
