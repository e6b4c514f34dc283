"""The operator itself in its own image, as a pod on the real node, drives BatchJobs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.conftest import ROOT, OperatorProcess
from tests.e2e.kube import Cluster, eventually
from tests.e2e.realnode.test_real_containers import script_definition

IMAGE = "localhost/barge/operator:dev"
NAMESPACE = "barge-pod-test"


def operator_manifests(node: str) -> list[dict]:  # type: ignore[type-arg]
    labels = {"app": "barge-pod-test"}
    env = [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
           {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
           {"name": "BARGE_METRICS_PORT", "value": "0"}, {"name": "BARGE_FINISHED_JOB_RETENTION", "value": "0"}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "barge", "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "barge-pod-test"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "ServiceAccount", "name": "barge", "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "barge-operator", "namespace": NAMESPACE,
                                                         "labels": labels},
         "spec": {"serviceAccountName": "barge", "hostNetwork": True, "nodeName": node,
                  "tolerations": [{"operator": "Exists"}], "terminationGracePeriodSeconds": 10,
                  "containers": [{"name": "operator", "image": IMAGE, "imagePullPolicy": "Never", "env": env,
                                  "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                                      "allowPrivilegeEscalation": False,
                                                      "capabilities": {"drop": ["ALL"]}}}]}},
    ]


@pytest.fixture
def operator_in_a_pod(cluster: Cluster, real_node: str,
                      operator_process: OperatorProcess | None) -> Iterator[str]:
    if operator_process is None:
        pytest.skip("an installed operator already runs on this cluster (the Helm tier covers the image)")
    started = time.monotonic()
    build = subprocess.run([sys.executable, "-m", "barge.cli.main", "dev", "image", "build", "-t", IMAGE, str(ROOT)],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    print(f"\noperator image ready in {time.monotonic() - started:.1f}s: {build.stdout.strip()}")
    operator_process.stop()  # one operator at a time
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    cluster.apply(operator_manifests(real_node))
    try:
        eventually(lambda: cluster.core.read_namespaced_pod("barge-operator", NAMESPACE).status.phase == "Running",
                   120, message="the operator pod running")
        yield "barge-operator"
    finally:
        print(cluster.kubectl("logs", "-n", NAMESPACE, "barge-operator", "--tail=30", check=False).stdout)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=60s", check=False)
        cluster.kubectl("delete", "clusterrolebinding", "barge-pod-test", "--ignore-not-found", check=False)
        operator_process.start()


def test_the_operator_image_runs_as_a_pod_and_drives_batchjobs(barge: Barge, operator_in_a_pod: str) -> None:
    kwok, real = barge.name("kwok"), barge.name("real")
    barge.apply(compute_environment(kwok, 8), job_queue(kwok, [kwok]), job_definition("sim", delay="2s"),
                compute_environment(real, 2, pool="real"), job_queue(real, [real]),
                script_definition("script", 'echo "from $AWS_BATCH_JQ_NAME"'))
    barge.apply(*[batch_job(f"sim-{i}", "sim", kwok) for i in range(5)], batch_job("script", "script", real),
                batch_job("array", "sim", kwok, arrayProperties={"size": 10}))
    done = barge.wait_all([f"sim-{i}" for i in range(5)] + ["script", "array"], "SUCCEEDED", "FAILED", timeout=180)
    assert {s["state"] for s in done.values()} == {"SUCCEEDED"}, done
    pod = done["script"]["attempts"][0]["podName"]
    assert barge.cluster.kubectl("logs", "-n", barge.namespace, pod).stdout.strip() == f"from {real}"
    logs = barge.cluster.kubectl("logs", "-n", NAMESPACE, operator_in_a_pod).stdout
    assert "Traceback" not in logs, logs
