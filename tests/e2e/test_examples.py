"""Every file in examples/ applied to the cluster: each BatchJob reaches the state its comment promises.

A BatchJob's YAML document carries `# expect: STATE` or `# expect: STATE "words of its statusReason"`.
The examples' cluster-scoped objects get the test's prefix (and the references to them follow), and
their namespaced objects go to the test's namespace, so the run shares the cluster with others."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from barge.core.states import JOB_STATES
from tests.e2e.barge_objects import Barge
from tests.e2e.kube import eventually

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROMISE = re.compile(r'^#\s*expect:\s*([A-Z]+)(?:\s+"([^"]+)")?', re.MULTILINE)
CLUSTER_KINDS = {"ComputeEnvironment": "computeenvironments", "JobQueue": "jobqueues",
                 "SchedulingPolicy": "schedulingpolicies"}


@dataclass
class Promise:
    file: str
    job: str
    state: str
    reason: str | None


def documents() -> list[tuple[str, dict[str, Any], str]]:
    """(file, object, its document's text) for every object in examples/, in file order."""
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for text in re.split(r"^---\s*$", path.read_text(), flags=re.MULTILINE):
            obj = yaml.safe_load(text)
            if obj:
                found.append((path.name, obj, text))
    return found


def promises() -> list[Promise]:
    found = []
    for file, obj, text in documents():
        if obj["kind"] != "BatchJob":
            continue
        matches = PROMISE.findall(text)
        assert len(matches) == 1, f"{file}: BatchJob {obj['metadata']['name']} needs one `# expect: STATE` comment"
        state, reason = matches[0]
        assert state in JOB_STATES, f"{file}: {obj['metadata']['name']} promises unknown state {state}"
        found.append(Promise(file, obj["metadata"]["name"], state, reason or None))
    return found


def test_every_example_job_promises_a_state() -> None:
    jobs = [obj["metadata"]["name"] for _, obj, _ in documents() if obj["kind"] == "BatchJob"]
    assert [p.job for p in promises()] == jobs
    features = {key for _, obj, _ in documents() if obj["kind"] == "BatchJob" for key in obj["spec"]}
    assert {"arrayProperties", "dependsOn", "timeout"} <= features
    assert any(d.get("type") == "SEQUENTIAL" for _, o, _ in documents() for d in o.get("spec", {}).get("dependsOn", []))
    assert any(d.get("type") == "N_TO_N" for _, o, _ in documents() for d in o.get("spec", {}).get("dependsOn", []))
    assert any("retryStrategy" in o["spec"] for _, o, _ in documents() if o["kind"] == "JobDefinition")


def localised(barge: Barge) -> list[dict[str, Any]]:
    objects = []
    for _, obj, _ in documents():
        obj = yaml.safe_load(yaml.safe_dump(obj))
        if obj["kind"] in CLUSTER_KINDS:
            obj["metadata"]["name"] = barge.name(obj["metadata"]["name"])
        else:
            obj["metadata"].pop("namespace", None)
        if obj["kind"] == "JobQueue":
            for entry in obj["spec"]["computeEnvironmentOrder"]:
                entry["computeEnvironment"] = barge.name(entry["computeEnvironment"])
            if obj["spec"].get("schedulingPolicy"):
                obj["spec"]["schedulingPolicy"] = barge.name(obj["spec"]["schedulingPolicy"])
        if obj["kind"] == "BatchJob":
            obj["spec"]["jobQueue"] = barge.name(obj["spec"]["jobQueue"])
        objects.append(obj)
    return objects


def test_every_example_reaches_the_state_its_comment_promises(barge: Barge) -> None:
    expected = promises()
    barge.apply(*localised(barge))

    def kept() -> dict[str, dict[str, Any]] | None:
        jobs = {j["metadata"]["name"]: j.get("status") or {} for j in barge.cluster.batchjobs(barge.namespace)}
        done = {p.job: jobs[p.job] for p in expected if p.job in jobs and jobs[p.job].get("state") == p.state
                and (p.reason is None or p.reason in (jobs[p.job].get("statusReason") or ""))}
        return done if len(done) == len(expected) else None

    try:
        eventually(kept, 240, interval=2, message="every example in its promised state")
    except AssertionError:
        jobs = {j["metadata"]["name"]: j.get("status") or {} for j in barge.cluster.batchjobs(barge.namespace)}
        broken = [f"{p.file} {p.job}: promised {p.state} {p.reason or ''}, is {jobs.get(p.job, {}).get('state')} "
                  f"({jobs.get(p.job, {}).get('statusReason')})" for p in expected
                  if jobs.get(p.job, {}).get("state") != p.state
                  or (p.reason and p.reason not in (jobs.get(p.job, {}).get("statusReason") or ""))]
        raise AssertionError("examples not as promised:\n" + "\n".join(broken)) from None
    attempts = barge.status("flaky-download")["attempts"]
    assert [a.get("exitCode") for a in attempts] == [3, 0], "the retry example retries once, then succeeds"
    assert len(barge.status("bad-input")["attempts"]) == 1, "an EXIT rule does not retry"
    assert barge.status("frames")["arrayProperties"]["succeededIndices"] == "0-9"
