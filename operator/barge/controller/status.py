"""The one writer of status: BatchJobs' (with what the store assumed), compute environments' and
queues' (only when changed), the Events that tell each change, and the state-transition metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from barge import metrics
from barge.config import Settings
from barge.controller.records import JobKey, JobRecord
from barge.controller.store import Store
from barge.core import arrays
from barge.core import job as rules
from barge.core.jobstatus import JobStatusPatch
from barge.core.states import (
    ENABLED,
    FAILED,
    PLACEABLE,
    RUNNING,
    STARTING,
    STATE_REASONS,
    SUCCEEDED,
    TERMINAL,
    VALID,
)
from barge.core.times import parse_time
from barge.kube import Kube

log = logging.getLogger("barge.status")


class StatusWriter:
    def __init__(self, settings: Settings, kube: Kube, store: Store, clock: Callable[[], float],
                 forget: Callable[[JobKey], None], finished: Callable[[JobRecord], None]) -> None:
        self.settings = settings
        self.kube = kube
        self.store = store
        self.clock = clock
        self._forget = forget  # the job is gone from the API
        self._finished = finished  # the job has just become SUCCEEDED or FAILED
        self._written: dict[tuple[str, str], dict[str, Any]] = {}  # queues' and environments' last status

    # --- BatchJobs -------------------------------------------------------------------------------

    async def write(self, record: JobRecord, patch: JobStatusPatch) -> JobRecord | None:
        """Patch a job's status, with its assumed placement if that is not written yet; emit an Event
        on a state change; remember the result. None: the job is gone. The placement stays assumed
        until the write is remembered, so a pass during the write still charges the job."""
        placed = self.store.assumed_placement(record.key)
        if placed is not None:
            patch = {**placed[1], **patch}
        written = await self._write(record, patch)
        if placed is not None:
            self.store.drop_placement(record.key, placed)
        return written

    async def _write(self, record: JobRecord, patch: JobStatusPatch) -> JobRecord | None:
        patch = rules.stamp(record, patch, self.clock())
        if "arrayProperties" in patch:
            patch["arrayProperties"] = arrays.replacing(record.status.get("arrayProperties") or {},
                                                        patch["arrayProperties"])
        body = await self.kube.patch_status("BatchJob", record.name, dict(patch), record.namespace)
        if body is None:
            self._forget(record.key)
            return None
        updated = self.store.remember(body)
        new_state = patch.get("state")
        if new_state and new_state != record.state:
            self.announce(record, new_state, patch)
            if new_state in TERMINAL:
                self._finished(updated)
        return updated

    def announce(self, record: JobRecord, new_state: str, patch: JobStatusPatch) -> None:
        """Metrics and an Event for a state change (also for one decided but not yet written)."""
        self._count_transition(record, new_state)
        message = patch.get("statusReason", "")
        if record.state in PLACEABLE and new_state == STARTING and "queuedAt" in patch:
            message = f"Admitted to job queue '{record.queue}' (RUNNABLE) and {message[0].lower()}{message[1:]}"
        if self.settings.events:
            kind = "Warning" if new_state == FAILED else "Normal"
            self.kube.post_event(record.reference(), kind, STATE_REASONS.get(new_state, new_state), message)

    def _count_transition(self, record: JobRecord, state: str) -> None:
        queue = record.queue
        if record.state is None and state != FAILED:
            metrics.SUBMITTED.labels(queue).inc()
        elif state == SUCCEEDED:
            metrics.SUCCEEDED.labels(queue).inc()
        elif state == FAILED:
            metrics.FAILED.labels(queue).inc()
        elif state == RUNNING:
            created = parse_time(record.status.get("createdAt"))
            if created is not None:
                metrics.WAIT_SECONDS.labels(queue).observe(max(0.0, self.clock() - created))

    # --- compute environments and queues ---------------------------------------------------------

    async def write_if_changed(self, kind: str, record: Any, status: dict[str, Any]) -> None:
        """A queue's or environment's status, written only when it differs from the last one written;
        an Event when its state or validity changes."""
        cache_key = (kind, record.name)
        previous = self._written.get(cache_key)
        if previous == status:
            return
        self._validity_event(kind, record, previous or record.status, status)
        try:
            body = await self.kube.patch_status(kind, record.name, status)
        except Exception as exc:
            log.warning("status of %s %s not written: %s", kind, record.name, exc)
            return
        if body is not None:
            self._written[cache_key] = status

    def _validity_event(self, kind: str, record: Any, seen: dict[str, Any], status: dict[str, Any]) -> None:
        if not self.settings.events:
            return
        for field in ("state", "status"):
            old, new = seen.get(field), status.get(field)
            if old and new and old != new:
                self.kube.post_event(record.reference(), "Normal" if new in (ENABLED, VALID) else "Warning",
                                     f"{kind}{new.capitalize()}",
                                     f"{kind} {record.name} is now {new}: {status.get('statusReason', '')}")
