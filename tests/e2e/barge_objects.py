"""Builders for Barge objects in e2e tests, and a per-test set of cluster-scoped objects."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from barge.core.states import GROUP, VERSION
from tests.e2e.kube import Cluster, eventually

API = "barge.dev/v1alpha1"
DELAY = "pod-complete.stage.kwok.x-k8s.io/delay"
FAIL_LABEL = "pod-container-running-failed.stage.kwok.x-k8s.io"
FAIL_CODE = "pod-container-running-failed.stage.kwok.x-k8s.io/exit-code"
FAIL_DELAY = "pod-container-running-failed.stage.kwok.x-k8s.io/delay"
CLUSTER_PLURALS = {"ComputeEnvironment": "computeenvironments", "JobQueue": "jobqueues",
                   "SchedulingPolicy": "schedulingpolicies"}
PLURALS = {**CLUSTER_PLURALS, "JobDefinition": "jobdefinitions", "BatchJob": "batchjobs"}


def compute_environment(name: str, max_vcpus: int, pool: str = "cpu", state: str = "ENABLED",
                        **resources: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"maxvCpus": max_vcpus, "nodeSelector": {"barge.dev/pool": pool}, **resources}
    if pool == "gpu":
        spec.setdefault("tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    if pool == "real":
        spec.setdefault("tolerations", [{"key": "barge.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}])
    return {"apiVersion": API, "kind": "ComputeEnvironment", "metadata": {"name": name},
            "spec": {"type": "UNMANAGED", "state": state, "computeResources": spec}}


def job_queue(name: str, environments: list[str], priority: int = 1, state: str = "ENABLED",
              **spec: Any) -> dict[str, Any]:
    order = [{"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(environments)]
    return {"apiVersion": API, "kind": "JobQueue", "metadata": {"name": name},
            "spec": {"priority": priority, "state": state, "computeEnvironmentOrder": order, **spec}}


def job_definition(name: str, cpu: str = "1", delay: str = "1s", command: list[str] | None = None,
                   annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                   resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox",
                                 "command": command or ["sh", "-c", "echo hello"],
                                 "resources": resources or {"requests": {"cpu": cpu}}}
    template = {"metadata": {"annotations": {DELAY: delay, **(annotations or {})}, "labels": labels or {}},
                "spec": {"containers": [container]}}
    return {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": name},
            "spec": {"template": template, **spec}}


def scheduling_policy(name: str, shares: dict[str, float] | None = None, decay_seconds: int = 0,
                      reservation: int = 0) -> dict[str, Any]:
    distribution = [{"shareIdentifier": s, "weightFactor": w} for s, w in (shares or {}).items()]
    return {"apiVersion": API, "kind": "SchedulingPolicy", "metadata": {"name": name},
            "spec": {"fairsharePolicy": {"shareDecaySeconds": decay_seconds, "computeReservation": reservation,
                                         "shareDistribution": distribution}}}


def batch_job(name: str, definition: str, queue: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "BatchJob", "metadata": {"name": name},
            "spec": {"jobDefinition": definition, "jobQueue": queue, **spec}}


def failing(exit_code: int, delay: str = "1s") -> dict[str, Any]:
    """Template metadata that makes kwok fail the pod with this exit code."""
    return {"labels": {FAIL_LABEL: "true"}, "annotations": {FAIL_CODE: str(exit_code), FAIL_DELAY: delay}}


class Barge:
    """A test's view of Barge: its namespace, and cluster-scoped objects it removes at the end."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self._cluster_scoped: list[tuple[str, str]] = []

    def name(self, suffix: str) -> str:
        return f"{self.namespace}-{suffix}"

    def apply(self, *objects: dict[str, Any]) -> None:
        namespaced = []
        for obj in objects:
            if obj["kind"] in CLUSTER_PLURALS:
                self._cluster_scoped.append((CLUSTER_PLURALS[obj["kind"]], obj["metadata"]["name"]))
            else:
                namespaced.append(obj)
        cluster_objects = [o for o in objects if o not in namespaced]
        if cluster_objects:
            self.cluster.apply(cluster_objects)
        if namespaced:
            self.cluster.apply(namespaced, self.namespace)

    def try_create(self, obj: dict[str, Any]) -> kubernetes.client.ApiException | None:
        """Create one object as `kubectl apply` would send it (strict field validation); the API
        server's refusal, or None when it was created (cluster-scoped ones are removed at the end)."""
        plural = PLURALS[obj["kind"]]
        try:
            if obj["kind"] in CLUSTER_PLURALS:
                self.cluster.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj,
                                                                 field_validation="Strict")
                self._cluster_scoped.append((plural, obj["metadata"]["name"]))
            else:
                self.cluster.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, obj,
                                                                    field_validation="Strict")
        except kubernetes.client.ApiException as exc:
            return exc
        return None

    def job(self, name: str) -> dict[str, Any]:
        return self.cluster.batchjob(self.namespace, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.job(name).get("status") or {}

    def wait_state(self, name: str, *states: str, timeout: float = 90) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("state") in states else None

        try:
            return eventually(reached, timeout, message=f"BatchJob {name} in {states}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {self.status(name)}") from None

    def wait_all(self, names: list[str], *states: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
        def reached() -> dict[str, dict[str, Any]] | None:
            jobs = {j["metadata"]["name"]: j.get("status") or {} for j in self.cluster.batchjobs(self.namespace)}
            done = {n: jobs[n] for n in names if n in jobs and jobs[n].get("state") in states}
            return done if len(done) == len(names) else None

        return eventually(reached, timeout, interval=1, message=f"{len(names)} BatchJobs in {states}")

    def cleanup(self) -> None:
        for plural, name in reversed(self._cluster_scoped):
            self.cluster.delete_cluster_object(plural, name)


@pytest.fixture
def barge(operator: Cluster, namespace: str) -> Iterator[Barge]:
    view = Barge(operator, namespace)
    yield view
    view.cleanup()
