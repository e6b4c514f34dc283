"""A watch that expires (410 Gone) on a real apiserver is listed again, and nothing that changed while
it was away is lost.

tests/unit/test_informer.py proves the informer's expired path against a scripted API, and
tests/unit/test_relist.py what the router does with a relist; tests/e2e/test_informer.py follows a
real list. What none of them shows is the whole path on a real apiserver: the apiserver's own 410
(sent inside the stream, after a 200), read by Kube.watch_blocking, the relist, and Router.on_relist
bringing the operator's store to what exists. Here the store is listed, then a pod is deleted, a pod
finishes and a pod is created, none of which a watch delivers; the watch then resumes from a version
that is gone: older than the apiserver's watch cache and than etcd's compaction, which the test
forces (the apiserver compacts every 5 minutes on its own), as after a long disconnection.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY

from barge.controller.informer import Informer
from barge.controller.router import Router
from barge.controller.store import Store
from barge.core.states import ATTEMPT_LABEL, JOB_ID_LABEL, POD_DELETED
from barge.kube import Kube
from tests.e2e.kube import Cluster

ETCD = "http://127.0.0.1:2379"  # the local cluster's etcd (operator/barge/dev/cluster.py)
EXPIRED = "1"  # older than any watch cache, and compacted away once etcd is compacted


def etcd(path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{ETCD}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def compact_etcd() -> int:
    """Compact etcd at its current revision: every older version is gone, as after the apiserver's
    own periodic compaction. Returns the revision."""
    key = base64.b64encode(b"/registry/namespaces/default").decode()
    revision = int(etcd("/v3/kv/range", {"key": key, "count_only": True})["header"]["revision"])
    etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def relists(what: str) -> float:
    return REGISTRY.get_sample_value("barge_watch_relists_total", {"resource": what}) or 0.0


def batchjob(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """A RUNNING BatchJob as the store holds it (only in the store: no operator acts on it)."""
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid, "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"jobDefinition": "d", "jobQueue": "q"},
            "status": {"jobId": uid, "state": "RUNNING", "currentAttempt": 1}}


def pod(name: str, job_id: str, attempt: int = 1) -> Any:
    """A pod of that job's attempt that no node takes (kwok leaves it alone): the test moves it."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {JOB_ID_LABEL: job_id, ATTEMPT_LABEL: str(attempt)}},
            "spec": {"nodeSelector": {"barge.dev/pool": "no-such-pool"},
                     "containers": [{"name": "main", "image": "busybox"}]}}


def succeeded() -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {"phase": "Succeeded", "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}]}}


async def until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.1)


def test_an_expired_watch_is_listed_again_and_what_changed_meanwhile_reaches_the_store(
        cluster: Cluster, namespace: str) -> None:
    if not cluster.local:
        pytest.skip("expiring a watch needs the local cluster's etcd (to compact it)")
    ids = {name: str(uuid.uuid4()) for name in ("deleted", "finished", "created")}
    cluster.core.create_namespaced_pod(namespace, pod("deleted-1", ids["deleted"]))
    cluster.core.create_namespaced_pod(namespace, pod("finished-1", ids["finished"]))
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        store = Store()
        router = Router(store, kick=lambda: None, forget=store.forget)
        reconciled: list[tuple[str, str]] = []

        async def reconcile(key: tuple[str, str]) -> None:
            reconciled.append(key)

        router.reconcile = reconcile
        for name, uid in ids.items():
            store.remember(batchjob(namespace, name, uid))
        informer = Informer(Kube(kubeconfig=str(cluster.kubeconfig)), (namespace,), router.on_event,
                            router.on_relist)
        versions = await informer.list_into("pods", store.remember_pod)
        assert sorted(p.name for uid in ids.values() for p in store.pods(uid)) == ["deleted-1", "finished-1"]

        # While the watch is away: one pod deleted, one finished, one created; then the versions go.
        await asyncio.to_thread(cluster.core.delete_namespaced_pod, "deleted-1", namespace, grace_period_seconds=0)
        await asyncio.to_thread(cluster.core.patch_namespaced_pod_status, "finished-1", namespace, succeeded())
        await asyncio.to_thread(cluster.core.create_namespaced_pod, namespace, pod("created-1", ids["created"]))
        seen["compacted at"] = await asyncio.to_thread(compact_etcd)
        before = relists("pods")
        assert versions[namespace], versions
        informer.follow("pods", {namespace: EXPIRED})
        try:
            await until(lambda: relists("pods") > before, 30, "the expired watch to be listed again")
            await until(lambda: [p.name for p in store.pods(ids["created"])] == ["created-1"], 30,
                        "the pod created while the watch was away")
            # Followed again from the new list: the next change comes as an event.
            await asyncio.to_thread(cluster.core.create_namespaced_pod, namespace,
                                    pod("created-2", ids["created"], attempt=2))
            await until(lambda: len(store.pods(ids["created"])) == 2, 30, "a pod created after the relist")
        finally:
            informer.stop()
        seen["pods"] = {uid: {p.name: p for p in store.pods(uid)} for uid in ids.values()}
        seen["reconciled"] = set(reconciled)

    asyncio.run(scenario())
    replay = f"[etcd compacted at revision {seen['compacted at']}]"
    pods = seen["pods"]
    deleted = pods[ids["deleted"]]
    assert list(deleted) == ["deleted-1"] and deleted["deleted-1"].phase == "Failed" \
        and deleted["deleted-1"].reason == POD_DELETED, \
        f"{replay} the pod deleted while the watch was away must end its attempt: {deleted}"
    finished = pods[ids["finished"]]
    assert list(finished) == ["finished-1"] and finished["finished-1"].phase == "Succeeded" \
        and finished["finished-1"].exit_code == 0, f"{replay} the pod that finished meanwhile: {finished}"
    assert sorted(pods[ids["created"]]) == ["created-1", "created-2"], f"{replay} {pods[ids['created']]}"
    assert {(namespace, n) for n in ids} <= seen["reconciled"], \
        f"{replay} every job the relist changed is looked at again: {seen['reconciled']}"
