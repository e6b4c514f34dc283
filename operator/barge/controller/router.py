"""Events in, reconciles out: watch events of BatchJobs, their Jobs and pods (from the informer)
update the store and ask for a reconcile of the job they concern; requests for one job that arrive
before its reconcile starts share it; each job is reconciled under its own lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from barge.controller.records import JobKey
from barge.controller.store import Store
from barge.core import job as rules
from barge.core.states import ARRAY_INDEX_LABEL, JOB_ID_LABEL, PENDING

log = logging.getLogger("barge.router")
ARRAY_COALESCE_SECONDS = 0.25  # how long an array's pod events gather before one look at the array


class KeyedLocks:
    """One lock per job, kept only while it is held or awaited: 100,000 waiting jobs would otherwise
    keep 100,000 locks."""

    def __init__(self) -> None:
        self._held: dict[JobKey, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._held)

    @contextlib.asynccontextmanager
    async def __call__(self, key: JobKey) -> AsyncIterator[None]:
        lock, users = self._held.get(key) or (asyncio.Lock(), 0)
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)


def _label(body: dict[str, Any], name: str) -> str | None:
    return ((body.get("metadata") or {}).get("labels") or {}).get(name)


def _finished_array_child(pod: dict[str, Any]) -> bool:
    return _label(pod, ARRAY_INDEX_LABEL) is not None and (pod.get("status") or {}).get("phase") in (
        "Succeeded", "Failed")


class Router:
    def __init__(self, store: Store, kick: Callable[[], None], forget: Callable[[JobKey], None]) -> None:
        self.store = store
        self.kick = kick  # a scheduling pass is due
        self.forget = forget
        self.reconcile: Callable[[JobKey], Awaitable[None]] | None = None  # set once the job room exists
        self._requested: set[JobKey] = set()
        self._coalescing: set[JobKey] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, what: str, kind: str, body: dict[str, Any]) -> None:
        deleted = kind == "DELETED"
        if what == "batchjobs":
            metadata = body.get("metadata") or {}
            key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
            if deleted:
                self.forget(key)
            else:
                # Also the echo of Barge's own write: some steps (an array's first children) follow it.
                held = self.store.job(key)
                record = self.store.remember(body)
                self.request_reconcile(key)
                if held is not None and record.generation != held.generation:
                    self.kick()  # a spec edit (a priority override, an array's maxParallel) reorders the queue
            return
        remember = self.store.remember_pod if what == "pods" else self.store.remember_kube_job
        job_id = remember(body, deleted=deleted)
        if what == "pods" and _finished_array_child(body):
            self.kick()  # its capacity is free now: the next pass may place another child there
        owner = self.store.job_key_by_uid(job_id or "")
        if owner is not None:
            self.owned_changed(owner)

    def on_relist(self, what: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A watch expired and its kind was listed again: what is gone is forgotten, the rest is
        handled as if just modified."""
        if what == "batchjobs":
            listed_jobs = {((b.get("metadata") or {}).get("namespace"), (b.get("metadata") or {}).get("name"))
                           for b in items}
            for record in self.store.jobs():
                if (namespace is None or record.namespace == namespace) and record.key not in listed_jobs:
                    self.forget(record.key)
        else:
            listed = {(_label(b, JOB_ID_LABEL), (b.get("metadata") or {}).get("name")) for b in items}
            for job_id, name in self.store.owned_names(what, namespace) - listed:
                self.store.forget_owned(what, job_id, name)
                key = self.store.job_key_by_uid(job_id)
                if key is not None:
                    self.owned_changed(key)
        for body in items:
            self.on_event(what, "MODIFIED", body)

    def owned_changed(self, key: JobKey) -> None:
        """A pod or Kubernetes Job of this BatchJob changed. An array's children report by the
        hundred per second and each look at an array costs time in its size, so one look every
        ARRAY_COALESCE_SECONDS serves them all; any other job is reconciled at once."""
        record = self.store.job(key)
        if record is None or rules.array_size(record) is None or record.state != PENDING:
            self.request_reconcile(key)
            return
        if key not in self._coalescing:
            self._coalescing.add(key)
            asyncio.get_running_loop().call_later(ARRAY_COALESCE_SECONDS, self._coalesced, key)

    def _coalesced(self, key: JobKey) -> None:
        self._coalescing.discard(key)
        self.request_reconcile(key)

    def request_reconcile(self, key: JobKey) -> None:
        """Reconcile soon; requests for one job that arrive before its reconcile starts share it."""
        if key not in self._requested:
            self._requested.add(key)
            self.spawn(self._reconcile(key))

    def reconcile_later(self, key: JobKey, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self.request_reconcile, key)

    def requested(self) -> set[JobKey]:
        return set(self._requested)

    async def _reconcile(self, key: JobKey) -> None:
        self._requested.discard(key)
        assert self.reconcile is not None
        try:
            await self.reconcile(key)
        except Exception:
            log.exception("reconciling %s/%s failed", *key)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
