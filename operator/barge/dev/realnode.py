"""One real node in the local cluster: an upstream kubelet with Debian's containerd.

Everything lives under the cluster's state folder (config, sockets, pod data), except containerd's
image store, which is kept in the cache so images survive `down`. Processes are found by that
state folder in their command line, like the control plane's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from barge.dev import build, certs

NODE_NAME = "barge-real"
POOL = "real"
TAINT_KEY = "barge.dev/real-node"
PACKAGES = ("containerd", "runc", "containernetworking-plugins", "catatonit", "busybox-static", "buildah",
            "debootstrap")
EXECUTABLES = {"containerd": "containerd", "ctr": "containerd", "runc": "runc", "buildah": "buildah",
               "debootstrap": "debootstrap", "catatonit": "catatonit", "busybox": "busybox-static"}
CNI_BIN = Path("/usr/lib/cni")
POD_CIDR = "10.250.0.0/24"
BRIDGE = "barge0"
KUBELET_HEALTHZ = 10248
PAUSE_IMAGE = "localhost/barge/pause:catatonit"
PROCESS_NAMES = ("containerd", "kubelet", "containerd-shim-runc-v2")
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"


class RealNodeError(RuntimeError):
    pass


def folder(state: Path) -> Path:
    return state / "realnode"


def socket_path(state: Path) -> Path:
    return folder(state) / "containerd.sock"


def containerd_root() -> Path:
    return build.cache_root() / "containerd"


def unavailable_reason() -> str | None:
    """Why this machine cannot run the real node, or None when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (containerd mounts filesystems and creates cgroups)"
    if not Path("/sys/fs/cgroup/cpu").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").is_file():
        return "no cgroup filesystem is mounted at /sys/fs/cgroup"
    if missing_packages() and not shutil.which("apt-get"):
        return f"missing {', '.join(missing_packages())} and no apt-get to install them"
    return None


def missing_packages() -> list[str]:
    return sorted({package for exe, package in EXECUTABLES.items() if not shutil.which(exe)}
                  | ({"containernetworking-plugins"} if not (CNI_BIN / "bridge").exists() else set()))


def install_packages(say: Callable[[str], None]) -> None:
    missing = missing_packages()
    if not missing:
        return
    say(f"installing Debian packages: {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RealNodeError(f"{' '.join(argv)} failed:\n{proc.stderr[-2000:]}")


# --- configuration -------------------------------------------------------------------------------

def write_config(state: Path, server: str) -> None:
    node = folder(state)
    for sub in ("cni", "kubelet", "containerd-state"):
        (node / sub).mkdir(parents=True, exist_ok=True)
    certs_dir = state / "certs"
    if not (certs_dir / "kubelet-client.crt").is_file():
        certs.issue(certs_dir, "kubelet-client", f"system:node:{NODE_NAME}", organization="system:nodes")
        certs.issue(certs_dir, "kubelet-serving", f"system:node:{NODE_NAME}", server_names=(NODE_NAME,),
                    server_ips=("127.0.0.1",))
    certs.write_kubeconfig(node / "kubelet.kubeconfig", certs_dir, server, user="kubelet-client")
    wrapper = node / "runc"
    wrapper.write_text(RUNC_WRAPPER)
    wrapper.chmod(0o755)
    (node / "containerd.toml").write_text(CONTAINERD_CONFIG.format(
        root=containerd_root(), state=node / "containerd-state", socket=socket_path(state),
        pause=PAUSE_IMAGE, runc=wrapper, cni_bin=CNI_BIN, cni_conf=node / "cni"))
    (node / "cni" / "10-barge.conflist").write_text(cni_config(state))
    (node / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(state)))


def kubelet_config(state: Path) -> dict[str, object]:
    certs_dir = state / "certs"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "failCgroupV1": False, "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{socket_path(state)}",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(certs_dir / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "address": "127.0.0.1", "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": KUBELET_HEALTHZ,
        "tlsCertFile": str(certs_dir / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(certs_dir / "kubelet-serving.key"),
        "failSwapOn": False, "enforceNodeAllocatable": [], "makeIPTablesUtilChains": False,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"}, "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99, "podCIDR": POD_CIDR, "maxPods": 50,
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "serializeImagePulls": False, "syncFrequency": "10s", "nodeStatusUpdateFrequency": "5s",
    }


# Raises a negative oomScoreAdj to 0 before runc runs: this VM lacks CAP_SYS_RESOURCE, and the pod
# sandbox asks for -998, which runc would fail to apply.
RUNC_WRAPPER = """#!/bin/sh
bundle=.
prev=
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle="$arg" ;; esac
  case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; esac
  prev="$arg"
done
if [ -f "$bundle/config.json" ]; then
  sed -i 's/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/' "$bundle/config.json"
fi
exec /usr/sbin/runc "$@"
"""

CONTAINERD_CONFIG = """version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"""

def cni_config(state: Path) -> str:
    bridge = {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]], "routes": [{"dst": "0.0.0.0/0"}],
                       "dataDir": str(folder(state) / "cni-ipam")}}
    return json.dumps({"cniVersion": "0.4.0", "name": "barge", "plugins": [bridge, {"type": "loopback"}]}, indent=2)


# --- processes -----------------------------------------------------------------------------------

def containerd_argv(state: Path) -> list[str]:
    return ["containerd", "--config", str(folder(state) / "containerd.toml")]


def kubelet_argv(state: Path) -> list[str]:
    node = folder(state)
    return [str(build.binary("kubelet")), f"--config={node / 'kubelet.yaml'}",
            f"--kubeconfig={node / 'kubelet.kubeconfig'}", f"--root-dir={node / 'kubelet'}",
            f"--hostname-override={NODE_NAME}", f"--node-labels=barge.dev/pool={POOL}", "--v=1",
            # Without it the kubelet reports the machine's own address, and it will not listen there.
            # With it, addresses are left to us (set to 127.0.0.1 once the node registers).
            "--cloud-provider=external"]


def ctr(state: Path, *args: str, check: bool = True, timeout: float = 300) -> str:
    proc = subprocess.run(["ctr", "--address", str(socket_path(state)), "--namespace", "k8s.io", *args],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RealNodeError(f"ctr {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def containerd_ready(state: Path) -> bool:
    return socket_path(state).exists() and subprocess.run(
        ["ctr", "--address", str(socket_path(state)), "version"], capture_output=True).returncode == 0


def kubelet_ready(_: Path) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{KUBELET_HEALTHZ}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def descendants(pids: set[int]) -> set[int]:
    """Every descendant of `pids` (containers run as children of their shim)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = set(pids)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found |= frontier
    return found


def kill_containers(shims: set[int]) -> None:
    for pid in descendants(shims) | shims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def unmount_all(state: Path) -> int:
    """Unmount what containerd, kubelet and CNI mounted for this node (deepest first)."""
    prefixes = (str(folder(state)) + "/", str(containerd_root()) + "/", "/run/netns/cni-", "/var/run/netns/cni-")
    count = 0
    for _ in range(3):
        points = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefixes):
                points.append(point)
        if not points:
            break
        for point in sorted(points, key=len, reverse=True):
            if subprocess.run(["umount", "-l", point], capture_output=True).returncode == 0:
                count += 1
    for netns in Path("/run/netns").glob("cni-*") if Path("/run/netns").is_dir() else []:
        with contextlib.suppress(OSError):
            netns.unlink()
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
    return count


def wait_gone(pids: set[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
