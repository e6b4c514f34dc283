"""What the operator knows about the cluster, and what it has decided but not written yet.

The few, small kinds (compute environments, queues, definitions) live in kopf's indexes. BatchJobs,
their pods and Kubernetes Jobs can number in the hundreds of thousands, so those live here instead
(see informer.py): filled by one paginated list at startup (nothing is reconciled or scheduled
before it completes, so the quota is counted in full after any restart), then kept current by watch
events and by Barge's own writes. A version never replaces a newer one (etcd revisions are integers),
so a stale event cannot undo a placement Barge has just written.

Decisions are assumed here before they are written, as Kueue's scheduler assumes a workload in its
cache before the API call: an admission (written by the next scheduling pass) and a placement (its
Kubernetes Job is created first; STARTING is written with the pod's first report). Every reader
sees a job through `effective`; a failed write puts the decision back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from barge.controller.records import (
    BoundPod,
    EnvironmentRecord,
    JobKey,
    JobRecord,
    PolicyRecord,
    QueueRecord,
    resource_version,
)
from barge.core import job as rules
from barge.core.jobstatus import JobStatusPatch
from barge.core.lifecycle import KubeJobObservation, PodObservation, observe_kube_job, observe_pod
from barge.core.noderoom import Node
from barge.core.resources import Resources
from barge.core.states import JOB_ID_LABEL, PLACEABLE, RUNNABLE, TERMINAL, UNADMITTED

Index = Mapping[Any, Any]
Placed = tuple[float, JobStatusPatch]  # when it was placed (the injected clock), and the patch to write


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
        # The jobs not finished (a pass looks only at them, however many finished jobs are kept; it
        # orders jobs itself), and the finished ones counted per (queue, state).
        self._live: dict[JobKey, None] = {}
        self._finished: Counter[tuple[str, str]] = Counter()
        self._keys_by_uid: dict[str, JobKey] = {}
        self._dependents: dict[JobKey, set[JobKey]] = {}
        self._dependents_by_id: dict[str, set[JobKey]] = {}  # dependsOn[].jobId (AWS's way)
        self._pods: dict[str, dict[str, tuple[int, PodObservation]]] = {}
        self._kube_jobs: dict[str, dict[str, tuple[int, KubeJobObservation]]] = {}
        self._admissions: dict[JobKey, JobStatusPatch] = {}
        self._placements: dict[JobKey, Placed] = {}
        # Written by the nodepools room: why MANAGED environments cannot work (None: Karpenter's API is
        # served), and each MANAGED environment's (nodes, vCPUs) provisioned.
        self.nodepools_unserved: str | None = None
        self.provisioned: dict[str, tuple[int, int]] = {}
        # Every pod bound to a node and not finished, Barge's or not (the nodes' room): by uid, and
        # what they request per node and per BatchJob (uid: how many bound, their requests).
        self._bound: dict[str, BoundPod] = {}
        self._node_used: dict[str, Resources] = {}
        self._job_bound: dict[str, tuple[int, Resources]] = {}
        self._nodes_seen: dict[str, Node] = {}
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
        """A BatchJob as seen in an event, a list or a write response; never older than what we hold.
        A version already held (the watch's echo of our own write) is not parsed again."""
        metadata = body.get("metadata") or {}
        held = self._jobs.get((str(metadata.get("namespace", "")), str(metadata.get("name", ""))))
        if (held is not None and held.uid == metadata.get("uid")
                and held.resource_version >= resource_version(metadata)):
            return held
        record = JobRecord.from_body(body, like=held)
        key = record.key
        if held is not None:
            self._count_finished(held, -1)
            if held.uid != record.uid:
                self._keys_by_uid.pop(held.uid, None)
        self._jobs[key] = record
        self._count_finished(record, 1)
        self._keys_by_uid[record.uid] = key
        self._index_dependencies(record)
        return record

    def _count_finished(self, record: JobRecord, sign: int) -> None:
        """Keep _live and _finished as they are with `record` added (1) or removed (-1)."""
        if record.state in TERMINAL:
            counted = (record.queue, str(record.state))
            self._finished[counted] += sign
            if not self._finished[counted]:
                del self._finished[counted]
            if sign > 0:
                self._live.pop(record.key, None)
        elif sign > 0:
            self._live.setdefault(record.key)

    def _index_dependencies(self, record: JobRecord) -> None:
        for dependency in record.spec.get("dependsOn") or []:
            name = dependency.get("jobName")
            if name:
                self._dependents.setdefault((record.namespace, str(name)), set()).add(record.key)
            elif dependency.get("jobId"):
                self._dependents_by_id.setdefault(str(dependency["jobId"]), set()).add(record.key)

    def forget(self, key: JobKey) -> None:
        self._admissions.pop(key, None)
        self._placements.pop(key, None)
        record = self._jobs.pop(key, None)
        if record is None:
            return
        self._count_finished(record, -1)
        self._live.pop(key, None)
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
            elif dependency.get("jobId"):
                by_id = self._dependents_by_id.get(str(dependency["jobId"]))
                if by_id is not None:
                    by_id.discard(key)
                    if not by_id:
                        del self._dependents_by_id[str(dependency["jobId"])]

    def live_jobs(self) -> Iterator[JobRecord]:
        """The jobs not SUCCEEDED or FAILED (as written)."""
        jobs = self._jobs
        return (jobs[key] for key in list(self._live))

    def finished_counts(self) -> dict[str, Counter[str]]:
        """SUCCEEDED and FAILED jobs per queue."""
        counts: dict[str, Counter[str]] = {}
        for (queue, state), count in self._finished.items():
            counts.setdefault(queue, Counter())[state] = count
        return counts

    def job(self, key: JobKey) -> JobRecord | None:
        return self._jobs.get(key)

    def jobs(self) -> Iterator[JobRecord]:
        return iter(list(self._jobs.values()))

    def job_key_by_uid(self, uid: str) -> JobKey | None:
        return self._keys_by_uid.get(uid)

    def dependents(self, key: JobKey) -> set[JobKey]:
        record = self._jobs.get(key)
        by_id = self._dependents_by_id.get(record.uid, ()) if record is not None else ()
        return set(self._dependents.get(key, ())) | set(by_id)

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
        if (pod.index is not None or record is None or record.state in TERMINAL
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

    # --- the nodes' room ------------------------------------------------------------------------

    @property
    def nodes_known(self) -> bool:
        """Whether nodes are watched (kopf's index): without them no node limits apply."""
        return "nodes" in self.indexes

    def nodes(self) -> list[Node]:
        index = self.indexes.get("nodes") or {}
        return [n for k in list(index.keys()) if (n := _first(index, k)) is not None]

    def node_changed(self, node: Node) -> bool:
        """Whether what the scheduler reads of the node changed (heartbeats change nothing of it)."""
        if self._nodes_seen.get(node.name) == node:
            return False
        self._nodes_seen[node.name] = node
        return True

    def node_gone(self, name: str) -> None:
        self._nodes_seen.pop(name, None)

    def remember_bound_pod(self, body: Mapping[str, Any], deleted: bool = False) -> bool:
        """Whether room was freed (a pod left its node)."""
        uid = str((body.get("metadata") or {}).get("uid") or "")
        held = self._bound.pop(uid, None)
        if held is not None:
            self._count_bound(held, -1)
        pod = None if deleted else BoundPod.from_body(body)
        if pod is not None:
            self._bound[uid] = pod
            self._count_bound(pod, 1)
        return held is not None and (pod is None or pod.node != held.node)

    def relist_bound_pods(self, items: list[dict[str, Any]]) -> None:
        self._bound.clear()
        self._node_used.clear()
        self._job_bound.clear()
        for body in items:
            self.remember_bound_pod(body)

    def _count_bound(self, pod: BoundPod, sign: int) -> None:
        request = pod.request if sign > 0 else Resources() - pod.request
        used = self._node_used.get(pod.node, Resources()) + request
        if used.is_zero() and sign < 0:
            self._node_used.pop(pod.node, None)
        else:
            self._node_used[pod.node] = used
        if pod.job_id is not None:
            count, held = self._job_bound.get(pod.job_id, (0, Resources()))
            count, held = count + sign, held + request
            if count <= 0:
                self._job_bound.pop(pod.job_id, None)
            else:
                self._job_bound[pod.job_id] = (count, held)

    def node_used(self) -> dict[str, Resources]:
        return self._node_used

    def job_bound(self, job_id: str) -> tuple[int, Resources]:
        """How many of the BatchJob's pods are on a node, and what they request."""
        return self._job_bound.get(job_id, (0, Resources()))

    # --- decisions made, not yet written ------------------------------------------------------

    def assume_admission(self, key: JobKey, patch: JobStatusPatch) -> None:
        self._admissions[key] = patch

    def admission_held(self, key: JobKey) -> bool:
        return key in self._admissions

    def held_admissions(self) -> list[JobKey]:
        return list(self._admissions)

    def take_admission(self, key: JobKey) -> JobStatusPatch | None:
        return self._admissions.pop(key, None)

    def assume_placement(self, key: JobKey, at: float, patch: JobStatusPatch) -> JobStatusPatch:
        """Placed: its admission (if held) is written with the placement, in one patch (returned)."""
        admission = self._admissions.pop(key, None) or {}
        placed: JobStatusPatch = {**admission, **patch}
        self._placements[key] = (at, placed)
        return placed

    def placement_assumed(self, key: JobKey) -> bool:
        return key in self._placements

    def assumed_placement(self, key: JobKey) -> Placed | None:
        return self._placements.get(key)

    def take_placement(self, key: JobKey) -> Placed | None:
        return self._placements.pop(key, None)

    def drop_placement(self, key: JobKey, placed: Placed) -> None:
        """The write that carried this placement is remembered: it is no longer only assumed."""
        if self._placements.get(key) is placed:
            del self._placements[key]

    def placements_due(self, placed_before: float) -> list[JobKey]:
        return [key for key, (at, _) in self._placements.items() if at <= placed_before]

    def placed_times(self) -> Iterator[tuple[JobKey, float]]:
        return ((key, at) for key, (at, _) in self._placements.items())

    def adopt_placement(self, record: JobRecord) -> bool:
        """A RUNNABLE one-pod job (its admission written, or held) whose Kubernetes Job exists was
        placed by an operator that stopped before writing it: the placement is taken from the Job
        (its annotation), to be written as any other. Whether one was adopted."""
        record = self.effective(record)
        if record.state != RUNNABLE or record.key in self._placements or rules.array_size(record):
            return False
        kube_job = next((j for j in self.kube_jobs(record.uid) if j.attempt == record.attempt and j.environment),
                        None)
        if kube_job is None:
            return False
        self.assume_placement(record.key, 0.0, rules.placement_patch(kube_job.environment, kube_job.name))
        return True

    def adopt_placements(self) -> int:
        """adopt_placement for every job, once the startup list is complete (jobs whose admission was
        not written are adopted when they are admitted again). How many were adopted."""
        return sum(self.adopt_placement(record) for record in list(self._jobs.values()))

    def waits_as_written(self, record: JobRecord) -> bool:
        """A RUNNABLE job with nothing assumed: most of a deep queue. Cheap to tell, so a pass over
        100,000 jobs skips `effective` for them."""
        return record.status.get("state") == RUNNABLE and record.key not in self._placements

    def effective(self, record: JobRecord) -> JobRecord:
        """The job as decided: with its admission and placement even when they are not written yet."""
        state = record.state
        if state not in PLACEABLE:
            return record
        admission = self._admissions.get(record.key) if state in UNADMITTED else None
        placed = self._placements.get(record.key)
        if admission is None and placed is None:
            return record
        status = {**record.status, **(admission or {}), **(placed[1] if placed else {})}
        return dataclasses.replace(record, status=status)

    # --- the small kinds, from kopf's indexes -------------------------------------------------

    def definition(self, namespace: str, name: str) -> dict[str, Any] | None:
        spec: dict[str, Any] | None = _first(self.indexes.get("jobdefinitions"), (namespace, name))
        return spec

    def environment(self, name: str) -> EnvironmentRecord | None:
        record: EnvironmentRecord | None = _first(self.indexes.get("computeenvironments"), name)
        return self._as_served(record)

    def environments(self) -> list[EnvironmentRecord]:
        index = self.indexes.get("computeenvironments") or {}
        return [r for k in list(index.keys()) if (r := self._as_served(_first(index, k))) is not None]

    def _as_served(self, record: EnvironmentRecord | None) -> EnvironmentRecord | None:
        """A MANAGED environment is INVALID while Karpenter's NodePool API is not served (the
        nodepools room finds out, by discovery)."""
        if record is None or not record.managed or record.invalid_reason or self.nodepools_unserved is None:
            return record
        return dataclasses.replace(record, invalid_reason=self.nodepools_unserved)

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        labels: dict[str, str] | None = _first(self.indexes.get("namespaces"), name)
        return labels

    def queue(self, name: str) -> QueueRecord | None:
        record: QueueRecord | None = _first(self.indexes.get("jobqueues"), name)
        return record

    def queues(self) -> list[QueueRecord]:
        index = self.indexes.get("jobqueues") or {}
        return [r for k in list(index.keys()) if (r := _first(index, k)) is not None]

    def policy(self, name: str) -> PolicyRecord | None:
        record: PolicyRecord | None = _first(self.indexes.get("schedulingpolicies"), name)
        return record

    def policies(self) -> list[PolicyRecord]:
        index = self.indexes.get("schedulingpolicies") or {}
        return [r for k in list(index.keys()) if (r := _first(index, k)) is not None]
