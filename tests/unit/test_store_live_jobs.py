"""The store's view of the jobs not finished, and its counts of the finished ones, kept as BatchJobs
come and go: a scheduling pass and the queues' job counts read them instead of every job kept."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from barge.controller.store import Store
from barge.core.states import JOB_STATES, TERMINAL

NAMES = ("a", "b", "c", "d")


def batchjob(name: str, state: str | None, version: int, queue: str = "q", uid: str = "") -> dict[str, Any]:
    status = {"state": state} if state is not None else {}
    return {"metadata": {"namespace": "ns", "name": name, "uid": uid or f"uid-{name}", "resourceVersion": str(version)},
            "spec": {"jobQueue": queue, "jobDefinition": "d"}, "status": status}


events = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from((None, *JOB_STATES, "DELETED")),
                            st.sampled_from(("q", "r")), st.integers(1, 4)), max_size=40)


@given(events)
def test_live_jobs_and_finished_counts_follow_every_change(changes: list[tuple[str, str | None, str, int]]) -> None:
    store = Store()
    for version, (name, state, queue, generation) in enumerate(changes, start=1):
        if state == "DELETED":
            store.forget(("ns", name))
        else:
            store.remember(batchjob(name, state, version, queue, uid=f"uid-{name}-{generation}"))
    every = list(store.jobs())
    assert sorted(r.key for r in store.live_jobs()) == sorted(r.key for r in every if r.state not in TERMINAL)
    expected: dict[str, Counter[str]] = {}
    for record in every:
        if record.state in TERMINAL:
            expected.setdefault(record.queue, Counter())[str(record.state)] += 1
    assert store.finished_counts() == expected


def test_a_version_already_held_is_kept_as_it_is() -> None:
    store = Store()
    first = store.remember(batchjob("a", "RUNNING", 7))
    assert store.remember(batchjob("a", "RUNNING", 7)) is first
    assert store.remember(batchjob("a", "STARTING", 6)) is first  # an older event never wins
    assert store.remember(batchjob("a", "SUCCEEDED", 8)).state == "SUCCEEDED"
    assert not list(store.live_jobs()) and store.finished_counts() == {"q": Counter({"SUCCEEDED": 1})}


def test_a_job_recreated_under_its_name_is_taken_whatever_its_version() -> None:
    store = Store()
    store.remember(batchjob("a", "SUCCEEDED", 9))
    again = store.remember(batchjob("a", None, 3, uid="uid-a-2"))
    assert store.job(("ns", "a")) is again and [r.key for r in store.live_jobs()] == [("ns", "a")]
    assert store.finished_counts() == {}
