"""What the operator knows: kopf's indexes, plus its own writes until the watch catches up.

kopf fills the indexes from watch events, so right after Barge patches a job the index may still
hold the previous version. The overlay keeps the patched object until an event at least as new
arrives, so a scheduling pass never counts a placed job as RUNNABLE again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from barge.controller.records import EnvironmentRecord, JobKey, JobRecord, QueueRecord
from barge.core.lifecycle import KubeJobObservation, PodObservation

Index = Mapping[Any, Any]


def _first(index: Index | None, key: Any) -> Any:
    if index is None or key not in index:
        return None
    for value in index[key]:
        return value
    return None


class Store:
    def __init__(self) -> None:
        self.indexes: dict[str, Index] = {}
        self.overlay: dict[JobKey, JobRecord] = {}

    @property
    def ready(self) -> bool:
        return "batchjobs" in self.indexes

    def capture(self, indexes: Mapping[str, Any]) -> None:
        """Keep kopf's live index objects (handed to every handler) for the scheduling loop."""
        if not self.ready:
            self.indexes = dict(indexes)

    def remember(self, body: dict[str, Any]) -> JobRecord:
        record = JobRecord.from_body(body)
        self.overlay[record.key] = record
        return record

    def forget(self, key: JobKey) -> None:
        self.overlay.pop(key, None)

    def job(self, key: JobKey) -> JobRecord | None:
        indexed: JobRecord | None = _first(self.indexes.get("batchjobs"), key)
        mine = self.overlay.get(key)
        if mine is None:
            return indexed
        if indexed is None:
            return mine
        if indexed.resource_version >= mine.resource_version:
            del self.overlay[key]
            return indexed
        return mine

    def jobs(self) -> Iterator[JobRecord]:
        index = self.indexes.get("batchjobs") or {}
        for key in list(index.keys()):
            record = self.job(key)
            if record is not None:
                yield record

    def job_key_by_uid(self, uid: str) -> JobKey | None:
        key: JobKey | None = _first(self.indexes.get("batchjob_keys"), uid)
        return key

    def definition(self, namespace: str, name: str) -> dict[str, Any] | None:
        spec: dict[str, Any] | None = _first(self.indexes.get("jobdefinitions"), (namespace, name))
        return spec

    def environment(self, name: str) -> EnvironmentRecord | None:
        record: EnvironmentRecord | None = _first(self.indexes.get("computeenvironments"), name)
        return record

    def environments(self) -> list[EnvironmentRecord]:
        index = self.indexes.get("computeenvironments") or {}
        return [r for k in list(index.keys()) if (r := _first(index, k)) is not None]

    def queue(self, name: str) -> QueueRecord | None:
        record: QueueRecord | None = _first(self.indexes.get("jobqueues"), name)
        return record

    def queues(self) -> list[QueueRecord]:
        index = self.indexes.get("jobqueues") or {}
        return [r for k in list(index.keys()) if (r := _first(index, k)) is not None]

    def pods(self, job_id: str) -> list[PodObservation]:
        index = self.indexes.get("pods")
        return list(index[job_id]) if index is not None and job_id in index else []

    def kube_jobs(self, job_id: str) -> list[KubeJobObservation]:
        index = self.indexes.get("jobs")
        return list(index[job_id]) if index is not None and job_id in index else []
