"""After a watch expires its kind is listed again: the store drops what is gone, in the watch's
namespace only, and keeps everything else."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from barge.controller.router import KeyedLocks, Router
from barge.controller.store import Store


def batchjob(namespace: str, name: str, version: int = 1, state: str = "RUNNING") -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}",
                         "resourceVersion": str(version)}, "spec": {"jobQueue": "q"}, "status": {"state": state}}


def pod(job: dict[str, Any], name: str, version: int = 1, phase: str = "Running", attempt: int = 1,
        index: int | None = None) -> dict[str, Any]:
    body = {"metadata": {"namespace": job["metadata"]["namespace"], "name": name, "resourceVersion": str(version),
                         "labels": {"barge.dev/job-id": job["metadata"]["uid"], "barge.dev/attempt": str(attempt)}},
            "status": {"phase": phase}}
    if index is not None:
        body["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    return body


def controller() -> Router:
    """The router over an empty store; its reconciles do nothing (these tests look at what it asks for)."""
    store = Store()
    router = Router(store, kick=lambda: None, forget=store.forget)

    async def reconcile(key: tuple[str, str]) -> None:
        return None

    router.reconcile = reconcile
    return router


def test_relisted_batchjobs_forget_the_deleted_ones_of_that_namespace_only() -> None:
    async def scenario() -> None:
        ctl = controller()
        for namespace, name in (("a", "gone"), ("a", "kept"), ("b", "other")):
            ctl.on_event("batchjobs", "ADDED", batchjob(namespace, name))
        ctl.on_relist("batchjobs", "a", [batchjob("a", "kept", version=7)])
        assert sorted(r.key for r in ctl.store.jobs()) == [("a", "kept"), ("b", "other")]
        kept = ctl.store.job(("a", "kept"))
        assert kept is not None and kept.resource_version == 7
        assert ("a", "kept") in ctl._requested

    asyncio.run(scenario())


def test_relisted_batchjobs_of_all_namespaces_forget_every_deleted_one() -> None:
    async def scenario() -> None:
        ctl = controller()
        for namespace, name in (("a", "gone"), ("b", "gone-too"), ("b", "kept")):
            ctl.on_event("batchjobs", "ADDED", batchjob(namespace, name))
        ctl.on_relist("batchjobs", None, [batchjob("b", "kept")])
        assert [r.key for r in ctl.store.jobs()] == [("b", "kept")]

    asyncio.run(scenario())


def test_relisted_pods_forget_the_deleted_ones_and_look_at_their_job_again() -> None:
    async def scenario() -> None:
        ctl = controller()
        job, other = batchjob("a", "j"), batchjob("b", "k")
        ctl.on_event("batchjobs", "ADDED", job)
        ctl.on_event("batchjobs", "ADDED", other)
        for body in (pod(job, "j-old", attempt=0), pod(job, "j-1"), pod(other, "k-1")):
            ctl.on_event("pods", "ADDED", body)
        ctl._requested.clear()
        ctl.on_relist("pods", "a", [pod(job, "j-1", version=9, phase="Succeeded")])
        assert [(p.name, p.phase) for p in ctl.store.pods("uid-a-j")] == [("j-1", "Succeeded")]
        assert [p.name for p in ctl.store.pods("uid-b-k")] == ["k-1"]  # another namespace's watch
        assert ctl._requested == {("a", "j")}

    asyncio.run(scenario())


def test_a_relist_that_misses_the_running_pod_of_a_running_job_ends_its_attempt() -> None:
    async def scenario() -> None:
        ctl = controller()
        job = batchjob("a", "j")
        ctl.on_event("batchjobs", "ADDED", job)
        ctl.on_event("pods", "ADDED", pod(job, "j-1"))
        ctl.on_relist("pods", "a", [])
        [gone] = ctl.store.pods("uid-a-j")
        assert (gone.name, gone.phase, gone.reason) == ("j-1", "Failed", "PodDeleted")

    asyncio.run(scenario())


def test_a_pod_deleted_before_it_terminated_is_kept_as_failed_while_its_job_runs() -> None:
    """Its Kubernetes Job is not watched: the pod is what ends the attempt (a force-deleted pod,
    a lost node, a Job deleted by hand)."""
    async def scenario() -> None:
        ctl = controller()
        job = batchjob("a", "j")
        ctl.on_event("batchjobs", "ADDED", job)
        ctl.on_event("pods", "ADDED", pod(job, "j-1"))
        ctl.on_event("pods", "DELETED", pod(job, "j-1", version=2))
        [gone] = ctl.store.pods("uid-a-j")
        assert gone.terminated and gone.reason == "PodDeleted" and "deleted" in (gone.message or "")
        ctl.on_event("batchjobs", "DELETED", job)
        assert ctl.store.pods("uid-a-j") == []

    asyncio.run(scenario())


def test_a_terminated_pod_deleted_at_once_keeps_its_outcome_while_its_job_runs() -> None:
    async def scenario() -> None:
        ctl = controller()
        job = batchjob("a", "j")
        ctl.on_event("batchjobs", "ADDED", job)
        ctl.on_event("pods", "MODIFIED", pod(job, "j-1", phase="Succeeded"))
        ctl.on_event("pods", "DELETED", pod(job, "j-1", version=2, phase="Succeeded"))
        assert [(p.name, p.phase) for p in ctl.store.pods("uid-a-j")] == [("j-1", "Succeeded")]

    asyncio.run(scenario())


def test_a_deleted_pod_event_forgets_the_pod_of_a_finished_job_an_old_attempt_or_an_array_child() -> None:
    async def scenario() -> None:
        ctl = controller()
        finished, retried, array = (batchjob("a", "done", state="SUCCEEDED"), batchjob("a", "retried"),
                                    batchjob("a", "array", state="PENDING"))
        retried["status"]["currentAttempt"] = 2
        for job in (finished, retried, array):
            ctl.on_event("batchjobs", "ADDED", job)
        for body in (pod(finished, "done-1"), pod(retried, "retried-1"), pod(array, "array-3", index=3)):
            ctl.on_event("pods", "ADDED", body)
            ctl.on_event("pods", "DELETED", {**body, "metadata": {**body["metadata"], "resourceVersion": "2"}})
        for job in (finished, retried, array):
            assert ctl.store.pods(job["metadata"]["uid"]) == []
        ctl.on_event("batchjobs", "DELETED", finished)
        assert ctl.store.job(("a", "done")) is None

    asyncio.run(scenario())


def test_a_job_lock_excludes_and_is_dropped_once_nobody_holds_or_awaits_it() -> None:
    async def scenario() -> None:
        locks = KeyedLocks()
        order: list[str] = []

        async def hold(name: str) -> None:
            async with locks(("a", "j")):
                order.append(f"{name} in")
                await asyncio.sleep(0.01)
                order.append(f"{name} out")

        await asyncio.gather(hold("first"), hold("second"))
        assert order == ["first in", "first out", "second in", "second out"]
        assert len(locks) == 0
        with contextlib.suppress(RuntimeError):
            async with locks(("a", "j")):
                raise RuntimeError("a failed reconcile")
        assert len(locks) == 0

    asyncio.run(scenario())


def test_a_pod_event_that_changes_nothing_barge_reads_reconciles_nothing() -> None:
    """Half of a pod's events (a finalizer removed, labels added) change nothing Barge reads: each
    would otherwise cost a reconcile."""
    async def scenario() -> None:
        ctl = controller()
        job = batchjob("a", "j")
        ctl.on_event("batchjobs", "ADDED", job)
        ctl.on_event("pods", "ADDED", pod(job, "j-1"))
        assert ctl._requested == {("a", "j")}
        ctl._requested.clear()
        same = pod(job, "j-1", version=2)
        same["metadata"]["finalizers"] = []
        ctl.on_event("pods", "MODIFIED", same)
        ctl.on_event("pods", "MODIFIED", pod(job, "j-1", version=1, phase="Succeeded"))  # older than held
        assert ctl._requested == set()
        ctl.on_event("pods", "MODIFIED", pod(job, "j-1", version=3, phase="Succeeded"))
        assert ctl._requested == {("a", "j")}

    asyncio.run(scenario())
