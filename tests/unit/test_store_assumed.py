"""Decisions assumed in the store before they are written: every reader sees them through
`effective`, they stay assumed until their write is remembered, and a restart adopts a placement from its Job."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from barge.config import Settings
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import job as rules
from barge.core.jobstatus import JobStatusPatch


def batchjob(name: str = "j", state: str | None = None, attempt: int = 1,
             spec: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"currentAttempt": attempt}
    if state is not None:
        status["state"] = state
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}", "resourceVersion": "5"},
            "spec": {"jobQueue": "q", "jobDefinition": "d", **(spec or {})}, "status": status}


def kube_job(job: str, attempt: int, environment: str = "ce-1") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": f"{job}-{attempt}", "uid": f"kuid-{job}-{attempt}",
                         "resourceVersion": "7",
                         "labels": {"barge.dev/job-id": f"uid-{job}", "barge.dev/attempt": str(attempt)},
                         "annotations": {"barge.dev/compute-environment": environment}}}


ADMISSION: JobStatusPatch = {"state": "RUNNABLE", "jobId": "uid-j", "queuedAt": 100.0, "statusReason": "Waiting"}


@pytest.mark.parametrize("written", [None, "SUBMITTED"])
def test_an_assumed_admission_is_seen_by_readers_until_taken(written: str | None) -> None:
    store = Store()
    record = store.remember(batchjob(state=written))
    store.assume_admission(record.key, ADMISSION.copy())
    assert store.admission_held(record.key) and store.held_admissions() == [record.key]
    assert store.effective(record).state == "RUNNABLE" and store.effective(record).status["queuedAt"] == 100.0
    assert record.state == written  # the record itself is not changed
    assert store.take_admission(record.key) == ADMISSION
    assert store.effective(record).state == written and not store.admission_held(record.key)


def test_a_placement_carries_the_held_admission_and_stays_assumed_until_its_write_is_remembered() -> None:
    store = Store()
    record = store.remember(batchjob())
    store.assume_admission(record.key, ADMISSION.copy())
    patch = store.assume_placement(record.key, 50.0, rules.placement_patch("ce-1", "j-1"))
    assert patch["jobId"] == "uid-j" and patch["state"] == "STARTING" and not store.admission_held(record.key)
    assert store.effective(record).status["computeEnvironment"] == "ce-1"
    assert store.placements_due(49.0) == [] and store.placements_due(50.0) == [record.key]
    placed = store.assumed_placement(record.key)
    assert placed is not None and store.effective(record).state == "STARTING"  # charged while it is written
    newer = store.assume_placement(record.key, 60.0, rules.placement_patch("ce-2", "j-1"))
    store.drop_placement(record.key, placed)  # a write of an older decision never drops a newer one
    assert store.assumed_placement(record.key) == (60.0, newer)
    store.drop_placement(record.key, store.assumed_placement(record.key) or placed)
    assert store.effective(record).state is None and not store.placement_assumed(record.key)


@pytest.mark.parametrize("written", ["STARTING", "RUNNING", "SUCCEEDED", "FAILED", "PENDING"])
def test_what_is_written_past_runnable_wins_over_what_was_assumed(written: str) -> None:
    store = Store()
    record = store.remember(batchjob(state=written))
    store.assume_placement(record.key, 1.0, rules.placement_patch("ce-1", "j-1"))
    assert store.effective(record) is record


@pytest.mark.parametrize(("state", "attempt", "job_attempts", "array", "adopted"), [
    ("RUNNABLE", 1, [1], False, True),       # placed, killed before STARTING was written
    ("RUNNABLE", 2, [1], False, False),      # the Job of an earlier attempt says nothing of this one
    ("RUNNABLE", 2, [1, 2], False, True),
    ("RUNNABLE", 1, [], False, False),       # never placed
    ("STARTING", 1, [1], False, False),      # already written
    ("PENDING", 1, [1], True, False),        # arrays place children, not the whole job
])
def test_a_placement_is_adopted_from_the_job_of_the_current_attempt(
        state: str, attempt: int, job_attempts: list[int], array: bool, adopted: bool) -> None:
    store = Store()
    spec = {"arrayProperties": {"size": 3}} if array else {}
    record = store.remember(batchjob(state=state, attempt=attempt, spec=spec))
    for n in job_attempts:
        store.remember_kube_job(kube_job("j", n))
    assert store.adopt_placements() == int(adopted)
    effective = store.effective(record)
    if adopted:
        assert effective.state == "STARTING" and effective.status["computeEnvironment"] == "ce-1"
        assert effective.status["kubernetesJob"] == f"j-{attempt}"
    else:
        assert effective.state == state


def test_a_job_whose_admission_was_never_written_is_adopted_once_admitted_again() -> None:
    store = Store()
    record = store.remember(batchjob())
    store.remember_kube_job(kube_job("j", 1, "ce-large"))
    assert store.adopt_placements() == 0  # not admitted yet: nothing to place
    store.assume_admission(record.key, ADMISSION.copy())
    assert store.adopt_placement(record)
    effective = store.effective(record)
    assert (effective.state, effective.status["computeEnvironment"], effective.status["jobId"]) == (
        "STARTING", "ce-large", "uid-j")
    assert not store.adopt_placement(record)  # once


def test_only_runnable_jobs_with_nothing_assumed_wait_as_written() -> None:
    store = Store()
    waiting, placed, pending = (store.remember(batchjob(n, state=s)) for n, s in (
        ("a", "RUNNABLE"), ("b", "RUNNABLE"), ("c", "PENDING")))
    store.assume_placement(placed.key, 1.0, rules.placement_patch("ce-1", "b-1"))
    assert [store.waits_as_written(r) for r in (waiting, placed, pending)] == [True, False, False]


def test_forgetting_a_job_drops_what_was_assumed() -> None:
    store = Store()
    record = store.remember(batchjob())
    store.assume_admission(record.key, ADMISSION.copy())
    other = store.remember(batchjob("k"))
    store.assume_placement(other.key, 1.0, rules.placement_patch("ce-1", "k-1"))
    store.forget(record.key)
    store.forget(other.key)
    assert store.held_admissions() == [] and not list(store.placed_times())


class _SlowStatusAPI:
    """The API server as StatusWriter sees it: a status patch that waits until the test lets it
    answer (or fail)."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[bool] | None = None

    async def patch_status(self, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> Any:
        self.answer = asyncio.get_running_loop().create_future()
        if not await self.answer:
            raise ConnectionError("the API server went away")
        return {**batchjob(state=patch["state"]), "status": patch,
                "metadata": {**batchjob()["metadata"], "resourceVersion": "6"}}


def test_a_placement_is_charged_while_its_write_is_in_flight_and_after_a_failed_one() -> None:
    async def scenario() -> None:
        store, api = Store(), _SlowStatusAPI()
        record = store.remember(batchjob(state="RUNNABLE"))
        writer = StatusWriter(Settings(events=False), cast(Any, api), store, lambda: 100.0,
                              forget=lambda key: None, finished=lambda record: None)
        store.assume_placement(record.key, 50.0, rules.placement_patch("ce-1", "j-1"))
        for succeeds in (False, True):
            write = asyncio.ensure_future(writer.write(record, {}))
            while api.answer is None or api.answer.done():
                await asyncio.sleep(0)
            # what a scheduling pass sees meanwhile: the job holds ce-1's quota
            assert rules.charge(store.effective(store.job(record.key) or record)) == ("ce-1", record.request)
            api.answer.set_result(succeeds)
            if succeeds:
                await write
            else:
                with pytest.raises(ConnectionError):
                    await write
                assert store.placement_assumed(record.key)
        assert not store.placement_assumed(record.key)
        assert (store.job(record.key) or record).state == "STARTING"

    asyncio.run(scenario())
