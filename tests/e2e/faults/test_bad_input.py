"""Bad input, generated from the CRD schemas (tests/e2e/faults/corpus.py), and huge objects: every
invalid object is refused at apply naming the field; every object the API server accepts ends in
a state with a reason (FAILED naming what is wrong, in one line); nothing crashes the operator or
stalls another queue, and a canary submitted after the corpus still runs.

    flock /tmp/cluster.lock env BARGE_FAULT_SEED=17 scripts/test -m faults -k bad_input -s
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from barge.core.states import FAILED, SUCCEEDED, TERMINAL
from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import OperatorProcess
from tests.e2e.faults.conftest import fault_seed, full_scale
from tests.e2e.faults.corpus import Entry, corpus
from tests.e2e.kube import eventually

COUNTS = {"ComputeEnvironment": 10, "JobQueue": 10, "JobDefinition": 8, "BatchJob": 40}
if full_scale():
    COUNTS = {kind: count * 5 for kind, count in COUNTS.items()}
ETCD_OBJECT_LIMIT = 1_572_864  # bytes: etcd's default request size limit, hence the largest object
ARRAY_CAP = 10  # drawn arrays that can really run stay small, so the corpus costs the machine little

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if full_scale() else 900)]


def refusal_names_field(error: Any, field: str) -> bool:
    try:
        message = json.loads(error.body).get("message", "")
    except (TypeError, ValueError):
        message = str(error.body)
    return error.status in (400, 422) and field in message


def one_line_reason(status: dict[str, Any]) -> bool:
    reason = status.get("statusReason") or ""
    return bool(reason) and "\n" not in reason and len(reason) <= 1024


def test_bad_input_is_refused_naming_the_field_or_ends_with_a_reason(
        barge: Barge, process: OperatorProcess, capsys: pytest.CaptureFixture[str]) -> None:
    seed = fault_seed()
    replay = f"[seed {seed}: replay with BARGE_FAULT_SEED={seed}; operator log {process.log_path}]"
    ce, queue = barge.name("ce"), barge.name("q")
    closed_ce, closed_queue = barge.name("closed-ce"), barge.name("closed-q")
    canary_ce, canary_queue = barge.name("canary-ce"), barge.name("canary-q")
    barge.apply(compute_environment(ce, 2), job_queue(queue, [ce]),
                compute_environment(closed_ce, 2, state="DISABLED"), job_queue(closed_queue, [closed_ce]),
                compute_environment(canary_ce, 1), job_queue(canary_queue, [canary_ce], priority=1000),
                job_definition("work", cpu="500m"))

    def some_real(rng: random.Random, spec: dict[str, Any]) -> None:
        """Most drawn jobs name the queue and definition that exist, so they get past admission."""
        if rng.random() < 0.7:
            spec["jobQueue"] = queue
        if rng.random() < 0.7:
            spec["jobDefinition"] = "work"
        array = spec.get("arrayProperties")
        if isinstance(array, dict) and spec["jobQueue"] == queue:
            array["size"] = min(int(array.get("size", 2)), ARRAY_CAP)

    began = time.monotonic()
    entries: list[Entry] = []
    for i, (kind, count) in enumerate(COUNTS.items()):
        entries += corpus(kind, count, seed + i, barge.name(kind.lower()[:3]),
                          fix=some_real if kind == "BatchJob" else None)
    drawn_in = time.monotonic() - began

    accepted_broken: list[str] = []  # broken on purpose, yet stored
    unnamed: list[str] = []          # refused without naming the field
    refused_valid = 0                # schema-valid but refused by a CEL rule (naming a field under spec)
    accepted_jobs: list[str] = []
    for entry in entries:
        name = entry.body["metadata"]["name"]
        error = barge.try_create(entry.body)
        if entry.broken_at is not None:
            if error is None:
                accepted_broken.append(f"{entry.kind} {name}: {entry.broken_at} broken, stored: {entry.body['spec']}")
            elif not refusal_names_field(error, entry.broken_at):
                unnamed.append(f"{entry.kind} {name}: {entry.broken_at} broken; refused with {error.body[:300]}")
        elif error is not None:
            refused_valid += 1
            if not refusal_names_field(error, "spec"):
                unnamed.append(f"{entry.kind} {name}: refused with {error.body[:300]}")
        elif entry.kind == "BatchJob":
            accepted_jobs.append(name)
        elif entry.kind == "JobDefinition":  # a job per drawn definition takes its template to the API server
            job = batch_job(f"uses-{name}", name, queue)
            assert barge.try_create(job) is None
            accepted_jobs.append(job["metadata"]["name"])

    # Huge: 1 MiB of env, 20 dependencies, an array of 100,000 that waits on a DISABLED environment.
    env = [{"name": f"BIG_{i}", "value": "x" * 5000} for i in range(200)]
    huge = [batch_job("huge-env", "work", queue, overrides={"env": env}),
            *[batch_job(f"dep-{i}", "work", queue) for i in range(20)],
            batch_job("many-deps", "work", queue, dependsOn=[{"jobName": f"dep-{i}"} for i in range(20)]),
            batch_job("big-array", "work", closed_queue, arrayProperties={"size": 100_000})]
    for job in huge:
        assert barge.try_create(job) is None, job["metadata"]["name"]
    barge.apply(batch_job("canary", "work", canary_queue))

    canary = barge.wait_state("canary", *TERMINAL, timeout=120)
    deadline = time.monotonic() + 180
    statuses: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        statuses = {j["metadata"]["name"]: j.get("status") or {} for j in barge.cluster.batchjobs(barge.namespace)}
        if all(statuses.get(n, {}).get("state") and (statuses[n].get("statusReason") or statuses[n]["state"]
               == SUCCEEDED) for n in accepted_jobs) and statuses.get("huge-env", {}).get("state") in TERMINAL \
                and statuses.get("many-deps", {}).get("state") in TERMINAL:
            break
        time.sleep(2)
    silent = [f"{n}: {statuses.get(n)}"[:400] for n in accepted_jobs
              if not statuses.get(n, {}).get("state")
              or not (statuses[n].get("statusReason") or statuses[n]["state"] == SUCCEEDED)]
    dumps = [f"{n}: {s.get('statusReason')!r}"[:400] for n, s in statuses.items()
             if s.get("state") == FAILED and not one_line_reason(s)]
    big = barge.cluster.batchjob(barge.namespace, "big-array")
    big.setdefault("status", {})
    huge_env = barge.cluster.batchjob(barge.namespace, "huge-env")
    huge_env.setdefault("status", {})
    states: dict[str, int] = {}
    reasons: dict[str, int] = {}  # why accepted jobs failed, by their reason's first words
    for n in accepted_jobs:
        state = str(statuses.get(n, {}).get("state"))
        states[state] = states.get(state, 0) + 1
        if state == FAILED:
            head = " ".join(str(statuses[n].get("statusReason")).split()[:6])
            reasons[head] = reasons.get(head, 0) + 1
    with capsys.disabled():
        print(f"""
fault tier figures (bad input, seed {seed}):
  corpus                     {len(entries)} objects drawn in {drawn_in:.0f} s \
({sum(e.broken_at is not None for e in entries)} broken at one field)
  broken, refused naming it  {sum(e.broken_at is not None for e in entries) - len(accepted_broken)} \
(accepted anyway: {len(accepted_broken)}; refused without the field: {len(unnamed)})
  valid, refused by CEL      {refused_valid}
  accepted jobs              {len(accepted_jobs)}, states {states}; without a state or reason: {len(silent)}
  huge                       huge-env {huge_env['status'].get('state')} ({len(json.dumps(huge_env))} bytes), \
many-deps {statuses.get('many-deps', {}).get('state')}, big-array {big['status'].get('state')} \
(status {len(json.dumps(big['status']))} bytes)
  canary                     {canary['state']}
  why accepted jobs failed   {'; '.join(f'{n} x {r}' for r, n in sorted(reasons.items(), key=lambda i: -i[1]))}""",
              flush=True)

    assert process.process is not None and process.process.poll() is None, f"{replay} the operator exited"
    assert canary["state"] == SUCCEEDED, f"{replay} the canary after the corpus: {canary}"
    assert not accepted_broken, f"{replay} invalid objects stored: {accepted_broken[:10]}"
    assert not unnamed, f"{replay} refused without naming the field: {unnamed[:10]}"
    assert not silent, f"{replay} accepted jobs with no state or reason: {silent[:10]}"
    assert not dumps, f"{replay} FAILED with a reason that is not one line of words: {dumps[:5]}"
    assert statuses["many-deps"]["state"] == SUCCEEDED, statuses["many-deps"]
    assert huge_env["status"].get("state") == FAILED and one_line_reason(huge_env["status"]) and \
        huge_env["status"]["statusReason"].startswith("Job too large"), huge_env["status"]
    assert len(json.dumps(huge_env)) < ETCD_OBJECT_LIMIT
    summary = big["status"]["arrayProperties"]["statusSummary"]
    assert big["status"]["state"] == "PENDING" and summary["RUNNABLE"] == 100_000, big["status"]
    assert len(json.dumps(big["status"])) < 16 * 1024
    barge.cluster.kubectl("patch", "batchjob", "big-array", "-n", barge.namespace, "--type=merge",
                          "-p", '{"spec":{"cancel":{"reason":"corpus done"}}}')
    eventually(lambda: barge.status("big-array").get("state") == FAILED, 60, message="the big array cancelled")
