"""List and watch the kinds that come by the hundred thousand: BatchJobs, their Jobs and pods.

kopf keeps a memory of about 2 KB per watched object for as long as it exists and runs every event
through its per-object handler machinery: at 100,000 waiting BatchJobs that was a quarter of a
gigabyte, and at a thousand dispatches a second most of the operator's CPU. These kinds need
neither: they are listed once, page by page, into the store, then followed by one plain watch per
kind and namespace. Each watch runs in a thread of its own that parses the stream and hands the
loop a chunk of events at a time. An expired watch (410 Gone) is listed again and the difference
handed over as events, so the store converges whatever was missed. kopf keeps the few, small kinds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from barge import metrics
from barge.kube import Kube

log = logging.getLogger("barge.informer")
KINDS = ("batchjobs", "jobs", "pods")
RETRY_SECONDS = (1, 2, 5, 10, 30)

# (kind, event type, body); called on the loop, in the order the apiserver sent them.
Handler = Callable[[str, str, dict[str, Any]], None]
# (kind, namespace or None for all, every object listed): called on the loop after a relist.
Relisted = Callable[[str, str | None, list[dict[str, Any]]], None]


class Informer:
    def __init__(self, kube: Kube, namespaces: tuple[str, ...], handle: Handler, relisted: Relisted) -> None:
        self.kube = kube
        self.namespaces: tuple[str | None, ...] = namespaces or (None,)
        self._handle = handle
        self._relisted = relisted
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def list_into(self, what: str, remember: Callable[[dict[str, Any]], Any],
                        cluster_wide: bool = False) -> dict[str | None, str]:
        """List one kind into the store a page at a time (a whole list of 100,000 BatchJobs as dicts
        would be half a gigabyte); returns where each namespace's watch starts."""
        versions: dict[str | None, str] = {}
        for namespace in (None,) if cluster_wide else self.namespaces:
            async for items, version in self.kube.list_pages(what, namespace):
                for body in items:
                    remember(body)
                versions[namespace] = version
        return versions

    def follow(self, what: str, versions: dict[str | None, str]) -> None:
        self._loop = asyncio.get_running_loop()
        for namespace, version in versions.items():
            threading.Thread(target=self._follow, args=(what, namespace, version), daemon=True,
                             name=f"watch-{what}-{namespace or 'all'}").start()

    def stop(self) -> None:
        self._stopped.set()

    def _follow(self, what: str, namespace: str | None, version: str) -> None:
        failures = 0
        position = [version]

        def deliver(events: list[dict[str, Any]], at: str) -> None:
            position[0] = at
            if events:
                self._post(self._apply, what, events)

        while not self._stopped.is_set():
            try:
                if not position[0]:
                    metrics.WATCH_RELISTS.labels(what).inc()
                    items, position[0] = self.kube.list_all_blocking(what, namespace)
                    log.warning("the watch of %s in %s expired; listed %d again", what,
                                namespace or "all namespaces", len(items))
                    self._post(self._apply_relist, what, namespace, items)
                position[0] = self.kube.watch_blocking(what, namespace, position[0], deliver,
                                                       self._stopped.is_set)
                failures = 0
            except Exception as exc:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("watch of %s in %s failed (%s); resuming in %s s", what, namespace or "all namespaces",
                            exc, delay)
                time.sleep(delay)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop has closed: the operator is exiting
            self._stopped.set()

    def _apply(self, what: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            try:
                self._handle(what, str(event.get("type")), event.get("object") or {})
            except Exception:
                log.exception("handling a %s event failed", what)

    def _apply_relist(self, what: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        try:
            self._relisted(what, namespace, items)
        except Exception:
            log.exception("applying a relist of %s failed", what)
