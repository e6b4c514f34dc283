"""The barge CLI used as a person would, against real jobs in every state; and /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, failing, job_definition, job_queue
from tests.e2e.conftest import metrics_url
from tests.e2e.kube import eventually

BY_INDEX = "pod-fail-by-index.stage.barge.dev/exit-codes"
VENV_BIN = Path(sys.executable).parent


def cli(barge: Barge, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(barge.cluster.kubeconfig)}
    return subprocess.run([sys.executable, "-m", "barge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def scenario(barge: Barge) -> tuple[str, str]:
    """A job running, one waiting for capacity, one blocked on a dependency, an array with a failed child."""
    small, big = barge.name("small"), barge.name("big")
    barge.apply(compute_environment(small, 2), job_queue(small, [small]),
                compute_environment(big, 16), job_queue(big, [big]),
                job_definition("hog", cpu="2", delay="120s"), job_definition("work", cpu="1", delay="1s"),
                job_definition("child", cpu="1", delay="1s", annotations={BY_INDEX: "2=3"}))
    barge.apply(batch_job("running", "hog", small))
    barge.wait_state("running", "RUNNING")
    barge.apply(batch_job("waiting", "work", small),
                batch_job("blocked", "work", small, dependsOn=[{"jobName": "waiting"}]),
                batch_job("arr", "child", big, arrayProperties={"size": 5}))
    barge.wait_state("arr", "FAILED")
    eventually(lambda: (barge.status("waiting").get("statusReason") or "").startswith("CAPACITY:"), 30,
               message="a capacity reason")
    return small, big


def test_cli_answers_where_is_my_job_and_why(barge: Barge) -> None:
    small, _big = scenario(barge)
    ns = ["-n", barge.namespace]

    listed = cli(barge, "list", *ns)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "STATE", "QUEUE"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert rows == {"running": "RUNNING", "waiting": "RUNNABLE", "blocked": "PENDING", "arr": "FAILED"}
    assert [line.split()[0] for line in lines[1:]][-1] == "running", "newest first"
    runnable = cli(barge, "list", *ns, "--state", "RUNNABLE,PENDING", "-o", "json")
    assert sorted(j["metadata"]["name"] for j in json.loads(runnable.stdout)["items"]) == ["blocked", "waiting"]
    assert cli(barge, "list", *ns, "--state", "BOGUS").returncode == 2

    waiting = cli(barge, "describe", *ns, "waiting")
    assert waiting.returncode == 0
    assert "Queue position: 1 of 1 RUNNABLE" in waiting.stdout
    assert "capacity: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY" in waiting.stdout and small in waiting.stdout
    blocked = cli(barge, "describe", *ns, "blocked").stdout
    assert "a dependency" in blocked and "waiting  job  condition Succeeded  -> RUNNABLE" in blocked
    array = cli(barge, "describe", *ns, "arr").stdout
    assert "Failed indices: 2" in array and "SUCCEEDED 4" in array and "child 2 attempt 1: exit 3" in array
    running = cli(barge, "describe", *ns, "running").stdout
    assert "State:          RUNNING" in running and "node kwok-cpu-" in running

    missing = cli(barge, "describe", *ns, "nope")
    assert missing.returncode == 3 and "BatchJob 'nope' not found" in missing.stderr and "running" in missing.stderr

    queues = cli(barge, "queues").stdout
    row = next(line.split() for line in queues.splitlines() if line.startswith(small))
    header = queues.splitlines()[0].split()
    counts = dict(zip(header, row, strict=True))
    assert (counts["RUNNABLE"], counts["RUNNING"], counts["PENDING"]) == ("1", "1", "1")
    envs = cli(barge, "envs").stdout
    env_row = next(line for line in envs.splitlines() if line.startswith(small))
    assert "2 vCPU" in env_row and small in env_row.split()[-1]

    logs = cli(barge, "logs", *ns, "arr")
    assert logs.returncode == 2 and "--index" in logs.stderr
    assert cli(barge, "logs", *ns, "arr", "--index", "2", "--attempt", "9").returncode == 3

    cancelled = cli(barge, "cancel", *ns, "waiting", "--reason", "not today")
    assert cancelled.returncode == 0 and "cancel requested" in cancelled.stdout
    assert barge.wait_state("waiting", "FAILED")["isCancelled"] is True
    assert barge.wait_state("blocked", "FAILED")["statusReason"] == "Dependent Job failed"
    terminate = cli(barge, "terminate", *ns, "running", "--reason", "enough")
    assert terminate.returncode == 0
    assert barge.wait_state("running", "FAILED")["isTerminated"] is True

    failed_wait = cli(barge, "wait", *ns, "arr")
    assert failed_wait.returncode == 1 and "5/5 children done" in failed_wait.stderr

    plugin = subprocess.run([barge.cluster.kubectl_binary(), "barge", "list", "-n", barge.namespace],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
                                 "KUBECONFIG": str(barge.cluster.kubeconfig)})
    assert plugin.returncode == 0 and "arr" in plugin.stdout, plugin.stderr


def test_submit_and_wait_like_aws_submit_job(barge: Barge) -> None:
    q = barge.name("q")
    barge.apply(compute_environment(q, 8), job_queue(q, [q]),
                job_definition("echo", cpu="1", command=["echo", "Ref::word"], parameters={"word": "default"}))
    bad = cli(barge, "submit", "-n", barge.namespace, "--job-definition", "echo", "--job-queue", "nope")
    assert bad.returncode == 3 and "queue 'nope' not found; queues:" in bad.stderr and q in bad.stderr
    submitted = cli(barge, "submit", "-n", barge.namespace, "--job-definition", "echo", "--job-queue", q,
                    "--parameters", "word=hello", "--vcpus", "2", "--env", "MODE=fast", "--attempts", "2",
                    "--wait")
    assert submitted.returncode == 0, submitted.stderr
    name = submitted.stdout.strip()
    assert name.startswith("echo-")
    status = barge.status(name)
    assert status["state"] == "SUCCEEDED"
    job = barge.job(name)
    assert job["spec"]["overrides"] == {"env": [{"name": "MODE", "value": "fast"}], "vcpus": 2.0}
    assert job["spec"]["retryStrategy"] == {"attempts": 2}
    fail = failing(5)
    barge.apply(job_definition("dies", labels=fail["labels"], annotations=fail["annotations"]))
    died = cli(barge, "submit", "-n", barge.namespace, "--job-definition", "dies", "--job-queue", q,
               "--name", "dies", "--depends-on", f"{name}:Succeeded", "--wait")
    assert died.returncode == 1 and died.stdout.strip() == "dies"
    assert barge.job("dies")["spec"]["dependsOn"] == [{"jobName": name, "condition": "Succeeded"}]


def test_metrics_match_the_jobs_that_ran(barge: Barge) -> None:
    url = metrics_url()
    if url is None:
        pytest.skip("the installed operator's metrics URL was not given (BARGE_E2E_METRICS_URL)")
    q = barge.name("m")
    barge.apply(compute_environment(q, 6), job_queue(q, [q]), job_definition("ok", cpu="1", delay="2s"))
    fail = failing(1, delay="2s")
    barge.apply(job_definition("bad", cpu="1", delay="2s", labels=fail["labels"], annotations=fail["annotations"]))
    barge.apply(*[batch_job(f"ok-{i}", "ok", q) for i in range(4)], batch_job("bad", "bad", q))
    barge.wait_all([f"ok-{i}" for i in range(4)] + ["bad"], "SUCCEEDED", "FAILED")

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        return float(samples.get((name, tuple(sorted(labels.items()))), -1))

    samples = eventually(lambda: (s := scrape()) and value(s, "barge_jobs", queue=q, state="SUCCEEDED") == 4 and s,
                         30, message="the queue gauge to catch up")
    assert value(samples, "barge_jobs_submitted_total", queue=q) == 5
    assert value(samples, "barge_jobs_succeeded_total", queue=q) == 4
    assert value(samples, "barge_jobs_failed_total", queue=q) == 1
    assert value(samples, "barge_jobs", queue=q, state="FAILED") == 1
    assert value(samples, "barge_jobs", queue=q, state="RUNNABLE") == 0
    assert value(samples, "barge_job_wait_seconds_count", queue=q) == 5
    assert value(samples, "barge_quota_limit", compute_environment=q, resource="cpu") == 6
    assert value(samples, "barge_quota_used", compute_environment=q, resource="cpu") == 0
    assert value(samples, "barge_placements_total", compute_environment=q) == 5
    assert value(samples, "barge_scheduling_cycle_seconds_count") > 0
    assert value(samples, "barge_kubernetes_api_requests_total", verb="create", resource="jobs") >= 5
    assert not [k for k in samples if any(v == "ok-0" for _, v in k[1])], "no per-job label values"
