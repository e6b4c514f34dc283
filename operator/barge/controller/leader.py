"""Leader election on a coordination.k8s.io Lease, so that only one replica ever schedules.

The rules follow client-go's leaderelection: a lease held by someone else is taken over only after
it has not changed for leaseDuration *as observed by this process's own clock* (no trust in other
machines' clocks); the leader renews every retry period and exits the process if it could not renew
for renewDeadline, before anyone else may take over; on a clean shutdown it releases the lease so a
standby takes over within one retry period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from barge import metrics

log = logging.getLogger(__name__)
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Record:
    holder: str | None
    renew_time: str | None
    transitions: int


def may_take(record: Record | None, identity: str, unchanged_for: float, lease_seconds: float) -> bool:
    """Whether `identity` may write itself into the lease, which this process has seen unchanged for
    `unchanged_for` seconds of its own clock."""
    if record is None or not record.holder or record.holder == identity:
        return True
    return unchanged_for >= lease_seconds


def default_namespace() -> str:
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip()
    except OSError:
        return "default"


def default_identity() -> str:
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(self, api: Any, namespace: str, name: str, identity: str, lease_seconds: float = 15,
                 renew_deadline: float = 10, retry_period: float = 2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_deadline, self.retry_period = lease_seconds, renew_deadline, retry_period
        self.clock = clock
        self._observed: Record | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()

    @classmethod
    def in_cluster(cls, namespace: str, name: str, lease_seconds: float) -> LeaderElector:
        client = kubernetes.client.ApiClient(kubernetes.client.Configuration.get_default_copy())
        return cls(kubernetes.client.CoordinationV1Api(client), namespace, name, default_identity(),
                   lease_seconds=lease_seconds, renew_deadline=lease_seconds * 2 / 3,
                   retry_period=max(1.0, lease_seconds / 7))

    def try_acquire_or_renew(self) -> bool:
        now_wall = dt.datetime.now(dt.UTC)
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("reading lease %s/%s: %s", self.namespace, self.name, exc.reason)
                return False
            return self._create(now_wall)
        spec = lease.spec
        record = Record(spec.holder_identity, str(spec.renew_time), spec.lease_transitions or 0)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        if not may_take(record, self.identity, self.clock() - self._observed_at, self.lease_seconds):
            return False
        if spec.holder_identity != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + (1 if spec.holder_identity else 0)
            spec.acquire_time = now_wall
        spec.holder_identity = self.identity
        spec.renew_time = now_wall
        spec.lease_duration_seconds = int(self.lease_seconds)
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)  # resourceVersion guards races
        except ApiException as exc:
            if exc.status != 409:
                log.warning("updating lease %s/%s: %s", self.namespace, self.name, exc.reason)
            return False
        return True

    def _create(self, now: dt.datetime) -> bool:
        body = kubernetes.client.V1Lease(
            metadata=kubernetes.client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=kubernetes.client.V1LeaseSpec(holder_identity=self.identity, acquire_time=now, renew_time=now,
                                               lease_duration_seconds=int(self.lease_seconds),
                                               lease_transitions=0))
        try:
            self.api.create_namespaced_lease(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                log.warning("creating lease %s/%s: %s", self.namespace, self.name, exc.reason)
            return False
        return True

    def acquire(self) -> None:
        """Block until this process holds the lease."""
        log.info("waiting to lead: lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not self.try_acquire_or_renew():
            time.sleep(self.retry_period)
        metrics.LEADER.set(1)
        log.info("leading: lease %s/%s as %s", self.namespace, self.name, self.identity)

    def keep_renewing(self, on_lost: Callable[[], None]) -> threading.Thread:
        def loop() -> None:
            renewed = self.clock()
            while not self._stop.wait(self.retry_period):
                if self.try_acquire_or_renew():
                    renewed = self.clock()
                elif self.clock() - renewed > self.renew_deadline:
                    metrics.LEADER.set(0)
                    log.error("lost the lease %s/%s (not renewed for %.0fs)", self.namespace, self.name,
                              self.clock() - renewed)
                    on_lost()
                    return

        thread = threading.Thread(target=loop, name="leader-election", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Hand the lease back so a standby takes over at once."""
        self._stop.set()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
            metrics.LEADER.set(0)
            log.info("released the lease %s/%s", self.namespace, self.name)
        except ApiException as exc:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, exc.reason)
