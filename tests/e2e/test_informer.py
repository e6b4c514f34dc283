"""The informer against a real apiserver: a list, then a watch from the list's version that follows
what changes. (An expired watch, 410 Gone, cannot be forced on every cluster: tests/unit/test_informer.py.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from barge.controller.informer import Informer
from barge.kube import Kube
from tests.e2e.kube import Cluster


def pending_pod(name: str, labelled: bool = True) -> dict[str, Any]:
    """A pod that stays Pending untouched (no scheduler by that name, so nothing writes to it after it is
    created and the only events are the test's own), carrying the job-id label unless told not to."""
    labels = {"barge.dev/job-id": "informer-test", "barge.dev/attempt": "1"} if labelled else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"schedulerName": "no-such-scheduler", "nodeSelector": {"barge.dev/pool": "no-such-pool"},
                     "containers": [{"name": "main", "image": "busybox"}]}}


async def until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_the_informer_lists_then_follows_only_labelled_pods(cluster: Cluster, namespace: str) -> None:
    for name in ("before-1", "before-2"):
        cluster.core.create_namespaced_pod(namespace, pending_pod(name))
    cluster.core.create_namespaced_pod(namespace, pending_pod("unlabelled", labelled=False))
    listed: list[str] = []
    events: list[tuple[str, str]] = []

    def handle(what: str, kind: str, body: dict[str, Any]) -> None:
        events.append((kind, body["metadata"]["name"]))

    async def scenario() -> None:
        informer = Informer(Kube(kubeconfig=str(cluster.kubeconfig)), (namespace,), handle,
                            lambda *_: None)
        versions = await informer.list_into("pods", lambda body: listed.append(body["metadata"]["name"]))
        informer.follow("pods", versions)
        try:
            await asyncio.to_thread(cluster.core.create_namespaced_pod, namespace, pending_pod("after"))
            await until(lambda: ("ADDED", "after") in events, 30, "the new pod's ADDED event")
            await asyncio.to_thread(cluster.core.delete_namespaced_pod, "before-1", namespace,
                                    grace_period_seconds=0)
            await until(lambda: ("DELETED", "before-1") in events, 30, "the deleted pod's DELETED event")
        finally:
            informer.stop()

    asyncio.run(scenario())
    assert sorted(listed) == ["before-1", "before-2"]  # only pods carrying the job-id label
    assert not [e for e in events if e[1] in ("unlabelled", "before-2")]  # nothing listed comes again


def suspended_job(name: str, attempt: str | None) -> dict[str, Any]:
    """A Job shaped like Barge's: a one-pod job's carries its attempt label, an array's does not."""
    labels = {"barge.dev/job-id": "informer-test", **({"barge.dev/attempt": attempt} if attempt else {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
            "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox"}]}}}}


def test_the_informer_lists_every_job_but_follows_only_arrays_jobs(cluster: Cluster, namespace: str) -> None:
    """A restarted operator adopts placements from every listed Job; after that only arrays' Jobs are
    watched (a one-pod job's outcome comes from its pod)."""
    cluster.batch.create_namespaced_job(namespace, suspended_job("one-pod-before", "1"))
    listed: list[str] = []
    events: list[tuple[str, str]] = []

    async def scenario() -> None:
        informer = Informer(Kube(kubeconfig=str(cluster.kubeconfig)), (namespace,),
                            lambda what, kind, body: events.append((kind, body["metadata"]["name"])),
                            lambda *_: None)
        versions = await informer.list_into("jobs", lambda body: listed.append(body["metadata"]["name"]))
        informer.follow("jobs", versions)
        try:
            for name, attempt in (("one-pod-after", "1"), ("array-after", None)):
                await asyncio.to_thread(cluster.batch.create_namespaced_job, namespace, suspended_job(name, attempt))
            await until(lambda: ("ADDED", "array-after") in events, 30, "the array Job's ADDED event")
            await asyncio.sleep(1)  # time for a (wrong) event of the one-pod Job, created first
        finally:
            informer.stop()

    asyncio.run(scenario())
    assert listed == ["one-pod-before"]
    assert {name for _, name in events} == {"array-after"}  # its ADDED, and what the Job controller writes
