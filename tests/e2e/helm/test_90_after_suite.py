"""Run by scripts/test-helm after the whole e2e suite went through the installed operator: a leader
killed mid-run, an upgrade under running jobs, the chart's RBAC against what the operator really did
(the apiserver's audit log), and uninstall."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, failing, job_definition, job_queue
from tests.e2e.helm.chart import (
    NAMESPACE,
    RELEASE,
    ROOT,
    SERVICE_ACCOUNT,
    audit_events,
    helm,
    install,
    leader,
    operator_pods,
)
from tests.e2e.kube import Cluster, eventually


@pytest.fixture
def audited(cluster: Cluster) -> Cluster:
    from barge.dev import cluster as local

    if not local.audit_log_path().is_file():
        pytest.skip("needs the local cluster's audit log")
    return cluster


class JobWatch:
    """Every Kubernetes Job that appears in a namespace while it runs: name -> the uids it had.
    A Job created twice (deleted and created again, or by two operators) shows up with two uids."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.uids: dict[str, set[str]] = collections.defaultdict(set)
        self._watch = kubernetes.watch.Watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:  # each (re)start lists the Jobs that exist, so a dropped watch loses nothing that lasts
                for event in self._watch.stream(self.cluster.batch.list_namespaced_job, self.namespace,
                                                timeout_seconds=300):
                    job = event["object"]
                    self.uids[job.metadata.name].add(job.metadata.uid)
            except Exception:  # the apiserver may end a watch at any time
                time.sleep(0.2)

    def __enter__(self) -> JobWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._watch.stop()

    def assert_each_created_once(self, expected: int) -> None:
        eventually(lambda: len(self.uids) >= expected, 30, message=f"{expected} Jobs seen by the watch")
        twice = {name: uids for name, uids in self.uids.items() if len(uids) > 1}
        assert not twice, f"Jobs created more than once: {twice}"
        assert len(self.uids) == expected, sorted(self.uids)


def _queue(barge: Barge, vcpus: int, delay: str) -> str:
    q = barge.name("q")
    fail = failing(1, delay=delay)
    barge.apply(compute_environment(q, vcpus), job_queue(q, [q]), job_definition("ok", cpu="1", delay=delay),
                job_definition("bad", cpu="1", delay=delay, labels=fail["labels"], annotations=fail["annotations"]))
    return q


def test_killing_the_leader_mid_run_loses_nothing_and_creates_no_job_twice(barge: Barge) -> None:
    cluster = barge.cluster
    q = _queue(barge, 20, "4s")
    good, bad = [f"ok-{i}" for i in range(190)], [f"bad-{i}" for i in range(10)]
    with JobWatch(cluster, barge.namespace) as watch:
        barge.apply(*[batch_job(n, "ok", q) for n in good], *[batch_job(n, "bad", q) for n in bad])
        eventually(lambda: sum((j.get("status") or {}).get("state") == "SUCCEEDED"
                               for j in cluster.batchjobs(barge.namespace)) >= 40, 180, interval=1,
                   message="40 jobs done before the kill")
        old = leader(cluster)
        assert old
        cluster.kubectl("delete", "pod", "-n", NAMESPACE, old, "--grace-period=0", "--force")
        new = eventually(lambda: (h := leader(cluster)) and h != old and h, 60, message="the standby to take over")
        assert new in {p.metadata.name for p in operator_pods(cluster)}
        done = barge.wait_all(good + bad, "SUCCEEDED", "FAILED", timeout=600)
        assert {n for n, s in done.items() if s["state"] == "SUCCEEDED"} == set(good)
        assert {n for n, s in done.items() if s["state"] == "FAILED"} == set(bad)
        assert all(len(s["attempts"]) == 1 for s in done.values()), "no job ran twice"
        watch.assert_each_created_once(200)


def test_upgrade_under_running_jobs_keeps_them_running_and_turns_retention_on(barge: Barge) -> None:
    cluster = barge.cluster
    q = _queue(barge, 30, "40s")
    names = [f"long-{i}" for i in range(30)]
    with JobWatch(cluster, barge.namespace) as watch:
        barge.apply(*[batch_job(n, "ok", q) for n in names])
        barge.wait_all(names, "RUNNING", timeout=120)
        before = {p.metadata.name for p in operator_pods(cluster)}
        install(cluster, "--set", "finishedJobRetentionSeconds=15",
                "--set", f"podAnnotations.rollout={uuid.uuid4().hex}")
        after = {p.metadata.name for p in operator_pods(cluster)}
        assert before.isdisjoint(after), "the upgrade replaced every operator pod"
        done = barge.wait_all(names, "SUCCEEDED", "FAILED", timeout=300)
        assert all(s["state"] == "SUCCEEDED" and len(s["attempts"]) == 1 for s in done.values()), done
        watch.assert_each_created_once(30)
    eventually(lambda: not cluster.batchjobs(barge.namespace), 120,
               message="finished BatchJobs deleted after the retention the upgrade set")


# Rights the code needs only to recover from a rare interleaving no test can force, checked statically.
RECOVERY_ONLY = {
    ("batch", "jobs", "get"): "self.batch.read_namespaced_job",  # an array's Job that already exists
    # A NodePool left behind by a deleted environment (its ownerReference lets the garbage collector
    # delete it first, so Barge's own delete is rarely needed).
    ("karpenter.sh", "nodepools", "delete"): "self.custom.delete_cluster_custom_object",
}


def _granted(manifest: str) -> Iterator[tuple[str, str, str]]:
    for doc in yaml.safe_load_all(manifest):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(field, []), f"{doc['metadata']['name']} uses a wildcard: {rule}"
                assert not rule.get("nonResourceURLs"), rule
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            yield group, resource, verb


def _used(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    used = set()
    for e in events:
        ref = e.get("objectRef") or {}
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, e["verb"]))
    return used


def test_the_chart_grants_exactly_what_the_operator_used(audited: Cluster) -> None:
    installed = kubernetes.client.AppsV1Api(audited.api).read_namespaced_deployment(RELEASE, NAMESPACE)
    since = installed.metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%S")
    events = [e for e in audit_events() if e["requestReceivedTimestamp"] >= since]  # this installation's
    assert events, f"no audit events of {SERVICE_ACCOUNT}"
    denied = {(e["verb"], e.get("objectRef", {}).get("resource")) for e in events
              if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"}
    assert not denied, f"the operator was refused: {denied}"
    granted = set(_granted(helm(audited, "get", "manifest", RELEASE, "-n", NAMESPACE).stdout))
    kube_io = (ROOT / "operator" / "barge" / "kube.py").read_text()
    for rule, call in RECOVERY_ONLY.items():
        assert call in kube_io, f"{rule} is allowed for {call}, which the code no longer calls"
    unused = granted - _used(events) - set(RECOVERY_ONLY)
    assert not unused, f"granted but never used by the operator during the e2e and Helm tiers: {sorted(unused)}"


def test_uninstall_removes_the_operator_and_keeps_crds_and_users_objects(barge: Barge, audited: Cluster) -> None:
    q = _queue(barge, 4, "600s")
    barge.apply(batch_job("kept", "ok", q))
    barge.wait_state("kept", "RUNNING")
    started = time.monotonic()
    helm(audited, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "2m")
    print(f"\nhelm uninstall: {time.monotonic() - started:.1f}s")
    eventually(lambda: not operator_pods(audited), 60, message="operator pods gone")
    assert not audited.kubectl("get", "deploy,sa,clusterrole,clusterrolebinding", "-A", "-l",
                               f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.strip()
    for plural in ("batchjobs", "jobdefinitions", "jobqueues", "computeenvironments", "schedulingpolicies"):
        assert audited.kubectl("get", "crd", f"{plural}.barge.dev", "-o", "name").stdout.strip()
    assert barge.status("kept")["state"] == "RUNNING", "users' BatchJobs stay"
    assert barge.cluster.batch.list_namespaced_job(barge.namespace).items, "and so do their Kubernetes Jobs"
