"""The console's pure parts: the jobs list's filters and pages, queue position, the DAG layout, array
children, the submit form's checks, and when the local kubeconfig may act for a user."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import kubernetes
import pytest
from hypothesis import given
from hypothesis import strategies as st

from barge.console import forms, queries
from barge.console.access import is_loopback, loopback_host, token_configuration
from barge.console.server import local_mode


def job(name: str, namespace: str = "ns", queue: str = "q", state: str | None = "RUNNABLE", created: str = "",
        **extra: Any) -> dict[str, Any]:
    status = extra.pop("status", {})
    created = created or f"2026-01-01T00:00:{name[-2:]}Z"
    return {"metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": {"jobQueue": queue, "jobDefinition": "d", **extra},
            "status": {**({"state": state} if state else {}), **status}}


JOBS = [job(f"j{i:02d}", namespace="a" if i % 2 else "b", queue="q1" if i < 5 else "q2",
            state="RUNNING" if i % 3 == 0 else "RUNNABLE") for i in range(12)]


@pytest.mark.parametrize(("wanted", "names"), [
    (queries.JobFilter(namespace="a"), ["j11", "j09", "j07", "j05", "j03", "j01"]),
    (queries.JobFilter(queue="q1", state="RUNNING"), ["j03", "j00"]),
    (queries.JobFilter(name="j1"), ["j11", "j10"]),
    (queries.JobFilter(sort="oldest", namespace="b", queue="q2"), ["j06", "j08", "j10"]),
])
def test_filters_and_sorts(wanted: queries.JobFilter, names: list[str]) -> None:
    ordered = sorted(JOBS, key=queries.sort_key(wanted.sort), reverse=wanted.sort == "newest")
    assert [j["metadata"]["name"] for j in queries.page_of(ordered, wanted).items] == names


def test_pages_cover_every_match_once_and_say_how_many() -> None:
    ordered = sorted(JOBS, key=queries.sort_key("name"))
    pages = [queries.page_of(ordered, queries.JobFilter(sort="name", page=p), size=5) for p in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [5, 5, 2]
    assert [j for p in pages for j in p.items] == ordered
    assert {(p.total, p.pages) for p in pages} == {(12, 3)}
    assert queries.page_of(ordered, queries.JobFilter(page=9), size=5).page == 3, "past the end: the last page"


def test_bad_filters_are_named() -> None:
    assert set(queries.JobFilter(state="DONE", sort="size", page=0).problems()) == {"state", "sort", "page"}
    assert queries.JobFilter(state="RUNNABLE").problems() == {}


def test_queue_position_counts_runnable_jobs_of_the_same_queue_in_serving_order() -> None:
    a = job("a01", status={"queuedAt": 10.0})
    b = job("b02", status={"queuedAt": 5.0})
    urgent = job("u03", status={"queuedAt": 20.0}, schedulingPriorityOverride=5)
    other_queue = job("o04", queue="other", status={"queuedAt": 1.0})
    running = job("r05", state="RUNNING", status={"queuedAt": 1.0})
    everything = [a, b, urgent, other_queue, running]
    assert queries.queue_position(urgent, everything) == (1, 3)
    assert queries.queue_position(b, everything) == (2, 3)
    assert queries.queue_position(a, everything) == (3, 3)
    assert queries.queue_position(running, everything) is None


def test_waits_for_names_open_dependencies_and_the_capacity_category() -> None:
    pending = job("p01", state="PENDING")
    assert queries.waits_for(pending, {"a": "RUNNING", "b": "SUCCEEDED", "c": "does not exist yet"}) == \
        "dependencies: a (RUNNING), c (does not exist yet)"
    waiting = job("w01", status={"statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU"})
    assert queries.waits_for(waiting) == "capacity now in use by other jobs to be freed"
    assert queries.waits_for(job("s01", state="SUCCEEDED")) == ""


def test_dependency_graph_lays_out_the_connected_dag_in_layers() -> None:
    jobs = [job("fetch"), job("left", dependsOn=[{"jobName": "fetch"}]),
            job("right", dependsOn=[{"jobName": "fetch", "condition": "Finished"}]),
            job("merge", dependsOn=[{"jobName": "left"}, {"jobName": "right"}, {"jobName": "later"}]),
            job("alone")]
    graph = queries.dependency_graph(jobs[1], jobs)
    assert {n["name"] for n in graph.nodes} == {"fetch", "left", "right", "merge", "later"}
    assert sorted((e["source"], e["target"]) for e in graph.edges) == [
        ("fetch", "left"), ("fetch", "right"), ("later", "merge"), ("left", "merge"), ("right", "merge")]
    x = {n["name"]: n["x"] for n in graph.nodes}
    assert x["fetch"] == x["later"] < x["left"] == x["right"] < x["merge"]
    assert next(n for n in graph.nodes if n["name"] == "later")["state"] == "MISSING"
    assert all(e["x1"] < e["x2"] for e in graph.edges), "edges point forward"
    assert queries.dependency_graph(jobs[4], jobs).nodes == [], "a job without dependencies has no graph"


def test_a_cycle_still_draws() -> None:
    jobs = [job("a01", dependsOn=[{"jobName": "b02"}]), job("b02", dependsOn=[{"jobName": "a01"}])]
    graph = queries.dependency_graph(jobs[0], jobs)
    assert len(graph.nodes) == 2 and len(graph.edges) == 2


def test_array_children_by_state_with_ranges() -> None:
    array = job("arr", state="PENDING", arrayProperties={"size": 8},
                status={"arrayProperties": {"size": 8, "succeededIndices": "0-2", "failedIndices": "5"}})
    children = queries.array_children(array, {3: "RUNNING", 4: "STARTING"})
    assert children is not None
    assert [c["state"] for c in children["cells"]] == ["SUCCEEDED"] * 3 + ["RUNNING", "STARTING", "FAILED",
                                                                           "RUNNABLE", "RUNNABLE"]
    assert children["ranges"] == {"SUCCEEDED": "0-2", "RUNNING": "3", "STARTING": "4", "FAILED": "5",
                                  "RUNNABLE": "6-7"}
    assert queries.array_children(job("one"), {}) is None


@given(st.sets(st.integers(0, 300)))
def test_ranges_round_trip(indices: set[int]) -> None:
    text = queries.format_ranges(indices)
    assert queries.parse_ranges(text) == indices
    assert ",," not in text


def test_throughput_counts_finished_jobs_per_bucket_of_the_last_hour() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    done = [job("s01", state="SUCCEEDED", status={"stoppedAt": "2026-01-01T11:58:00Z"}),
            job("f02", state="FAILED", status={"stoppedAt": "2026-01-01T11:57:00Z"}),
            job("s03", state="SUCCEEDED", status={"stoppedAt": "2026-01-01T11:02:00Z"}),
            job("o04", state="SUCCEEDED", status={"stoppedAt": "2026-01-01T10:30:00Z"})]
    buckets = queries.throughput(done, now)
    assert buckets[-1] == {"succeeded": 1, "failed": 1}
    assert buckets[0] == {"succeeded": 1, "failed": 0}
    assert sum(b["succeeded"] + b["failed"] for b in buckets) == 3


FORM = {"namespace": "team", "job-name": "render", "job-definition": "render", "job-queue": "high"}


def test_the_form_carries_the_contracts_labels() -> None:
    assert list(forms.LABELS.values())[:7] == ["Job name", "Job definition", "Job queue", "Array size",
                                               "Run children sequentially", "Parameters", "Environment variables"]


def test_a_full_form_becomes_a_batchjob() -> None:
    result = forms.submission({**FORM, "array-size": "10", "sequential": "1", "parameters": "frame=7\n\nsize=big",
                               "environment": "MODE=fast", "vcpus": "0.5", "memory": "256",
                               "depends-on": "prep\nother:N_TO_N:Finished", "attempts": "3", "timeout": "120"})
    assert result.errors == {}
    assert result.body == {
        "apiVersion": "barge.dev/v1alpha1", "kind": "BatchJob", "metadata": {"name": "render", "namespace": "team"},
        "spec": {"jobDefinition": "render", "jobQueue": "high", "parameters": {"frame": "7", "size": "big"},
                 "overrides": {"env": [{"name": "MODE", "value": "fast"}], "vcpus": 0.5, "memory": 256},
                 "arrayProperties": {"size": 10},
                 "dependsOn": [{"type": "SEQUENTIAL"}, {"jobName": "prep"},
                               {"jobName": "other", "type": "N_TO_N", "condition": "Finished"}],
                 "retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 120}}}


@pytest.mark.parametrize(("values", "field", "words"), [
    ({"environment": "AWS_BATCH_JOB_ID=x"}, "environment", "reserved"),
    ({"environment": "aws_batch_x=1"}, "environment", "reserved"),
    ({"environment": "novalue"}, "environment", "NAME=VALUE"),
    ({"parameters": "=x"}, "parameters", "NAME=VALUE"),
    ({"sequential": "1"}, "sequential", "array size"),
    ({"array-size": "1"}, "array-size", "between 2 and 100000"),
    ({"array-size": "many"}, "array-size", "whole number"),
    ({"job-name": "Bad_Name"}, "job-name", "lower-case"),
    ({"job-queue": ""}, "job-queue", "choose"),
    ({"vcpus": "-1"}, "vcpus", "above 0"),
    ({"timeout": "30"}, "timeout", "between 60"),
    ({"attempts": "11"}, "attempts", "between 1 and 10"),
    ({"depends-on": "prep:LATER"}, "depends-on", "neither N_TO_N"),
    ({"depends-on": "other:N_TO_N"}, "depends-on", "needs an array size"),
])
def test_bad_input_is_named_next_to_its_field(values: dict[str, str], field: str, words: str) -> None:
    result = forms.submission({**FORM, **values})
    assert result.body is None
    assert words in result.errors[field]


def test_pasted_yaml() -> None:
    good = forms.yaml_submission("kind: BatchJob\nmetadata: {name: a}\nspec: {jobDefinition: d, jobQueue: q}", "team")
    assert good.body is not None and good.body["metadata"] == {"name": "a", "namespace": "team"}
    assert good.body["apiVersion"] == "barge.dev/v1alpha1"
    for text, words in (("kind: JobQueue", "kind BatchJob"), (": :", "not YAML"), ("kind: BatchJob", "metadata.name"),
                        ("kind: BatchJob\nmetadata: {name: a}\nspec: {overrides: {env: [{name: AWS_BATCH_X}]}}",
                         "reserved")):
        assert words in forms.yaml_submission(text, "team").errors["yaml"]


@pytest.mark.parametrize(("address", "login", "local"), [
    ("127.0.0.1", False, True), ("::1", False, True), ("localhost", False, True), ("127.0.0.1", True, False),
    ("0.0.0.0", False, False), ("10.0.0.5", False, False), ("console.example", False, False)])
def test_the_kubeconfig_acts_for_users_only_on_loopback_without_login(address: str, login: bool, local: bool) -> None:
    assert local_mode(address, login) is local
    assert is_loopback(address) is (address in ("127.0.0.1", "::1", "localhost"))


def test_a_token_configuration_carries_only_the_users_token() -> None:
    base = kubernetes.client.Configuration()
    base.host, base.ssl_ca_cert = "https://api:6443", "/ca.crt"
    base.cert_file, base.key_file = "/admin.crt", "/admin.key"
    base.api_key = {"authorization": "Bearer admin"}
    user = token_configuration(base, "user-token")
    assert user.api_key == {"authorization": "Bearer user-token"}
    assert (user.host, user.ssl_ca_cert) == ("https://api:6443", "/ca.crt")
    assert user.cert_file is None and user.key_file is None
    assert base.api_key == {"authorization": "Bearer admin"}, "the base is unchanged"


def test_the_jobs_page_serves_a_page_of_a_filled_store_over_http() -> None:
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from barge.bench.console_page import PAGES, OpenAccess, filled_store, measure
    from barge.console.app import build_app

    async def fetch() -> tuple[int, str, int, str]:
        client = TestClient(TestServer(build_app(OpenAccess(base=None, local=True), filled_store(120))))
        await client.start_server()
        try:
            page = await client.get("/jobs?namespace=team-3&sort=name&page=2")
            bad = await client.get("/jobs?state=DONE&fragment=1")
            rebound = await client.get("/jobs", headers={"Host": "attacker.example:8080"})
            assert rebound.status == 403, "a page of another site, its name rebound to 127.0.0.1, reads nothing"
            return page.status, await page.text(), bad.status, await bad.text()
        finally:
            await client.close()

    status, html, bad_status, bad_html = asyncio.run(fetch())
    assert status == 200
    assert "12 jobs" in html, "team-3 holds every tenth of 120 jobs"
    rows = re.findall(r'<tr data-job="([^"]+)"', html)
    assert rows == sorted(rows) and len(rows) == 12, "page 2 is past the end: the last page, sorted by name"
    assert bad_status == 400 and "unknown state &#39;DONE&#39;" in bad_html and "<html" not in bad_html
    figures = asyncio.run(measure(200, 1))
    assert set(figures) == {*PAGES, "/jobs after a change"}


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("localhost", True),
    ("attacker.example:8080", False), ("127.0.0.1.attacker.example", False), ("10.0.0.1:8080", False)])
def test_local_mode_answers_only_to_a_loopback_host_header(host: str, local: bool) -> None:
    assert loopback_host(host) is local


def test_a_log_is_read_only_for_a_pod_of_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from types import SimpleNamespace

    from barge.console import calls

    pods = {"mine-1": "job-a", "other-1": "job-b"}

    class FakeCore:
        def __init__(self, api_client: Any) -> None:
            self.api_client = api_client

        def read_namespaced_pod(self, name: str, namespace: str) -> Any:
            return SimpleNamespace(metadata=SimpleNamespace(labels={"barge.dev/job-id": pods[name]}))

        def read_namespaced_pod_log(self, name: str, namespace: str, tail_lines: int) -> str:
            return f"log of {name} as {self.api_client}"

    monkeypatch.setattr(kubernetes.client, "CoreV1Api", FakeCore)
    assert asyncio.run(calls.pod_log("user-client", "ns", "mine-1", "job-a")) == "log of mine-1 as user-client"
    with pytest.raises(calls.CallError, match="does not belong to this job"):
        asyncio.run(calls.pod_log("user-client", "ns", "other-1", "job-a"))


def test_the_form_names_a_definition_or_queue_that_does_not_exist() -> None:
    body = forms.submission(FORM).body
    assert body is not None
    assert forms.reference_problems(body, {"render"}, {"high"}) == {}
    problems = forms.reference_problems(body, {"other"}, {"low"})
    assert problems == {"job-definition": "no job definition 'render' in namespace 'team' (there: other)",
                        "job-queue": "no job queue 'high'"}
