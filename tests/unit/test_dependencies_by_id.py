"""dependsOn[].jobId (AWS depends by id): resolved to the job with that id in the same namespace,
waited for while no such job is known, and its dependents woken when it changes."""

from __future__ import annotations

from typing import Any

import pytest

from barge.controller.dependencies import Dependencies
from barge.controller.store import Store
from barge.core import dependencies as deps

pytestmark = pytest.mark.unit


def batchjob(name: str, namespace: str = "ns", state: str | None = None,
             depends_on: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"jobQueue": "q", "jobDefinition": "d"}
    if depends_on is not None:
        spec["dependsOn"] = depends_on
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "resourceVersion": "5"},
            "spec": spec, "status": {"state": state} if state else {}}


def test_by_name_resolves_ids_and_leaves_names_and_sequential_alone() -> None:
    given = [{"jobId": "uid-a"}, {"jobName": "b"}, {"type": "SEQUENTIAL"}, {"jobId": "uid-x", "type": "N_TO_N"}]
    named = deps.by_name(given, {"uid-a": "a"}.get)
    assert [d.get("jobName") for d in named] == ["a", "b", None, "with jobId uid-x"]
    assert named[3]["type"] == "N_TO_N"


@pytest.mark.parametrize(("state", "ready", "failure"), [
    ("SUCCEEDED", True, None), ("RUNNING", False, None), ("FAILED", False, "Dependent Job failed"),
])
def test_a_dependency_by_id_is_judged_by_the_state_of_that_job(state: str, ready: bool, failure: str | None) -> None:
    store = Store()
    store.remember(batchjob("first", state=state))
    record = store.remember(batchjob("second", depends_on=[{"jobId": "uid-first"}]))
    verdict = Dependencies(store).verdict(record)
    assert (verdict.ready, verdict.failure) == (ready, failure)


def test_an_unknown_id_or_one_from_another_namespace_is_waited_for() -> None:
    store = Store()
    store.remember(batchjob("elsewhere", namespace="other", state="SUCCEEDED"))
    for job_id in ("uid-nobody", "uid-elsewhere"):
        record = store.remember(batchjob(f"waits-{job_id}", depends_on=[{"jobId": job_id}]))
        verdict = Dependencies(store).verdict(record)
        assert not verdict.ready and not verdict.failure
        assert f"with jobId {job_id}" in (verdict.waiting_on or "")


def test_the_dependents_of_a_job_include_those_that_name_its_id_until_forgotten() -> None:
    store = Store()
    first = store.remember(batchjob("first"))
    by_id = store.remember(batchjob("by-id", depends_on=[{"jobId": "uid-first"}]))
    by_name = store.remember(batchjob("by-name", depends_on=[{"jobName": "first"}]))
    assert store.dependents(first.key) == {by_id.key, by_name.key}
    store.forget(by_id.key)
    assert store.dependents(first.key) == {by_name.key}


def test_n_to_n_by_id_gates_each_child_on_the_same_child_of_that_array() -> None:
    store = Store()
    first = batchjob("first", state="PENDING")
    first["spec"]["arrayProperties"] = {"size": 3}
    first["status"]["arrayProperties"] = {"size": 3, "succeededIndices": "0", "failedIndices": "1"}
    store.remember(first)
    second = batchjob("second", depends_on=[{"jobId": "uid-first", "type": "N_TO_N"}])
    second["spec"]["arrayProperties"] = {"size": 3}
    record = store.remember(second)
    gate = Dependencies(store).child_gate(record, record.spec["dependsOn"])
    assert [gate(i) for i in range(3)] == [None, "Dependent Job failed", "wait"]
