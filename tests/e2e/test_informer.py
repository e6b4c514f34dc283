"""The informer against a real apiserver: watches follow changes, and an expired watch lists again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from barge.controller.informer import Informer
from barge.kube import Kube
from tests.e2e.kube import Cluster


def pending_pod(name: str) -> dict[str, Any]:
    """A pod carrying the job-id label that no node will take (it stays Pending)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"barge.dev/job-id": "informer-test", "barge.dev/attempt": "1"}},
            "spec": {"nodeSelector": {"barge.dev/pool": "no-such-pool"},
                     "containers": [{"name": "main", "image": "busybox"}]}}


async def until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_an_expired_watch_lists_again_then_follows(cluster: Cluster, namespace: str) -> None:
    for name in ("before-1", "before-2"):
        cluster.core.create_namespaced_pod(namespace, pending_pod(name))
    cluster.core.create_namespaced_pod(namespace, {**pending_pod("unlabelled"), "metadata": {"name": "unlabelled"}})
    events: list[tuple[str, str]] = []
    relists: list[list[str]] = []

    def handle(what: str, kind: str, body: dict[str, Any]) -> None:
        events.append((kind, body["metadata"]["name"]))

    def relisted(what: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        relists.append(sorted(i["metadata"]["name"] for i in items))

    async def scenario() -> None:
        informer = Informer(Kube(kubeconfig=str(cluster.kubeconfig)), (namespace,), handle, relisted)
        # Version 1 is older than anything the apiserver keeps: the watch expires at once (410 Gone).
        informer.follow("pods", {namespace: "1"})
        try:
            await until(lambda: relists, 30, "the relist after the expired watch")
            await asyncio.to_thread(cluster.core.create_namespaced_pod, namespace, pending_pod("after"))
            await until(lambda: ("ADDED", "after") in events, 30, "the new pod's ADDED event")
            await asyncio.to_thread(cluster.core.delete_namespaced_pod, "before-1", namespace,
                                    grace_period_seconds=0)
            await until(lambda: ("DELETED", "before-1") in events, 30, "the deleted pod's DELETED event")
        finally:
            informer.stop()

    asyncio.run(scenario())
    assert relists[0] == ["before-1", "before-2"]  # the list holds only pods carrying the job-id label
    assert ("ADDED", "unlabelled") not in events
