"""Helm on the test cluster: the project's pinned helm, the release under test, the audit log."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes

from tests.e2e.kube import Cluster

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "barge"
LOCAL_VALUES = Path(__file__).with_name("values-local.yaml")
RELEASE, NAMESPACE = "barge", "barge-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"


def helm(cluster: Cluster, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    from barge.dev import build

    build.ensure_built((build.HELM,))
    proc = subprocess.run([str(build.binary("helm")), f"--kubeconfig={cluster.kubeconfig}", *args],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def values_args() -> list[str]:
    extra = os.environ.get("BARGE_E2E_HELM_VALUES")  # e.g. kind: a values file of the user's
    return ["-f", extra] if extra else ["-f", str(LOCAL_VALUES)]


def adopt_crds(cluster: Cluster) -> None:
    """CRDs applied earlier with kubectl (by the e2e fixture, or a user) are handed over to the release,
    as Helm documents for adopting existing objects."""
    for plural in ("batchjobs", "jobdefinitions", "jobqueues", "computeenvironments", "schedulingpolicies"):
        crd = f"crd/{plural}.barge.dev"
        if cluster.kubectl("get", crd, "--ignore-not-found", "-o", "name").stdout.strip():
            cluster.kubectl("label", "--overwrite", crd, "app.kubernetes.io/managed-by=Helm")
            cluster.kubectl("annotate", "--overwrite", crd, f"meta.helm.sh/release-name={RELEASE}",
                            f"meta.helm.sh/release-namespace={NAMESPACE}")


def install(cluster: Cluster, *extra: str) -> subprocess.CompletedProcess[str]:
    adopt_crds(cluster)
    return helm(cluster, "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
                *values_args(), *extra, "--wait", "--timeout", "5m")


def operator_pods(cluster: Cluster) -> list[Any]:
    pods = cluster.core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=barge").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def leader(cluster: Cluster) -> str | None:
    """The pod name part of the lease holder's identity (`<pod>_<random>`), None when nobody leads."""
    try:
        lease = kubernetes.client.CoordinationV1Api(cluster.api).read_namespaced_lease("barge-operator", NAMESPACE)
    except kubernetes.client.ApiException:
        return None
    holder = lease.spec.holder_identity
    return holder.rsplit("_", 1)[0] if holder else None


def audit_events(user: str = SERVICE_ACCOUNT) -> list[dict[str, Any]]:
    """The apiserver's audit log entries of one user (the local cluster logs service accounts only)."""
    from barge.dev import cluster as local

    events = []
    path = local.audit_log_path()
    for candidate in sorted(path.parent.glob("audit*.log")):
        with open(candidate) as log:
            for line in log:
                event = json.loads(line)
                if event.get("user", {}).get("username") == user:
                    events.append(event)
    return events
