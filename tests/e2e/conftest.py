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
METRICS_PORT = 19091  # the test operator's /metrics on 127.0.0.1
# MANAGED environments' NodePools name this node class: kwok's on the local cluster (Karpenter's kwok
# provider, started with it); BARGE_NODE_CLASS for another cluster.
NODE_CLASS = os.environ.get("BARGE_NODE_CLASS", "karpenter.kwok.sh/KWOKNodeClass/default")

# The Helm tier installs the chart and runs around the whole suite: scripts/test-helm runs it.
collect_ignore = [] if os.environ.get("BARGE_E2E_HELM") == "1" else ["helm"]


def metrics_url() -> str | None:
    """Where the operator's /metrics is: the local test operator's, or BARGE_E2E_METRICS_URL for an
    installed one (None when an installed operator's endpoint was not given)."""
    if os.environ.get("BARGE_E2E_OPERATOR") == "external":
        return os.environ.get("BARGE_E2E_METRICS_URL")
    return f"http://127.0.0.1:{METRICS_PORT}/metrics"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    given = os.environ.get("BARGE_E2E_KUBECONFIG")
    if given:
        yield Cluster(Path(given), local=False)
        return
    from barge.dev import cluster as local

    was_up = bool(local.status()["up"])
    # With Karpenter (its kwok provider), so the MANAGED environment tests run; added to a running
    # cluster without restarting anything else.
    kubeconfig = local.up(local.default_options(karpenter=True))
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
    for plural in ("batchjobs", "jobdefinitions", "jobqueues", "computeenvironments", "schedulingpolicies"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.barge.dev", "--timeout=60s")
    return cluster


class OperatorProcess:
    """`barge operator` as a local process, restartable by tests that prove convergence."""

    def __init__(self, cluster: Cluster, log_path: Path) -> None:
        self.cluster = cluster
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> None:
        full = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig), "BARGE_METRICS_PORT": str(METRICS_PORT),
                "BARGE_FINISHED_JOB_RETENTION": "0", "BARGE_NODE_CLASS": NODE_CLASS, **env}
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "barge.cli.main", "operator"], env=full,
                                            stdout=log, stderr=subprocess.STDOUT)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, kill: bool = False, **env: str) -> None:
        self.stop(kill)
        self.start(**env)


@pytest.fixture(scope="session")
def operator_process(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess | None]:
    if os.environ.get("BARGE_E2E_OPERATOR") == "external":
        yield None
        return
    process = OperatorProcess(crds, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()
        tail = process.log_path.read_text().splitlines()[-40:]
        print(f"\n--- operator log tail ({process.log_path}) ---\n" + "\n".join(tail))


@pytest.fixture(scope="session")
def operator(crds: Cluster, operator_process: OperatorProcess | None) -> Cluster:
    """Barge running against the test cluster: a local `barge operator` process by default."""
    return crds


from tests.e2e.barge_objects import barge  # noqa: E402,F401 - the per-test Barge fixture

OWN_OPERATOR_FIXTURES = {"process", "operator_process"}
SHARED_FIXTURES = {"operator", "barge"}  # they take the operator process only to have it running


def needs_own_operator(item: pytest.Item) -> bool:
    """Tests that cannot share an operator with tests running beside them: those that start, stop or
    kill it, the cluster lifecycle tests (they restart the cluster) and the real node's tier (it
    brings the node up and builds its images on first use)."""
    path = Path(str(item.fspath))
    if path.name == "test_00_cluster_lifecycle.py" or "realnode" in path.parts:
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if set(info.argnames) & OWN_OPERATOR_FIXTURES:
        return True
    # A fixture of the test's (autouse ones too) that takes the operator process to restart it.
    return any(set(definition.argnames) & OWN_OPERATOR_FIXTURES
               for name, definitions in info.name2fixturedefs.items() if name not in SHARED_FIXTURES
               for definition in definitions)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The cluster lifecycle tests restart (and wipe) the session's cluster: they run before any other,
    whatever folder the others live in (pytest collects tests/e2e/realnode before tests/e2e/test_*.py).
    BARGE_E2E_PASS=shared keeps the tests that can share one operator (run in parallel by
    tests/e2e/shared_operator.py), =own the others."""
    items.sort(key=lambda item: 0 if Path(str(item.fspath)).name == "test_00_cluster_lifecycle.py" else 1)
    mode = os.environ.get("BARGE_E2E_PASS")
    if mode not in ("shared", "own"):
        return
    e2e = [item for item in items if ROOT / "tests" / "e2e" in Path(str(item.fspath)).parents]
    drop = [item for item in e2e if needs_own_operator(item) == (mode == "shared")]
    if drop:
        config.hook.pytest_deselected(items=drop)
        dropped = set(map(id, drop))
        items[:] = [item for item in items if id(item) not in dropped]
