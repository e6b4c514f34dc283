"""What the fault tests watch while they break things: every Kubernetes Job and pod Barge creates in
a namespace (by uid, so a re-created object shows even when its name is the same), and the CPU that
each compute environment's live pods request at every sampled instant.

Two sources, so nothing slips between samples: a watch per kind (pods, Jobs) records every object
that ever existed, and a sampler lists the namespace's live pods every `interval` seconds, which
gives a consistent snapshot of one instant for the quota. Bodies are read as plain JSON (typed
objects cost the shared 2-core machine a lot more at a thousand jobs). Every loop is bounded in time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import kubernetes

from barge.core.resources import parse_cpu_milli
from barge.core.states import (
    ARRAY_INDEX_LABEL,
    ATTEMPT_LABEL,
    ENVIRONMENT_ANNOTATION,
    ENVIRONMENT_LABEL,
    JOB_ID_LABEL,
)
from tests.e2e.kube import Cluster

TERMINAL_PHASES = ("Succeeded", "Failed")
WATCH_SECONDS = 5  # each watch ends after this long, so a stop is seen within it


@dataclass(frozen=True)
class Breach:
    at: float          # seconds since the observer started
    environment: str
    used_milli: int
    max_milli: int
    pods: tuple[str, ...]


class Observer:
    """A context manager: records from __enter__ until __exit__ (or `limit_seconds`, whichever first)."""

    def __init__(self, cluster: Cluster, namespace: str, quotas_milli: dict[str, int], interval: float = 0.2,
                 limit_seconds: float = 3600) -> None:
        self.namespace = namespace
        self.quotas = quotas_milli
        self.interval = interval
        self.limit_seconds = limit_seconds
        # A client of its own: the watches hold connections for seconds at a time.
        api = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
        self.core = kubernetes.client.CoreV1Api(api)
        self.batch = kubernetes.client.BatchV1Api(api)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        # (job id, attempt label or None for an array's Job) -> uids / names of the Kubernetes Jobs
        self.job_uids: dict[tuple[str, str | None], set[str]] = defaultdict(set)
        # (job id, attempt) -> (compute environment, creationTimestamp) of its Kubernetes Job
        self.job_placements: dict[tuple[str, str | None], tuple[str | None, str | None]] = {}
        # pod name -> uids; (job id, attempt, array index or None) -> uids of the pods of that attempt
        self.pod_uids: dict[str, set[str]] = defaultdict(set)
        self.attempt_pods: dict[tuple[str, str | None, str | None], set[str]] = defaultdict(set)
        self.unplaced_pods: set[str] = set()  # live pods without the compute-environment label
        self.samples = 0
        self.live = 0  # live pods in the last sample
        self.peak_milli: dict[str, int] = defaultdict(int)
        self.breaches: list[Breach] = []
        self.errors: list[str] = []
        self.watch_relists: dict[str, int] = defaultdict(int)

    # --- recording -------------------------------------------------------------------------------
    def record(self, kind: str, body: dict[str, Any]) -> None:
        metadata = body.get("metadata") or {}
        labels = metadata.get("labels") or {}
        job_id, uid, name = labels.get(JOB_ID_LABEL), metadata.get("uid"), metadata.get("name")
        if not job_id or not uid or not name:
            return
        with self._lock:
            if kind == "jobs":
                key = (job_id, labels.get(ATTEMPT_LABEL))
                self.job_uids[key].add(uid)
                environment = (metadata.get("annotations") or {}).get(ENVIRONMENT_ANNOTATION)
                self.job_placements[key] = (environment or labels.get(ENVIRONMENT_LABEL),
                                            metadata.get("creationTimestamp"))
            else:
                self.pod_uids[name].add(uid)
                self.attempt_pods[(job_id, labels.get(ATTEMPT_LABEL), labels.get(ARRAY_INDEX_LABEL))].add(uid)

    def _list(self, kind: str, live_only: bool = False) -> dict[str, Any]:
        lister: Any = self.core.list_namespaced_pod if kind == "pods" else self.batch.list_namespaced_job
        fields = ",".join(f"status.phase!={phase}" for phase in TERMINAL_PHASES) if live_only else None
        response = lister(self.namespace, label_selector=JOB_ID_LABEL, field_selector=fields,
                          _preload_content=False, _request_timeout=30)
        page: dict[str, Any] = json.loads(response.data)
        return page

    def sweep(self) -> None:
        """One list of each kind, recorded (the last look, once the run is over)."""
        for kind in ("pods", "jobs"):
            for item in self._list(kind)["items"]:
                self.record(kind, item)

    # --- the sampler -----------------------------------------------------------------------------
    def _sample_once(self) -> None:
        """One consistent list of the live pods (finished ones stay until their Job's TTL: not sent)."""
        items = self._list("pods", live_only=True)["items"]
        used: dict[str, int] = defaultdict(int)
        holders: dict[str, list[str]] = defaultdict(list)
        for pod in items:
            self.record("pods", pod)
            if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
                continue
            name = pod["metadata"]["name"]
            environment = (pod["metadata"].get("labels") or {}).get(ENVIRONMENT_LABEL)
            if environment is None:
                with self._lock:
                    self.unplaced_pods.add(name)
                continue
            spec = pod.get("spec") or {}
            for container in spec.get("containers") or []:
                requests = (container.get("resources") or {}).get("requests") or {}
                used[environment] += parse_cpu_milli(requests.get("cpu", "0"))
            holders[environment].append(name)
        at = time.monotonic() - self._started
        with self._lock:
            self.samples += 1
            self.live = sum(len(names) for names in holders.values())
            for environment, milli in used.items():
                self.peak_milli[environment] = max(self.peak_milli[environment], milli)
                limit = self.quotas.get(environment)
                if limit is not None and milli > limit:
                    self.breaches.append(Breach(at, environment, milli, limit, tuple(sorted(holders[environment]))))

    def _sample(self) -> None:
        deadline = self._started + self.limit_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            began = time.monotonic()
            try:
                self._sample_once()
            except Exception as exc:  # the apiserver is busy: the next sample will do
                self.errors.append(f"sample: {exc!r}"[:300])
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    # --- the watches -----------------------------------------------------------------------------
    def _watch(self, kind: str) -> None:
        lister = self.core.list_namespaced_pod if kind == "pods" else self.batch.list_namespaced_job
        deadline = self._started + self.limit_seconds
        version = ""
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if not version:
                    page = self._list(kind)
                    for item in page["items"]:
                        self.record(kind, item)
                    version = str(page["metadata"]["resourceVersion"])
                    self.watch_relists[kind] += 1
                version = self._follow(lister, kind, version)
            except Exception as exc:
                self.errors.append(f"watch {kind}: {exc!r}"[:300])
                self._stop.wait(0.5)

    def _follow(self, lister: Any, kind: str, version: str) -> str:
        """One watch from `version` until the server ends it; returns where to resume ("" = list again)."""
        response = lister(self.namespace, label_selector=JOB_ID_LABEL, watch=True, resource_version=version,
                          allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, _preload_content=False,
                          _request_timeout=(10, WATCH_SECONDS + 20))
        try:
            pending = b""
            for chunk in response.stream(amt=None, decode_content=False):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    body = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        return "" if body.get("code") == 410 else version
                    version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") != "BOOKMARK":
                        self.record(kind, body)
            return version
        finally:
            response.close()
            response.release_conn()

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    # --- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> Observer:
        self._started = time.monotonic()
        for target, args in ((self._sample, ()), (self._watch, ("pods",)), (self._watch, ("jobs",))):
            thread = threading.Thread(target=target, args=args, daemon=True, name=f"observer-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WATCH_SECONDS + 30)

    # --- what it saw -----------------------------------------------------------------------------
    def duplicates(self) -> list[str]:
        """Every object created twice: a Kubernetes Job of one attempt (or an array's one Job) with more
        than one uid, a pod name with more than one uid, an attempt (or a child's attempt) with more
        than one pod."""
        found = []
        with self._lock:
            for (job_id, attempt), uids in sorted(self.job_uids.items(), key=str):
                if len(uids) > 1:
                    what = f"attempt {attempt}" if attempt else "the array"
                    found.append(f"{len(uids)} Kubernetes Jobs for {what} of job {job_id}")
            for name, uids in sorted(self.pod_uids.items()):
                if len(uids) > 1:
                    found.append(f"pod {name} created {len(uids)} times")
            for (job_id, attempt, index), uids in sorted(self.attempt_pods.items(), key=str):
                if len(uids) > 1:
                    child = f" child {index}" if index is not None else ""
                    found.append(f"{len(uids)} pods for job {job_id}{child} attempt {attempt}")
        return found

    def attempts_of(self, job_id: str) -> dict[str | None, set[int]]:
        """Attempt numbers seen in pods, by array index (None for a one-pod job)."""
        seen: dict[str | None, set[int]] = defaultdict(set)
        with self._lock:
            for (owner, attempt, index) in self.attempt_pods:
                if owner == job_id and attempt is not None:
                    seen[index].add(int(attempt))
        return seen

    def placement_of(self, job_id: str, attempt: str | None) -> tuple[str | None, str | None]:
        """Where the Kubernetes Job of that attempt sends its pod, and when it was created."""
        with self._lock:
            return self.job_placements.get((job_id, attempt), (None, None))

    def job_attempts_of(self, job_id: str) -> set[str | None]:
        """Attempt labels of the Kubernetes Jobs seen for a job (None: an array's one Job)."""
        with self._lock:
            return {attempt for (owner, attempt) in self.job_uids if owner == job_id}
