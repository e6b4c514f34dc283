"""The local cluster command itself: up/down are idempotent, up repairs a killed component, and
down leaves no process behind. Runs first (file name) because it restarts the session's cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.kube import Cluster, eventually

pytestmark = pytest.mark.skipif(bool(os.environ.get("BARGE_E2E_KUBECONFIG")),
                                reason="manages the project's own local cluster only")


def barge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "barge.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return open(f"/proc/{pid}/stat").read().split()[2] != "Z"


def test_up_twice_down_twice_and_repair(cluster: Cluster) -> None:
    from barge.dev import cluster as local

    started = time.monotonic()
    second = barge("dev", "cluster", "up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert time.monotonic() - started < 60, "a second up on a running cluster must be quick"
    assert "starting" not in second.stderr, "a second up must not restart running components"

    before = {pid: name for pid, name in local.cluster_processes().items()
              if name not in local.realnode.PROCESS_NAMES and name not in (local.KARPENTER.name, local.KUEUE.name)}
    assert sorted(before.values()) == sorted(c.name for c in local.COMPONENTS)

    scheduler_pid = next(pid for pid, name in before.items() if name == "kube-scheduler")
    os.kill(scheduler_pid, signal.SIGKILL)
    eventually(lambda: not alive(scheduler_pid), 10, message="the killed scheduler to exit")
    repaired = barge("dev", "cluster", "up")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "starting kube-scheduler" in repaired.stderr
    assert "starting kube-apiserver" not in repaired.stderr
    after = local.cluster_processes()
    assert "kube-scheduler" in after.values() and scheduler_pid not in after

    status = barge("dev", "cluster", "status")
    assert status.returncode == 0 and '"up": true' in status.stdout

    pids = list(after)
    first_down = barge("dev", "cluster", "down")
    assert first_down.returncode == 0, first_down.stdout + first_down.stderr
    assert not any(alive(pid) for pid in pids), "down must leave no process of the cluster"
    assert local.cluster_processes() == {}
    second_down = barge("dev", "cluster", "down")
    assert second_down.returncode == 0 and "not running" in second_down.stderr
    assert barge("dev", "cluster", "status").returncode == 3

    back = barge("dev", "cluster", "up", "--karpenter")  # as the session fixture started it
    assert back.returncode == 0, back.stdout + back.stderr
    eventually(lambda: len(cluster.core.list_node(label_selector="type=kwok").items) == 6, 60,
               message="nodes after a fresh up")


def _mounts_under(*folders: str) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(folders) or p.startswith("/run/netns/cni-")]


@pytest.mark.realnode
def test_down_stops_the_real_node_its_containers_and_mounts(cluster: Cluster) -> None:
    from barge.dev import cluster as local
    from barge.dev import realnode

    reason = realnode.unavailable_reason()
    if reason:
        pytest.skip(f"no real node on this machine: {reason}")
    up = barge("dev", "cluster", "up", "--real-node")
    assert up.returncode == 0, up.stdout + up.stderr
    cluster.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
                    "spec": {"nodeSelector": {"barge.dev/pool": "real"}, "tolerations": [{"operator": "Exists"}],
                             "containers": [{"name": "main", "image": "localhost/barge/worker:busybox",
                                             "imagePullPolicy": "Never", "command": ["sleep", "3599"]}]}}])
    eventually(lambda: cluster.core.read_namespaced_pod("sleeper", "default").status.phase == "Running", 60,
               message="a real container running")
    processes = {pid: name for pid, name in local.cluster_processes().items() if name in realnode.PROCESS_NAMES}
    assert sorted(set(processes.values())) == ["containerd", "containerd-shim-runc-v2", "kubelet"]
    sleepers = [pid for pid in realnode.descendants(set(processes))
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep")]
    assert sleepers, "the container's process runs under its shim"
    node_folders = (str(realnode.folder(local.state_dir())), str(realnode.containerd_root()))
    assert _mounts_under(*node_folders), "containerd mounted the container's root filesystem"

    down = barge("dev", "cluster", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(alive(pid) for pid in [*processes, *sleepers]), "down leaves no process of the node"
    assert _mounts_under(*node_folders) == []
    back = barge("dev", "cluster", "up", "--karpenter")  # as the session fixture started it
    assert back.returncode == 0, back.stdout + back.stderr


def test_port_in_use_is_reported_with_the_port(cluster: Cluster) -> None:
    from barge.dev import cluster as local

    component = local.COMPONENTS[-1]  # kwok: a port nothing else in the cluster needs
    pid = next(p for p, n in local.cluster_processes().items() if n == component.name)
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not alive(pid), 10, message="kwok to exit")
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def bound() -> bool:
        try:
            blocker.bind(("127.0.0.1", component.ports[0]))
        except OSError:
            return False
        return True

    eventually(bound, 15, interval=0.2, message="the killed kwok's port to be released")
    blocker.listen()
    try:
        result = barge("dev", "cluster", "up")
        assert result.returncode == 2
        assert f"127.0.0.1:{component.ports[0]} is already in use" in result.stdout
    finally:
        blocker.close()
    assert barge("dev", "cluster", "up").returncode == 0


def test_bad_pool_config_names_the_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools:\n  - name: cpu\n    nodes: 2\n    capacity: {cpu: '4'}\n    lables: {a: b}\n")
    result = barge("dev", "cluster", "up", "--pools", str(bad))
    assert result.returncode == 2
    assert "pools.0.lables" in result.stdout


def test_missing_go_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from barge.dev import build

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(build.BuildError, match="`go` was not found"):
        build.go_executable()
