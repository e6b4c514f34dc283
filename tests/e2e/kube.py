"""Helpers for e2e tests: a client on the test cluster and polling with a deadline."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import yaml

T = TypeVar("T")
GROUP, VERSION = "barge.dev", "v1alpha1"


class Cluster:
    def __init__(self, kubeconfig: Path, local: bool) -> None:
        self.kubeconfig = kubeconfig
        self.local = local  # the project's own local cluster (processes we may restart)
        self.api = kubernetes.config.new_client_from_config(str(kubeconfig))
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.batch = kubernetes.client.BatchV1Api(self.api)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)

    @staticmethod
    def kubectl_binary() -> str:
        from barge.dev import build

        local = build.binary("kubectl")
        return str(local) if local.is_file() else "kubectl"

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args], input=input_text,
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, manifests: list[dict[str, Any]] | str, namespace: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifests if isinstance(manifests, str) else yaml.safe_dump_all(manifests)
        args = ["apply", "-f", "-"] + ([f"--namespace={namespace}"] if namespace else [])
        return self.kubectl(*args, input_text=text, check=check)

    # BatchJobs and friends
    def batchjob(self, namespace: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "batchjobs", name)  # type: ignore[no-any-return]

    def batchjobs(self, namespace: str) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "batchjobs")["items"]  # type: ignore[no-any-return]

    def cluster_object(self, plural: str, name: str) -> dict[str, Any]:
        return self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)  # type: ignore[no-any-return]

    def delete_cluster_object(self, plural: str, name: str) -> None:
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise


def eventually(probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.5,
               message: str = "condition") -> T:
    """Poll until probe returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except kubernetes.client.ApiException as exc:
            last = exc
        if last:
            return last  # type: ignore[return-value]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last seen: {last!r}")
