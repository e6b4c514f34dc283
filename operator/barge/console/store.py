"""The console's copy of Barge's objects: a list and a watch per kind, kept in memory so a page of
100,000 jobs is answered without listing them from the API server on every request.

The store reads with the console's own identity; what a user may see of it is decided per user by
`access.Access.may` (a SelfSubjectAccessReview with the user's own token) before anything is shown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes

from barge.console import queries
from barge.core.states import GROUP, VERSION

log = logging.getLogger("barge.console")
KINDS = ("batchjobs", "jobqueues", "computeenvironments", "jobdefinitions")
Obj = dict[str, Any]
Listener = Callable[[str, str, Obj], None]


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {kind: {} for kind in KINDS}
        self.synced = {kind: threading.Event() for kind in KINDS}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._sorted: dict[str, tuple[int, list[Obj]]] = {}
        self.version = 0
        self._stop = threading.Event()

    # --- reading -----------------------------------------------------------------------------
    def items(self, kind: str) -> list[Obj]:
        with self._lock:
            return list(self.objects[kind].values())

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects[kind].get((namespace, name))

    def jobs_sorted(self, sort: str) -> list[Obj]:
        """The jobs in `sort` order; sorted again only after a change, so paging is a scan."""
        with self._lock:
            cached = self._sorted.get(sort)
            if cached and cached[0] == self.version:
                return cached[1]
            version, jobs = self.version, list(self.objects["batchjobs"].values())
        ordered = sorted(jobs, key=queries.sort_key(sort), reverse=sort == "newest")
        with self._lock:
            self._sorted[sort] = (version, ordered)
        return ordered

    def namespace_jobs(self, namespace: str) -> list[Obj]:
        with self._lock:
            return [j for (ns, _), j in self.objects["batchjobs"].items() if ns == namespace]

    # --- changes -----------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def apply(self, kind: str, event: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        k = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            if event == "DELETED":
                self.objects[kind].pop(k, None)
            else:
                self.objects[kind][k] = obj
            if kind == "batchjobs":
                self.version += 1
        for listener in list(self._listeners):
            listener(kind, event, obj)

    def replace(self, kind: str, items: list[Obj]) -> None:
        with self._lock:
            self.objects[kind] = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in items}
            self.version += 1
        self.synced[kind].set()
        for listener in list(self._listeners):
            listener(kind, "RELISTED", {})

    # --- feeding it from the API server ------------------------------------------------------
    def start(self, api_client: Any) -> None:
        for kind in KINDS:
            threading.Thread(target=self._follow, args=(api_client, kind), name=f"console-watch-{kind}",
                             daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self, api_client: Any, kind: str) -> None:
        custom: Any = kubernetes.client.CustomObjectsApi(api_client)
        while not self._stop.is_set():
            try:
                listed: Any = custom.list_cluster_custom_object(GROUP, VERSION, kind)
                self.replace(kind, listed.get("items", []))
                version = listed["metadata"]["resourceVersion"]
                watch = kubernetes.watch.Watch()
                for event in watch.stream(custom.list_cluster_custom_object, GROUP, VERSION, kind,
                                          resource_version=version, timeout_seconds=300,
                                          allow_watch_bookmarks=True):
                    if self._stop.is_set():
                        watch.stop()
                        return
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self.apply(kind, event["type"], event["object"])
            except Exception as exc:  # a watch that expired or an API server that went away: list again
                log.warning("watching %s: %s; listing again", kind, type(exc).__name__)
                self.synced[kind].clear()
                time.sleep(2)


async def wait_synced(store: Store, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not all(e.is_set() for e in store.synced.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
