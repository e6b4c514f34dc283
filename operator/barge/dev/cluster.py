"""The local cluster: etcd, the control plane and kwok as processes on 127.0.0.1.

`up` converges: components already running are kept, missing ones are started, so `up` after a
crash or a killed process repairs the cluster instead of failing. Our processes are recognised by
the cluster's state folder in their command line, so `down` finds them even without pid files.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from barge.dev import build, certs, images, realnode, stages
from barge.dev.pools import POOL_LABEL, PoolConfig, load_pools, node_manifest

HOST = "127.0.0.1"
# A second cluster beside the first (say, a long benchmark while tests run) takes another state folder
# (BARGE_CLUSTER_DIR) and shifts every port by BARGE_CLUSTER_PORT_OFFSET.
PORT_OFFSET = int(os.environ.get("BARGE_CLUSTER_PORT_OFFSET", "0"))
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379 + PORT_OFFSET, 2380 + PORT_OFFSET
APISERVER_PORT = 6443 + PORT_OFFSET
CONTROLLER_MANAGER_PORT, SCHEDULER_PORT, KWOK_PORT = 10257 + PORT_OFFSET, 10259 + PORT_OFFSET, 10247 + PORT_OFFSET
KARPENTER_METRICS_PORT, KARPENTER_HEALTH_PORT = 10282 + PORT_OFFSET, 10283 + PORT_OFFSET
KUEUE_HEALTH_PORT, KUEUE_WEBHOOK_PORT = 10284 + PORT_OFFSET, 10285 + PORT_OFFSET


class ClusterError(RuntimeError):
    pass


def state_dir() -> Path:
    return Path(os.environ.get("BARGE_CLUSTER_DIR", build.cache_root() / "cluster"))


def kubeconfig_path() -> Path:
    return state_dir() / "kubeconfig"


@dataclass(frozen=True)
class Options:
    pools: PoolConfig
    # Client rate limits of kube-controller-manager and kube-scheduler. Upstream defaults (20 QPS)
    # hold the Job controller to ~10 pods/s; the local cluster lifts them unless asked not to.
    client_qps: int = 5000
    # One node run by a real kubelet with containerd, next to the kwok pools (needs root).
    real_node: bool = False
    # Karpenter with its kwok provider, for MANAGED compute environments (nodes it adds are kwok's).
    karpenter: bool = False


@dataclass(frozen=True)
class Component:
    name: str
    ports: tuple[int, ...]
    argv: Callable[[Path, Options], list[str]]
    ready: Callable[[Path], bool]
    env: Callable[[Path], dict[str, str]] | None = None


def _cert(state: Path, name: str) -> str:
    return str(state / "certs" / name)


def _etcd_argv(state: Path, _: Options) -> list[str]:
    return [
        str(build.binary("etcd")), "--name=barge", f"--data-dir={state / 'etcd'}",
        f"--listen-client-urls=http://{HOST}:{ETCD_CLIENT_PORT}",
        f"--advertise-client-urls=http://{HOST}:{ETCD_CLIENT_PORT}",
        f"--listen-peer-urls=http://{HOST}:{ETCD_PEER_PORT}",
        f"--initial-advertise-peer-urls=http://{HOST}:{ETCD_PEER_PORT}",
        f"--initial-cluster=barge=http://{HOST}:{ETCD_PEER_PORT}", "--unsafe-no-fsync=true",
        "--quota-backend-bytes=8589934592", "--log-level=warn",
    ]


# Requests of service accounts only (an installed operator, not the test client or the controllers),
# at Metadata level: who did what to which resource. The Helm tier checks the chart's RBAC against it.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}


def audit_log_path(state: Path | None = None) -> Path:
    return (state or state_dir()) / "logs" / "audit.log"


def _apiserver_argv(state: Path, _: Options) -> list[str]:
    policy = state / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    return [
        str(build.binary("kube-apiserver")), f"--etcd-servers=http://{HOST}:{ETCD_CLIENT_PORT}",
        f"--bind-address={HOST}", f"--advertise-address={HOST}", f"--secure-port={APISERVER_PORT}",
        f"--tls-cert-file={_cert(state, 'apiserver.crt')}",
        f"--tls-private-key-file={_cert(state, 'apiserver.key')}",
        f"--client-ca-file={_cert(state, 'ca.crt')}",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={_cert(state, 'sa.pub')}",
        f"--service-account-signing-key-file={_cert(state, 'sa.key')}",
        "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=Node,RBAC",
        "--allow-privileged=true", "--endpoint-reconciler-type=none",
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={_cert(state, 'apiserver-kubelet-client.crt')}",
        f"--kubelet-client-key={_cert(state, 'apiserver-kubelet-client.key')}",
        f"--kubelet-certificate-authority={_cert(state, 'ca.crt')}",
        f"--audit-policy-file={policy}", f"--audit-log-path={audit_log_path(state)}", "--audit-log-format=json",
        "--audit-log-maxsize=200", "--audit-log-maxbackup=2",
    ]


CONTROLLERS = (
    "job-controller", "garbage-collector-controller", "namespace-controller",
    "resourcequota-controller", "serviceaccount-controller", "serviceaccount-token-controller",
    "ttl-after-finished-controller", "pod-garbage-collector-controller",
    "node-lifecycle-controller", "root-ca-certificate-publisher-controller",
    "deployment-controller", "replicaset-controller",  # the operator installed by its Helm chart
)


def _controller_manager_argv(state: Path, options: Options) -> list[str]:
    kubeconfig = str(state / "kubeconfig")
    return [
        str(build.binary("kube-controller-manager")), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}", f"--secure-port={CONTROLLER_MANAGER_PORT}", "--leader-elect=false",
        f"--service-account-private-key-file={_cert(state, 'sa.key')}",
        f"--root-ca-file={_cert(state, 'ca.crt')}", f"--controllers={','.join(CONTROLLERS)}",
        f"--kube-api-qps={options.client_qps}", f"--kube-api-burst={options.client_qps}",
    ]


def _scheduler_argv(state: Path, options: Options) -> list[str]:
    config = state / "kube-scheduler.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(state / "kubeconfig"),
                             "qps": options.client_qps, "burst": options.client_qps},
        "leaderElection": {"leaderElect": False},
    }))
    kubeconfig = str(state / "kubeconfig")
    return [str(build.binary("kube-scheduler")), f"--config={config}", f"--bind-address={HOST}",
            f"--secure-port={SCHEDULER_PORT}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}"]


def _kwok_argv(state: Path, _: Options) -> list[str]:
    config = state / "kwok.yaml"
    config.write_text(stages.build_config(build.binary("kwok").parent / "stages"))
    return [
        str(build.binary("kwok")), f"--kubeconfig={state / 'kubeconfig'}", f"--config={config}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--node-ip={HOST}", f"--server-address={HOST}:{KWOK_PORT}",
    ]


def _karpenter_argv(state: Path, _: Options) -> list[str]:
    # Karpenter parses its own flags only (no --kubeconfig: KUBECONFIG in its environment); its error
    # log path names the state folder, which is how our processes are recognised.
    return [
        str(build.binary("karpenter")), "--disable-leader-election=true",
        f"--metrics-port={KARPENTER_METRICS_PORT}", f"--health-probe-port={KARPENTER_HEALTH_PORT}",
        "--batch-idle-duration=1s", "--batch-max-duration=5s",
        f"--log-error-output-paths={state / 'logs' / 'karpenter.log'}",
    ]


def _karpenter_ready(_: Path) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{KARPENTER_HEALTH_PORT}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


KARPENTER = Component("karpenter", (KARPENTER_METRICS_PORT, KARPENTER_HEALTH_PORT), _karpenter_argv,
                      _karpenter_ready, env=lambda state: {"KUBECONFIG": str(state / "kubeconfig")})
# The node class every MANAGED environment's NodePool names locally (the operator's --node-class).
KWOK_NODE_CLASS = {"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass",
                   "metadata": {"name": "default"}}


def _https_ok(url: str, state: Path) -> bool:
    context = ssl.create_default_context(cafile=_cert(state, "ca.crt"))
    context.load_cert_chain(_cert(state, "admin.crt"), _cert(state, "admin.key"))
    context.check_hostname = False
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _insecure_ok(url: str) -> bool:
    context = ssl._create_unverified_context()  # the components' self-signed healthz endpoints
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _etcd_ready(_: Path) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{ETCD_CLIENT_PORT}/health", timeout=2) as response:
            return bool(json.load(response).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


COMPONENTS = (
    Component("etcd", (ETCD_CLIENT_PORT, ETCD_PEER_PORT), _etcd_argv, _etcd_ready),
    Component("kube-apiserver", (APISERVER_PORT,), _apiserver_argv,
              lambda s: _https_ok(f"https://{HOST}:{APISERVER_PORT}/readyz", s)),
    Component("kube-controller-manager", (CONTROLLER_MANAGER_PORT,), _controller_manager_argv,
              lambda s: _insecure_ok(f"https://{HOST}:{CONTROLLER_MANAGER_PORT}/healthz")),
    Component("kube-scheduler", (SCHEDULER_PORT,), _scheduler_argv,
              lambda s: _insecure_ok(f"https://{HOST}:{SCHEDULER_PORT}/healthz")),
    Component("kwok", (KWOK_PORT,), _kwok_argv, lambda s: True),
)


# --- processes -------------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cluster_processes(state: Path | None = None) -> dict[int, str]:
    """Every live process of this cluster (pid -> component), found by its state folder."""
    marker = str(state or state_dir())
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = _cmdline(int(entry.name))
        if argv and any(marker in arg for arg in argv[1:]):
            name = Path(argv[0]).name
            if any(c.name == name for c in (*COMPONENTS, KARPENTER, KUEUE)) or name in realnode.PROCESS_NAMES:
                found[int(entry.name)] = name
    return found


def _port_owner(port: int) -> str | None:
    """Who listens on 127.0.0.1:port, or None when it is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
            return None
        except OSError:
            pass
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
        return out.stdout.strip() or "an unknown process"
    except OSError:
        return "an unknown process"


def _start(component: Component, state: Path, options: Options) -> None:
    for port in component.ports:
        owner = _port_owner(port)
        if owner:
            raise ClusterError(
                f"cannot start {component.name}: port {HOST}:{port} is already in use by {owner}. "
                "Stop that process (or run `barge dev cluster down` if it is a cluster of "
                "another state folder) and retry."
            )
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **component.env(state)} if component.env else None
    with open(logs / f"{component.name}.log", "ab") as log:
        process = subprocess.Popen(component.argv(state, options), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    (state / "run").mkdir(exist_ok=True)
    (state / "run" / f"{component.name}.pid").write_text(str(process.pid))


def _started_alive(component: Component, state: Path) -> bool:
    """Whether the process we started for `component` lives (its command line may read empty while
    it is still in exec, so it is looked up by the pid we recorded)."""
    try:
        pid = int((state / "run" / f"{component.name}.pid").read_text())
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return status != "Z"


def _wait_ready(component: Component, state: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if component.ready(state):
            return
        if not _started_alive(component, state) and component.name not in cluster_processes(state).values():
            raise ClusterError(
                f"{component.name} exited during start; see {state / 'logs' / component.name}.log:\n"
                + _tail(state / "logs" / f"{component.name}.log")
            )
        time.sleep(0.3)
    raise ClusterError(f"{component.name} not ready after {timeout:.0f}s; see its log in {state / 'logs'}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_processes(state: Path, timeout: float = 15) -> list[int]:
    pids = cluster_processes(state)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p in cluster_processes(state) for p in pids):
        time.sleep(0.2)
    for pid in cluster_processes(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and cluster_processes(state):
        time.sleep(0.1)
    left = cluster_processes(state)
    if left:
        raise ClusterError(f"processes still alive after SIGKILL: {left}")
    return sorted(pids)


# --- faults (the fault tier breaks the control plane on purpose) ----------------------------------

def _component(name: str) -> Component:
    for component in (*COMPONENTS, KARPENTER):
        if component.name == name:
            return component
    raise ClusterError(f"no component {name!r}; one of {', '.join(c.name for c in COMPONENTS)}")


def stop_component(name: str) -> list[int]:
    """SIGKILL one component of the running cluster (a crash, not a shutdown); its pids."""
    component, state = _component(name), state_dir()
    pids = [pid for pid, found in cluster_processes(state).items() if found == component.name]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p in cluster_processes(state) for p in pids):
        time.sleep(0.05)
    for port in component.ports:  # the kernel frees a killed listener's port at once, but check
        while time.monotonic() < deadline and _port_owner(port):
            time.sleep(0.05)
    return pids


def start_component(name: str, options: Options) -> None:
    """Start one stopped component of the cluster and wait until it is ready."""
    component, state = _component(name), state_dir()
    if component.name not in cluster_processes(state).values():
        _start(component, state, options)
    _wait_ready(component, state)


def restart_component(name: str, options: Options, down_seconds: float = 0.0) -> None:
    stop_component(name)
    time.sleep(down_seconds)
    start_component(name, options)


def compact_etcd() -> int:
    """Compact etcd's history up to its current revision (what the apiserver does every 5 minutes),
    so a watch resumed from an older resourceVersion is answered 410 Gone. The revision."""
    def call(path: str, body: dict[str, object]) -> dict[str, Any]:
        request = urllib.request.Request(f"http://{HOST}:{ETCD_CLIENT_PORT}/v3/{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
            return answer

    revision = int(call("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    call("kv/compaction", {"revision": revision, "physical": True})
    return revision


# --- nodes -----------------------------------------------------------------------------------

def kubectl(*args: str, input_text: str | None = None, check: bool = True) -> str:
    argv = [str(build.binary("kubectl")), f"--kubeconfig={kubeconfig_path()}", *args]
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def sync_nodes(pools: PoolConfig, timeout: float = 90) -> None:
    names = [(pool, name) for pool in pools.pools for name in pool.node_names()]
    wanted = {name: node_manifest(pool, name, f"10.{64 + i // 256}.{i % 256}.0/24")
              for i, (pool, name) in enumerate(names)}
    if wanted:
        kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(list(wanted.values())))
    existing = kubectl("get", "nodes", "-l", f"{POOL_LABEL},type=kwok", "-o", "name").split()
    stale = [n for n in existing if n.removeprefix("node/") not in wanted]
    if stale:
        kubectl("delete", *stale, "--wait=false")
    if wanted:
        kubectl("wait", "--for=condition=Ready", f"--timeout={timeout:.0f}s",
                *[f"node/{n}" for n in wanted])


def node_lease_holders() -> dict[str, str]:
    try:
        leases = json.loads(kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json"))["items"]
    except ClusterError:
        return {}
    return {lease["metadata"]["name"]: lease["spec"].get("holderIdentity") or "" for lease in leases}


def wait_for_node_leases(node_names: list[str], old_holders: dict[str, str], timeout: float = 60) -> None:
    """A restarted kwok takes a node over only when the dead one's lease expires; pods bound to a
    node before that are never started, so wait until every lease has a new holder."""
    deadline = time.monotonic() + timeout
    waiting = set(node_names)
    while waiting and time.monotonic() < deadline:
        for name, holder in node_lease_holders().items():
            if holder and holder != old_holders.get(name):
                waiting.discard(name)
        if waiting:
            time.sleep(0.5)
    if waiting:
        raise ClusterError(f"kwok did not take over the nodes {sorted(waiting)} within {timeout:.0f}s; "
                           f"see {state_dir() / 'logs' / 'kwok.log'}")


# --- commands --------------------------------------------------------------------------------

def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def up(options: Options) -> Path:
    """Starts what is not running; callers at the same time (parallel test workers) take turns."""
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _up(options, state)


def _up(options: Options, state: Path) -> Path:
    started = time.monotonic()
    build.ensure_built()
    certs.ensure_certificates(state / "certs")
    certs.write_kubeconfig(state / "kubeconfig", state / "certs", f"https://{HOST}:{APISERVER_PORT}")
    running = set(cluster_processes(state).values())
    old_holders: dict[str, str] | None = None
    for component in COMPONENTS:
        if component.name in running:
            continue
        _say(f"starting {component.name}")
        if component.name == "kwok":
            old_holders = node_lease_holders()
        _start(component, state, options)
        _wait_ready(component, state)
    for component in COMPONENTS:
        _wait_ready(component, state)
    sync_nodes(options.pools)
    if old_holders is not None:
        wait_for_node_leases([n for pool in options.pools.pools for n in pool.node_names()], old_holders)
    if options.real_node:
        real_node_up(state)
    if options.karpenter:
        karpenter_up(state)
    _say(f"cluster up in {time.monotonic() - started:.1f}s; export KUBECONFIG={state / 'kubeconfig'}")
    return state / "kubeconfig"


def down(wipe: bool = True) -> list[int]:
    state = state_dir()
    real_node_down(state)
    pids = stop_processes(state)
    if wipe:
        for folder in ("etcd", "run"):
            subprocess.run(["rm", "-rf", str(state / folder)], check=False)
    _say(f"cluster down (stopped {len(pids)} processes)" if pids else "cluster was not running")
    return pids


# --- Karpenter ------------------------------------------------------------------------------------

def karpenter_up(state: Path) -> None:
    """Karpenter's CRDs, the kwok node class, and Karpenter itself out of cluster, beside a running
    control plane (nothing else is restarted). Its nodes carry kwok.x-k8s.io/node=fake, the annotation
    the cluster's kwok manages, so kwok runs their pods."""
    started = time.monotonic()
    build.ensure_built((build.KARPENTER,))
    crds = build.binary("karpenter").parent / "crds"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[
        f"crd/{path.name.removesuffix('.yaml').split('_', 1)[1]}.{path.name.split('_', 1)[0]}"
        for path in sorted(crds.glob("*.yaml"))])
    kubectl("apply", "-f", "-", input_text=yaml.safe_dump(KWOK_NODE_CLASS))
    if KARPENTER.name not in cluster_processes(state).values():
        _say("starting karpenter")
        _start(KARPENTER, state, Options(pools=PoolConfig(pools=[])))
    _wait_ready(KARPENTER, state, timeout=120)
    _say(f"karpenter {build.KARPENTER.version} ready in {time.monotonic() - started:.1f}s "
         f"(node class {KWOK_NODE_CLASS['kind']}/default)")


def karpenter_running(state: Path | None = None) -> bool:
    return KARPENTER.name in cluster_processes(state or state_dir()).values()


# --- Kueue (a yardstick for the benchmark, never part of Barge) ---------------------------------------

# Kueue reads its metrics server's certificate from this fixed path whenever its internal certificate
# management is off; nothing connects to that server (its metrics are disabled), but the file must exist.
KUEUE_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
# Its client is lifted to the same rate limits as the cluster's controllers (Kueue ships 20 QPS).
KUEUE_CLIENT_QPS = 5000


def kueue_config(state: Path) -> dict[str, Any]:
    """Kueue's Configuration: Jobs only, no webhooks called (Jobs arrive suspended with their queue
    label), no certificate management, no leader election, every endpoint on 127.0.0.1."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration", "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"{HOST}:{KUEUE_HEALTH_PORT}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": HOST, "port": KUEUE_WEBHOOK_PORT, "certDir": str(state / "kueue" / "certs")},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "clientConnection": {"qps": KUEUE_CLIENT_QPS, "burst": KUEUE_CLIENT_QPS},
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


def _kueue_argv(state: Path, _: Options) -> list[str]:
    return [str(build.binary("kueue")), f"--config={state / 'kueue' / 'config.yaml'}", "--zap-log-level=error"]


def _kueue_ready(_: Path) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{KUEUE_HEALTH_PORT}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


KUEUE = Component("kueue", (KUEUE_HEALTH_PORT, KUEUE_WEBHOOK_PORT), _kueue_argv, _kueue_ready,
                  env=lambda state: {"KUBECONFIG": str(state / "kubeconfig")})


def _kueue_certificates(state: Path) -> None:
    """A serving certificate for Kueue's webhook server (it starts one even when no webhook is
    registered with the API server) and for its metrics server's fixed path."""
    if not (state / "certs" / "kueue.crt").is_file():
        certs.issue(state / "certs", "kueue", "kueue", server_names=("localhost",), server_ips=(HOST,))
    for folder in (state / "kueue" / "certs", KUEUE_METRICS_CERTS):
        if not (folder / "tls.crt").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            for kind in ("crt", "key"):
                (folder / f"tls.{kind}").write_bytes((state / "certs" / f"kueue.{kind}").read_bytes())
                (folder / f"tls.{kind}").chmod(0o600)


def kueue_up(state: Path | None = None) -> None:
    """Kueue's CRDs, then Kueue itself out of cluster against the running API server."""
    state = state or state_dir()
    started = time.monotonic()
    build.ensure_built((build.KUEUE,))
    crds = build.binary("kueue").parent / "crds"
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[
        f"crd/{path.name.removesuffix('.yaml').split('_', 1)[1]}.{path.name.split('_', 1)[0]}"
        for path in sorted(crds.glob("*.yaml"))])
    _kueue_certificates(state)
    (state / "kueue" / "config.yaml").write_text(yaml.safe_dump(kueue_config(state)))
    if KUEUE.name not in cluster_processes(state).values():
        _say("starting kueue")
        _start(KUEUE, state, Options(pools=PoolConfig(pools=[])))
    _wait_ready(KUEUE, state, timeout=120)
    _say(f"kueue {build.KUEUE.version} ready in {time.monotonic() - started:.1f}s")


def kueue_running(state: Path | None = None) -> bool:
    return KUEUE.name in cluster_processes(state or state_dir()).values()


def kueue_down(state: Path | None = None, timeout: float = 15) -> None:
    state = state or state_dir()
    pids = [pid for pid, name in cluster_processes(state).items() if name == KUEUE.name]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p in cluster_processes(state) for p in pids):
        time.sleep(0.1)
    for pid in cluster_processes(state):
        if pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- the real node --------------------------------------------------------------------------------

REAL_NODE_COMPONENTS = (
    Component("containerd", (), lambda state, _: realnode.containerd_argv(state), realnode.containerd_ready),
    Component("kubelet", (10250, realnode.KUBELET_HEALTHZ), lambda state, _: realnode.kubelet_argv(state),
              realnode.kubelet_ready),
)


def real_node_up(state: Path, timeout: float = 120) -> None:
    reason = realnode.unavailable_reason()
    if reason:
        raise ClusterError(f"cannot run the real node: {reason}")
    started = time.monotonic()
    realnode.install_packages(_say)
    build.ensure_built((build.KUBELET,))
    realnode.write_config(state, f"https://{HOST}:{APISERVER_PORT}")
    images.ensure_pause()
    images.ensure_worker()
    running = set(cluster_processes(state).values())
    for component in REAL_NODE_COMPONENTS:
        if component.name not in running:
            _say(f"starting {component.name}")
            _start(component, state, Options(pools=PoolConfig(pools=[])))
        _wait_ready(component, state, timeout=60)
        if component.name == "containerd":
            for image in (realnode.PAUSE_IMAGE, images.WORKER_IMAGE):
                images.load_image(state, image)
    deadline = time.monotonic() + timeout
    while not kubectl("get", "node", realnode.NODE_NAME, "--ignore-not-found", "-o", "name").strip():
        if time.monotonic() > deadline:
            raise ClusterError(f"the kubelet did not register {realnode.NODE_NAME}; "
                               f"see {state / 'logs' / 'kubelet.log'}")
        time.sleep(0.5)
    # kubelet refuses a loopback node IP; with an external cloud provider it leaves the addresses to us
    # (so the apiserver reaches it on 127.0.0.1 for logs) and taints the node until someone initializes it.
    kubectl("patch", "node", realnode.NODE_NAME, "--subresource=status", "--type=merge", "-p", json.dumps(
        {"status": {"addresses": [{"type": "InternalIP", "address": HOST},
                                  {"type": "Hostname", "address": realnode.NODE_NAME}]}}))
    kubectl("taint", "node", realnode.NODE_NAME, f"{realnode.UNINITIALIZED_TAINT}-", check=False)
    kubectl("wait", "--for=condition=Ready", f"--timeout={timeout:.0f}s", f"node/{realnode.NODE_NAME}")
    _say(f"real node {realnode.NODE_NAME} Ready in {time.monotonic() - started:.1f}s "
         f"(pool {realnode.POOL}, taint {realnode.TAINT_KEY}=true:NoSchedule)")


def real_node_down(state: Path) -> None:
    """Stop kubelet, every container and containerd; unmount what they mounted."""
    processes = {pid: name for pid, name in cluster_processes(state).items() if name in realnode.PROCESS_NAMES}
    by_name: dict[str, set[int]] = {}
    for pid, name in processes.items():
        by_name.setdefault(name, set()).add(pid)
    for name in ("kubelet", "containerd"):
        for pid in by_name.get(name, set()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        realnode.wait_gone(by_name.get(name, set()))
    realnode.kill_containers(by_name.get("containerd-shim-runc-v2", set()))
    realnode.wait_gone(set(processes))
    if realnode.folder(state).is_dir():
        realnode.unmount_all(state)
        subprocess.run(["rm", "-rf", str(realnode.folder(state) / "kubelet"),
                        str(realnode.folder(state) / "containerd-state")], check=False)
    if processes:
        _say(f"real node stopped ({len(processes)} processes)")


def status() -> dict[str, object]:
    state = state_dir()
    running = {name: pid for pid, name in cluster_processes(state).items()}
    components = {c.name: {"pid": running.get(c.name), "running": c.name in running,
                           "ready": c.name in running and c.ready(state)} for c in COMPONENTS}
    real_node = {c.name: {"pid": running.get(c.name), "running": c.name in running,
                          "ready": c.name in running and c.ready(state)} for c in REAL_NODE_COMPONENTS}
    karpenter = ({"pid": running[KARPENTER.name], "ready": KARPENTER.ready(state)}
                 if KARPENTER.name in running else None)
    return {"kubeconfig": str(state / "kubeconfig"), "components": components, "karpenter": karpenter,
            "up": all(v["ready"] for v in components.values()),
            "real_node": real_node if any(v["running"] for v in real_node.values()) else None}


def default_options(pools_file: Path | None = None, client_qps: int = 5000, real_node: bool = False,
                    karpenter: bool = False) -> Options:
    return Options(pools=load_pools(pools_file) if pools_file else load_pools(), client_qps=client_qps,
                   real_node=real_node, karpenter=karpenter)
