"""The cluster every e2e test runs against.

By default the project's local cluster is brought up once per session (and taken down at the end
if this session started it). Set BARGE_E2E_KUBECONFIG to run the same suite against any cluster,
kind included; set BARGE_E2E_OPERATOR=external when Barge is already installed there (helm).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kube import Cluster, eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    given = os.environ.get("BARGE_E2E_KUBECONFIG")
    if given:
        yield Cluster(Path(given), local=False)
        return
    from barge.dev import cluster as local

    was_up = bool(local.status()["up"])
    kubeconfig = local.up(local.default_options())
    yield Cluster(kubeconfig, local=True)
    if not was_up and os.environ.get("BARGE_E2E_KEEP_CLUSTER") != "1":
        local.down()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    eventually(lambda: cluster.core.list_namespaced_service_account(name).items, 30,
               message=f"default service account in {name}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for plural in ("batchjobs", "jobdefinitions", "jobqueues", "computeenvironments"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.barge.dev", "--timeout=60s")
    return cluster


@pytest.fixture(scope="session")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Barge running against the test cluster: a local `barge operator` process by default."""
    if os.environ.get("BARGE_E2E_OPERATOR") == "external":
        yield crds
        return
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    env = dict(os.environ, KUBECONFIG=str(crds.kubeconfig), BARGE_METRICS_PORT="0",
               BARGE_FINISHED_JOB_RETENTION="0")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "barge.cli.main", "operator"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        yield crds
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        print(f"\n--- operator log tail ({log_path}) ---\n" + "\n".join(log_path.read_text().splitlines()[-40:]))


from tests.e2e.barge_objects import barge  # noqa: E402,F401 - the per-test Barge fixture
