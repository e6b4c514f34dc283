"""What the operator knows about the cluster.

The few, small kinds (compute environments, queues, definitions) live in kopf's indexes. BatchJobs,
their pods and Kubernetes Jobs can number in the hundreds of thousands, so those live here instead
(see informer.py): filled by one paginated list at startup (nothing is reconciled or scheduled
before it completes, so the quota is counted in full after any restart), then kept current by watch
events and by Barge's own writes. A version never replaces a newer one (etcd revisions are integers),
so a stale event cannot undo a placement Barge has just written.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from barge.controller.records import EnvironmentRecord, JobKey, JobRecord, QueueRecord, resource_version
from barge.core.lifecycle import KubeJobObservation, PodObservation, observe_kube_job, observe_pod

Index = Mapping[Any, Any]
JOB_ID_LABEL = "barge.dev/job-id"


def _first(index: Index | None, key: Any) -> Any:
    if index is None or key not in index:
        return None
    for value in index[key]:
        return value
    return None


def _job_id(body: Mapping[str, Any]) -> str | None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    value = labels.get(JOB_ID_LABEL)
    return str(value) if value else None


class Store:
    def __init__(self) -> None:
        self.indexes: dict[str, Index] = {}
        self._jobs: dict[JobKey, JobRecord] = {}
        self._keys_by_uid: dict[str, JobKey] = {}
        self._dependents: dict[JobKey, set[JobKey]] = {}
        self._pods: dict[str, dict[str, tuple[int, PodObservation]]] = {}
        self._kube_jobs: dict[str, dict[str, tuple[int, KubeJobObservation]]] = {}
        # Set once the big kinds are listed and kopf's indexes hold every small object that exists.
        self.listed = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.listed.is_set()

    def capture(self, indexes: Mapping[str, Any]) -> None:
        """Keep kopf's live index objects (handed to every handler, filled by kopf's own watches)."""
        self.indexes = dict(indexes)

    def indexed(self, what: str, key: Any) -> bool:
        index = self.indexes.get(what)
        return index is not None and key in index

    # --- BatchJobs ------------------------------------------------------------------------

    def remember(self, body: Mapping[str, Any]) -> JobRecord:
        """A BatchJob as seen in an event, a list or a write response; never older than what we hold."""
        record = JobRecord.from_body(body)
        key = record.key
        held = self._jobs.get(key)
        if held is not None and held.resource_version > record.resource_version:
            return held
        if held is not None and held.uid != record.uid:
            self._keys_by_uid.pop(held.uid, None)
        self._jobs[key] = record
        self._keys_by_uid[record.uid] = key
        self._index_dependencies(record)
        return record

    def _index_dependencies(self, record: JobRecord) -> None:
        for dependency in record.spec.get("dependsOn") or []:
            name = dependency.get("jobName")
            if name:
                self._dependents.setdefault((record.namespace, str(name)), set()).add(record.key)

    def forget(self, key: JobKey) -> None:
        record = self._jobs.pop(key, None)
        if record is None:
            return
        self._keys_by_uid.pop(record.uid, None)
        self.forget_owned_by(record.uid)
        for dependency in record.spec.get("dependsOn") or []:
            name = dependency.get("jobName")
            if name:
                waiting = self._dependents.get((record.namespace, str(name)))
                if waiting is not None:
                    waiting.discard(key)
                    if not waiting:
                        del self._dependents[(record.namespace, str(name))]

    def job(self, key: JobKey) -> JobRecord | None:
        return self._jobs.get(key)

    def jobs(self) -> Iterator[JobRecord]:
        return iter(list(self._jobs.values()))

    def job_key_by_uid(self, uid: str) -> JobKey | None:
        return self._keys_by_uid.get(uid)

    def dependents(self, key: JobKey) -> set[JobKey]:
        return set(self._dependents.get(key, ()))

    # --- pods and Kubernetes Jobs of BatchJobs ------------------------------------------------

    def remember_pod(self, body: Mapping[str, Any], deleted: bool = False) -> str | None:
        """The pod's BatchJob uid when what Barge reads of the pod changed; None when it did not (a
        finalizer removed, a stale event) or the pod is not Barge's."""
        job_id = self._remember_owned(self._pods, body, deleted, observe_pod)
        if deleted and job_id is not None:
            self._keep_if_vanished(job_id, observe_pod(dict(body)))
        return job_id

    def remember_kube_job(self, body: Mapping[str, Any], deleted: bool = False) -> str | None:
        return self._remember_owned(self._kube_jobs, body, deleted, observe_kube_job)

    @staticmethod
    def _remember_owned(table: dict[str, dict[str, tuple[int, Any]]], body: Mapping[str, Any], deleted: bool,
                        observe: Any) -> str | None:
        job_id = _job_id(body)
        if job_id is None:
            return None
        metadata = body.get("metadata") or {}
        name, version = str(metadata.get("name")), resource_version(metadata)
        owned = table.setdefault(job_id, {})
        held = owned.get(name)
        if held is not None and held[0] > version:
            return None
        if deleted:
            owned.pop(name, None)
            if not owned:
                del table[job_id]
            return job_id
        observation = observe(dict(body))
        owned[name] = (version, observation)
        return None if held is not None and held[1] == observation else job_id

    def owned_names(self, what: str, namespace: str | None) -> set[tuple[str, str]]:
        """(job id, name) of every pod or Job held, of one namespace (None: all). An orphan, whose
        BatchJob is not known, counts in every namespace's list only when all are watched."""
        table = self._pods if what == "pods" else self._kube_jobs
        held: set[tuple[str, str]] = set()
        for job_id, owned in table.items():
            key = self._keys_by_uid.get(job_id)
            if namespace is None or (key is not None and key[0] == namespace):
                held.update((job_id, name) for name in owned)
        return held

    def forget_owned(self, what: str, job_id: str, name: str) -> None:
        table = self._pods if what == "pods" else self._kube_jobs
        owned = table.get(job_id)
        if owned is None:
            return
        held = owned.pop(name, None)
        if not owned:
            del table[job_id]
        if held is not None and isinstance(held[1], PodObservation):
            self._keep_if_vanished(job_id, held[1])

    def _keep_if_vanished(self, job_id: str, pod: PodObservation) -> None:
        """The pod of a one-pod job's current attempt is gone while the job is not finished: keep its
        last observation, as failed if it had not terminated (force-deleted, its node lost, its Job
        deleted), so the attempt still ends. Its Job is not watched (see Kube._lister), and with
        backoffLimit 0 the Job controller starts no other pod."""
        key = self._keys_by_uid.get(job_id)
        record = self._jobs.get(key) if key is not None else None
        if (pod.index is not None or record is None or record.state in ("SUCCEEDED", "FAILED")
                or pod.attempt != record.attempt):
            return
        if not pod.terminated:
            pod = dataclasses.replace(pod, phase="Failed", reason=pod.reason or "PodDeleted",
                                      message=pod.message or "the pod was deleted before its container finished")
        self._pods.setdefault(job_id, {})[pod.name] = (0, pod)

    def forget_owned_by(self, job_id: str) -> None:
        """A BatchJob is gone: so is what we hold of its pods and Jobs (a Job that is not watched
        would otherwise stay)."""
        self._pods.pop(job_id, None)
        self._kube_jobs.pop(job_id, None)

    def pods(self, job_id: str) -> list[PodObservation]:
        return [observation for _, observation in self._pods.get(job_id, {}).values()]

    def has_kube_jobs(self, job_id: str) -> bool:
        return job_id in self._kube_jobs

    def kube_jobs(self, job_id: str) -> list[KubeJobObservation]:
        return [observation for _, observation in self._kube_jobs.get(job_id, {}).values()]

    # --- the small kinds, from kopf's indexes -------------------------------------------------

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
