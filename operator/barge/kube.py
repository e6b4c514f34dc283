"""The operator's Kubernetes I/O in one place: lists and watches of BatchJobs, their Jobs and pods
(for informer.py), and every write. kopf watches and indexes only the small kinds. The official
client is synchronous, so calls run in a bounded thread pool sized like the client's connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.rest import ApiException

from barge import metrics
from barge.core.states import ATTEMPT_LABEL, GROUP, JOB_ID_LABEL, MANAGED_BY, VERSION

log = logging.getLogger("barge.kube")
MERGE_PATCH = "application/merge-patch+json"
# Events wait while job writes are queued, at most this long each, and at most this many at once.
EVENT_DELAY_SECONDS = 5.0
EVENT_BACKLOG = 10_000
PLURALS = {"BatchJob": "batchjobs", "ComputeEnvironment": "computeenvironments", "JobQueue": "jobqueues",
           "SchedulingPolicy": "schedulingpolicies"}
SMALL_KINDS = ("jobdefinitions", "computeenvironments", "jobqueues", "schedulingpolicies", "namespaces")  # kopf's
BOUND_PODS_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
CLUSTER_KINDS = ("computeenvironments", "jobqueues", "schedulingpolicies", "namespaces")
NODEPOOL_GROUP_VERSION = ("karpenter.sh", "v1")
WATCH_SECONDS = 300  # the server ends each watch after this long; it is resumed from its last version


class WatchError(Exception):
    """The apiserver ended a watch with an error other than an expired version."""


CREATE_PATHS = {"jobs": "/apis/batch/v1/namespaces/{namespace}/jobs", "pods": "/api/v1/namespaces/{namespace}/pods",
                "events": "/api/v1/namespaces/{namespace}/events"}
ARRAY_JOBS_SELECTOR = f"{JOB_ID_LABEL},!{ATTEMPT_LABEL}"  # an array's one Job has no attempt label


class Kube:
    def __init__(self, concurrency: int = 16, kubeconfig: str | None = None) -> None:
        try:
            if kubeconfig:
                raise kubernetes.config.ConfigException("a kubeconfig was given")
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(config_file=kubeconfig)
        configuration = kubernetes.client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = concurrency
        self._api = kubernetes.client.ApiClient(configuration)
        # Watches hold their connection for minutes: a pool of their own keeps writes' pool free.
        watching = kubernetes.client.Configuration.get_default_copy()
        watching.connection_pool_maxsize = 8
        self._watch_api = kubernetes.client.ApiClient(watching)
        client = kubernetes.client
        self._watch_clients = (client.CustomObjectsApi(self._watch_api), client.CoreV1Api(self._watch_api),
                               client.BatchV1Api(self._watch_api))
        self.custom = kubernetes.client.CustomObjectsApi(self._api)
        self.batch = kubernetes.client.BatchV1Api(self._api)
        self.core = kubernetes.client.CoreV1Api(self._api)
        self.apps = kubernetes.client.AppsV1Api(self._api)
        self.scheduling = kubernetes.client.SchedulingV1Api(self._api)
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
                except (urllib3.exceptions.HTTPError, OSError):  # the apiserver unreachable
                    metrics.API_ERRORS.labels(verb, "unreachable").inc()
                    raise
        finally:
            if is_job_write:
                self._writes_queued -= 1
                if not self._writes_queued:
                    self._no_writes_queued.set()

    async def list_pages(self, what: str, namespace: str | None) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
        """Every BatchJob, or every pod or Job carrying the job-id label, of one namespace (None: all),
        page by page as plain dicts, each page with the list's resourceVersion (a watch resumes there)."""
        token, version = None, ""
        while True:
            page = await self._call("list", what, self._list_page, what, namespace, token)
            version = version or str((page.get("metadata") or {}).get("resourceVersion") or "")
            yield page["items"], version
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    async def keys(self, what: str, namespaces: tuple[str, ...]) -> list[Any]:
        """How kopf's index of a small kind keys each object that exists: (namespace, name) for job
        definitions, the name for the cluster-wide compute environments and queues."""
        keys: list[Any] = []
        for namespace in (() if what in CLUSTER_KINDS else namespaces) or (None,):
            async for items, _ in self.list_pages(what, namespace):
                for item in items:
                    metadata = item.get("metadata") or {}
                    keys.append(metadata.get("name") if what in CLUSTER_KINDS
                                else (metadata.get("namespace"), metadata.get("name")))
        return keys

    def list_all_blocking(self, what: str, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        """The same list from a watch's own thread (a relist after the watch expired)."""
        items: list[dict[str, Any]] = []
        token, version = None, ""
        while True:
            metrics.API_REQUESTS.labels("list", what).inc()
            page = self._list_page(what, namespace, token)
            version = version or str((page.get("metadata") or {}).get("resourceVersion") or "")
            items += page["items"]
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, version

    def _lister(self, what: str, namespace: str | None, watch: bool = False) -> tuple[Any, tuple[Any, ...], str]:
        """The client call that lists (or watches) one kind, its positional arguments, and its selector."""
        custom, core, batch = self._watch_clients if watch else (self.custom, self.core, self.batch)
        if what == "namespaces":
            return core.list_namespace, (), ""
        if what in SMALL_KINDS or what == "batchjobs":
            if namespace is None or what in CLUSTER_KINDS:
                return custom.list_cluster_custom_object, (GROUP, VERSION, what), ""
            return custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, what), ""
        if what == "boundpods":  # every pod on a node, for the nodes' room: always cluster-wide
            return core.list_pod_for_all_namespaces, (), ""
        if what == "pods":
            return ((core.list_namespaced_pod, (namespace,), JOB_ID_LABEL) if namespace
                    else (core.list_pod_for_all_namespaces, (), JOB_ID_LABEL))
        # Jobs are listed in full (a restarted operator adopts the placements they record) but only
        # arrays' Jobs are watched: a one-pod job's outcome is read from its pod, and watching its Job
        # too made the apiserver encode one more JSON event per job for nobody (a 12-15% cut in P1).
        selector = ARRAY_JOBS_SELECTOR if watch else JOB_ID_LABEL
        return ((batch.list_namespaced_job, (namespace,), selector) if namespace
                else (batch.list_job_for_all_namespaces, (), selector))

    def _list_page(self, what: str, namespace: str | None, token: str | None) -> dict[str, Any]:
        fn, args, selector = self._lister(what, namespace)
        response = fn(*args, limit=2000, _continue=token, label_selector=selector, _preload_content=False,
                      field_selector=_field_selector(what))
        page: dict[str, Any] = json.loads(response.data)
        return page

    def watch_blocking(self, what: str, namespace: str | None, resource_version: str,
                       deliver: Callable[[list[dict[str, Any]], str], None], stopped: Callable[[], bool]) -> str:
        """Follow one kind from resource_version until the server ends the watch; blocks, so it runs
        in a thread of its own. Events are parsed here and handed over a chunk at a time with the
        version reached. Returns the version to resume from, or "" when it has expired (410 Gone:
        list again)."""
        fn, args, selector = self._lister(what, namespace, watch=True)
        metrics.API_REQUESTS.labels("watch", what).inc()
        response = fn(*args, watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                      timeout_seconds=WATCH_SECONDS, label_selector=selector, _preload_content=False,
                      field_selector=_field_selector(what),
                      _request_timeout=(10, WATCH_SECONDS + 30))
        try:
            pending = b""
            for chunk in response.stream(amt=None, decode_content=False):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                events = []
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind = event.get("type")
                    body = event.get("object") or {}
                    if kind == "ERROR":
                        if body.get("code") == 410:
                            return ""
                        raise WatchError(f"watch of {what}: {body.get('message') or body}")
                    resource_version = str((body.get("metadata") or {}).get("resourceVersion") or resource_version)
                    if kind != "BOOKMARK":
                        events.append(event)
                deliver(events, resource_version)
                if stopped():
                    break
            return resource_version
        finally:
            response.close()  # a watch left early still has its stream open: never reuse that connection
            response.release_conn()

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

    async def _create(self, resource: str, fn: Callable[[str, dict[str, Any]], Any], manifest: dict[str, Any]) -> bool:
        """Create an object; False when one of that name already exists (names are deterministic)."""
        try:
            await self._call("create", resource, fn, manifest["metadata"]["namespace"], manifest)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    def _poster(self, resource: str) -> Callable[[str, dict[str, Any]], bytes]:
        """POST a manifest as it is; returns the answer's body. The client's typed create methods
        validate a plain dict into the client's pydantic model and dump it back: a fifth of the
        operator's CPU per dispatched job."""
        path = CREATE_PATHS[resource]

        def call(namespace: str, manifest: dict[str, Any]) -> bytes:
            request = self._api.param_serialize(
                method="POST", resource_path=path, path_params={"namespace": namespace},
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=manifest, auth_settings=["BearerToken"])
            response = self._api.call_api(*request)
            try:
                data = response.read()
                if not 200 <= response.status <= 299:
                    raise ApiException.from_response(http_resp=response, body=None, data=None)
                return data or b""
            finally:
                response.response.release_conn()
        return call

    async def create_job(self, manifest: dict[str, Any]) -> bool:
        return await self._create("jobs", self._poster("jobs"), manifest)

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

    async def create_job_uid(self, manifest: dict[str, Any]) -> tuple[str, bool]:
        """Create a Kubernetes Job (posted as it is, as create_job) or find the one of that name;
        returns its uid and whether Barge manages it (spec.managedBy)."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            body = json.loads(await self._call("create", "jobs", self._poster("jobs"), namespace, manifest) or b"{}")
        except ApiException as exc:
            if exc.status != 409:
                raise
            body = self._api.sanitize_for_serialization(
                await self._call("get", "jobs", self.batch.read_namespaced_job, name, namespace))
        return (str((body.get("metadata") or {}).get("uid") or ""),
                (body.get("spec") or {}).get("managedBy") == MANAGED_BY)

    async def create_pod(self, manifest: dict[str, Any]) -> bool:
        return await self._create("pods", self._poster("pods"), manifest)

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

    # --- Karpenter's NodePools, for MANAGED compute environments -------------------------------------

    async def nodepools_served(self) -> bool:
        """Whether the apiserver serves karpenter.sh/v1 nodepools (discovery)."""
        try:
            found = await self._call("get", "discovery", self.custom.get_api_resources, *NODEPOOL_GROUP_VERSION)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return any(r.name == "nodepools" for r in (found.resources or []) if found is not None)

    async def list_nodepools(self, selector: str) -> list[dict[str, Any]] | None:
        """The NodePools that match; None when the API is not served (any more)."""
        try:
            answer = await self._call("list", "nodepools", self.custom.list_cluster_custom_object,
                                      *NODEPOOL_GROUP_VERSION, "nodepools", label_selector=selector)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        items: list[dict[str, Any]] = answer.get("items") or []
        return items

    async def apply_nodepool(self, manifest: dict[str, Any], exists: bool) -> None:
        """Create the NodePool, or merge-patch the one of that name with what Barge wants in it."""
        name = manifest["metadata"]["name"]
        if not exists:
            try:
                await self._call("create", "nodepools", self.custom.create_cluster_custom_object,
                                 *NODEPOOL_GROUP_VERSION, "nodepools", manifest)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        await self._call("patch", "nodepools", self.custom.patch_cluster_custom_object,
                         *NODEPOOL_GROUP_VERSION, "nodepools", name, manifest, _content_type=MERGE_PATCH)

    async def delete_nodepool(self, name: str) -> None:
        try:
            await self._call("delete", "nodepools", self.custom.delete_cluster_custom_object,
                             *NODEPOOL_GROUP_VERSION, "nodepools", name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def ensure_priority_class(self, manifest: dict[str, Any]) -> None:
        try:
            await self._call("create", "priorityclasses", self.scheduling.create_priority_class, manifest)
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def list_deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        answer = await self._call("list", "deployments", self.apps.list_namespaced_deployment, namespace,
                                  label_selector=selector, _preload_content=False)
        try:
            items: list[dict[str, Any]] = json.loads(answer.data).get("items") or []
        finally:
            answer.release_conn()
        return items

    async def apply_deployment(self, manifest: dict[str, Any], exists: bool) -> None:
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        if not exists:
            try:
                await self._call("create", "deployments", self.apps.create_namespaced_deployment, namespace, manifest)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        await self._call("patch", "deployments", self.apps.patch_namespaced_deployment, name, namespace, manifest)

    async def delete_deployment(self, namespace: str, name: str) -> None:
        try:
            await self._call("delete", "deployments", self.apps.delete_namespaced_deployment, name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def node_names(self) -> list[str]:
        return [str((n.get("metadata") or {}).get("name")) for n in await self.list_nodes("")]

    async def list_nodes(self, selector: str) -> list[dict[str, Any]]:
        answer = await self._call("list", "nodes", self.core.list_node, label_selector=selector,
                                  _preload_content=False)
        try:
            items: list[dict[str, Any]] = json.loads(answer.data).get("items") or []
        finally:
            answer.release_conn()
        return items

    def post_event(self, reference: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Post a Kubernetes Event in the background; a lost Event never blocks a job."""
        if self._events_waiting >= EVENT_BACKLOG:
            metrics.EVENTS_DROPPED.inc()
            return
        self._events_waiting += 1
        metrics.EVENTS_WAITING.set(self._events_waiting)
        task = asyncio.get_running_loop().create_task(self._post_event(reference, kind, reason, message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_event(self, reference: dict[str, Any], kind: str, reason: str, message: str) -> None:
        try:
            body = _event_body(reference, kind, reason, message)
            async with self._event_limit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._no_writes_queued.wait(), EVENT_DELAY_SECONDS)
                await self._call("create", "events", self._poster("events"), body["metadata"]["namespace"], body)
        except Exception as exc:
            log.debug("event not posted: %s", exc)
        finally:
            self._events_waiting -= 1
            metrics.EVENTS_WAITING.set(self._events_waiting)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()
        self._watch_api.close()


def _field_selector(what: str) -> str | None:
    """The pods that take room on a node: bound to one and not finished (the apiserver sends a
    DELETED event when a pod leaves this selection)."""
    return BOUND_PODS_SELECTOR if what == "boundpods" else None


def _event_body(reference: dict[str, Any], kind: str, reason: str, message: str) -> dict[str, Any]:
    metadata = reference["metadata"]
    namespace = metadata.get("namespace") or "default"
    now = datetime.datetime.now(datetime.UTC)
    return {
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": namespace},
        "involvedObject": {"apiVersion": reference["apiVersion"], "kind": reference["kind"],
                           "name": metadata["name"], "namespace": metadata.get("namespace"),
                           "uid": metadata.get("uid")},
        "type": kind, "reason": reason, "message": message[:1024], "count": 1,
        "firstTimestamp": now, "lastTimestamp": now,
        "source": {"component": "barge-operator"}, "reportingComponent": "barge.dev/operator",
    }
