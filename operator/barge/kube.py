"""All Kubernetes API writes of the operator, in one place.

kopf watches and indexes; this module writes. The official client is synchronous, so calls run
in a bounded thread pool sized like the client's connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
from kubernetes.client.rest import ApiException

from barge import metrics
from barge.api.models import GROUP, VERSION

log = logging.getLogger("barge.kube")
MERGE_PATCH = "application/merge-patch+json"
# Events wait while job writes are queued, at most this long each, and at most this many at once.
EVENT_DELAY_SECONDS = 5.0
EVENT_BACKLOG = 10_000
PLURALS = {"BatchJob": "batchjobs", "ComputeEnvironment": "computeenvironments", "JobQueue": "jobqueues"}


def _drained(fn: Any) -> Any:
    def call(*args: Any) -> None:
        response = fn(*args, _preload_content=False)
        try:
            response.read()
        finally:
            response.release_conn()
    return call


class Kube:
    def __init__(self, concurrency: int = 16) -> None:
        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = concurrency
        self._api = kubernetes.client.ApiClient(configuration)
        self.custom = kubernetes.client.CustomObjectsApi(self._api)
        self.batch = kubernetes.client.BatchV1Api(self._api)
        self.core = kubernetes.client.CoreV1Api(self._api)
        self._background: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube")
        self._limit = asyncio.Semaphore(concurrency)
        # Events tell the story but gate nothing: a few at a time, and only once the job writes
        # queued ahead of them are done (or after EVENT_DELAY_SECONDS), so a burst of dispatches
        # does not share the apiserver with its own Events.
        self._event_limit = asyncio.Semaphore(max(1, concurrency // 8))
        self._writes_queued = 0
        self._no_writes_queued = asyncio.Event()
        self._no_writes_queued.set()
        self._events_waiting = 0

    async def _call(self, verb: str, resource: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        metrics.API_REQUESTS.labels(verb, resource).inc()
        is_job_write = resource != "events" and verb != "list"
        if is_job_write:
            self._writes_queued += 1
            self._no_writes_queued.clear()
        try:
            async with self._limit:
                loop = asyncio.get_running_loop()
                try:
                    return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
                except ApiException as exc:
                    metrics.API_ERRORS.labels(verb, str(exc.status)).inc()
                    raise
        finally:
            if is_job_write:
                self._writes_queued -= 1
                if not self._writes_queued:
                    self._no_writes_queued.set()

    async def list_all(self, what: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every BatchJob, or every pod or Job carrying the job-id label, as plain dicts, paginated."""
        selector = "" if what == "batchjobs" else "barge.dev/job-id"
        items: list[dict[str, Any]] = []
        for namespace in namespaces or (None,):
            token = None
            while True:
                page = await self._call("list", what, self._list_page, what, namespace, selector, token)
                items += page["items"]
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
        return items

    def _list_page(self, what: str, namespace: str | None, selector: str, token: str | None) -> dict[str, Any]:
        response: Any
        options: dict[str, Any] = {"limit": 2000, "_continue": token, "label_selector": selector,
                                   "_preload_content": False}
        if what == "batchjobs":
            response = (self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, what, **options)
                        if namespace else self.custom.list_cluster_custom_object(GROUP, VERSION, what, **options))
        elif what == "pods":
            response = (self.core.list_namespaced_pod(namespace, **options) if namespace
                        else self.core.list_pod_for_all_namespaces(**options))
        else:
            response = (self.batch.list_namespaced_job(namespace, **options) if namespace
                        else self.batch.list_job_for_all_namespaces(**options))
        page: dict[str, Any] = json.loads(response.data)
        return page

    async def patch_status(self, kind: str, name: str, status: dict[str, Any],
                           namespace: str | None = None) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None when the object is gone."""
        body = {"status": status}
        plural = PLURALS[kind]
        try:
            if namespace is None:
                return await self._call(
                    "patch", plural, self.custom.patch_cluster_custom_object_status,
                    GROUP, VERSION, plural, name, body, _content_type=MERGE_PATCH)
            return await self._call(
                "patch", plural, self.custom.patch_namespaced_custom_object_status,
                GROUP, VERSION, namespace, plural, name, body, _content_type=MERGE_PATCH)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _create(self, resource: str, fn: Any, manifest: dict[str, Any]) -> bool:
        """Create an object; False when one of that name already exists (names are deterministic)."""
        try:
            # The response is not needed: reading it raw skips building the client's model objects,
            # which costs more CPU than the request itself.
            await self._call("create", resource, _drained(fn), manifest["metadata"]["namespace"], manifest)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    async def create_job(self, manifest: dict[str, Any]) -> bool:
        return await self._create("jobs", self.batch.create_namespaced_job, manifest)

    async def create_job_returning(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a Kubernetes Job, or read the one of that name; returns its body."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            created = await self._call("create", "jobs", self.batch.create_namespaced_job, namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise
            created = await self._call("get", "jobs", self.batch.read_namespaced_job, name, namespace)
        return self._api.sanitize_for_serialization(created)

    async def create_pod(self, manifest: dict[str, Any]) -> bool:
        return await self._create("pods", self.core.create_namespaced_pod, manifest)

    async def delete_pod(self, namespace: str, name: str) -> None:
        try:
            await self._call("delete", "pods", self.core.delete_namespaced_pod, name, namespace,
                             grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self._call("delete", "jobs", self.batch.delete_namespaced_job, name, namespace,
                             propagation_policy="Background", grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def delete_batchjob(self, namespace: str, name: str) -> None:
        try:
            await self._call("delete", "batchjobs", self.custom.delete_namespaced_custom_object,
                             GROUP, VERSION, namespace, "batchjobs", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def post_event(self, reference: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Post a Kubernetes Event in the background; a lost Event never blocks a job."""
        if self._events_waiting >= EVENT_BACKLOG:
            metrics.EVENTS_DROPPED.inc()
            return
        task = asyncio.get_running_loop().create_task(self._post_event(reference, kind, reason, message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_event(self, reference: dict[str, Any], kind: str, reason: str, message: str) -> None:
        metadata = reference["metadata"]
        namespace = metadata.get("namespace") or "default"
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "metadata": {"generateName": f"{metadata['name']}.", "namespace": namespace},
            "involvedObject": {"apiVersion": reference["apiVersion"], "kind": reference["kind"],
                               "name": metadata["name"], "namespace": metadata.get("namespace"),
                               "uid": metadata.get("uid")},
            "type": kind, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "barge-operator"}, "reportingComponent": "barge.dev/operator",
        }
        self._events_waiting += 1
        try:
            async with self._event_limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._no_writes_queued.wait(), EVENT_DELAY_SECONDS)
                await self._call("create", "events", _drained(self.core.create_namespaced_event), namespace, body)
        except Exception as exc:
            log.debug("event not posted: %s", exc)
        finally:
            self._events_waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()
