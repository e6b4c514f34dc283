"""What a job waits for, read from the store: the states of the jobs (and array children) it
depends on, handed to the pure rules of core.dependencies."""

from __future__ import annotations

from typing import Any

from barge.controller.records import JobRecord
from barge.controller.store import Store
from barge.core import arrays, dependencies
from barge.core import job as rules
from barge.core.states import FAILED, RUNNING, SUBMITTED, SUCCEEDED

SETTLED_CACHE = 256  # arrays whose settled children are kept parsed, by version


class Dependencies:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._settled: dict[tuple[str, str, int], arrays.Settled] = {}

    def named(self, namespace: str, deps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`deps` with each jobId resolved to the name of the BatchJob (in `namespace`) it identifies."""
        def name_of_id(job_id: str) -> str | None:
            key = self.store.job_key_by_uid(job_id)
            return key[1] if key is not None and key[0] == namespace else None

        return [dict(d) for d in dependencies.by_name(deps, name_of_id)]

    def verdict(self, record: JobRecord) -> dependencies.Verdict:
        deps = self.named(record.namespace, record.spec.get("dependsOn") or [])
        if not deps:
            return dependencies.Verdict(True)
        cycle = dependencies.find_cycle(record.name, lambda n: self._edges(record.namespace, n))
        if cycle:
            return dependencies.Verdict(False, failure=dependencies.cycle_reason(cycle))
        return dependencies.job_level(deps, lambda n: self.state_of(record.namespace, n))

    def child_gate(self, record: JobRecord, deps: list[dict[str, Any]]) -> arrays.ChildGate:
        """Which of an array's children may run, for N_TO_N and SEQUENTIAL dependencies."""
        deps = self.named(record.namespace, deps)
        return arrays.child_gate(deps, arrays.Settled.from_status(record.status.get("arrayProperties") or {}),
                                 lambda n, i: self.child_state_of(record.namespace, n, i))

    def dependents(self, record: JobRecord) -> set[tuple[str, str]]:
        return self.store.dependents(record.key)

    def state_of(self, namespace: str, name: str) -> str | None:
        record = self.store.job((namespace, name))
        if record is None:
            return None
        return record.state or SUBMITTED

    def child_state_of(self, namespace: str, name: str, index: int) -> str | None:
        record = self.store.job((namespace, name))
        if record is None:
            return None
        if rules.array_size(record) is None:
            return record.state or SUBMITTED
        cache_key = (namespace, name, record.resource_version)
        settled = self._settled.get(cache_key)
        if settled is None:
            settled = arrays.Settled.from_status(record.status.get("arrayProperties") or {})
            if len(self._settled) > SETTLED_CACHE:
                self._settled.clear()
            self._settled[cache_key] = settled
        if index in settled.succeeded:
            return SUCCEEDED
        if index in settled.failed:
            return FAILED
        return RUNNING

    def _edges(self, namespace: str, name: str) -> list[str]:
        record = self.store.job((namespace, name))
        if record is None:
            return []
        deps = self.named(namespace, record.spec.get("dependsOn") or [])
        return [str(d["jobName"]) for d in deps if d.get("jobName")]
