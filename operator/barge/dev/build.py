"""Build the control plane, etcd and kwok from the Go module proxy into a cache outside the repo.

Each component lands in its own versioned folder; a folder holding every binary it should is
never rebuilt, so a second run costs nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from barge.dev import versions


class BuildError(RuntimeError):
    pass


def cache_root() -> Path:
    return Path(os.environ.get("BARGE_CACHE", Path.home() / ".cache" / "barge"))


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def bin_dir(self) -> Path:
        return cache_root() / "bin" / f"{self.name}-{self.version}"

    def missing(self) -> list[str]:
        return [b for b in self.binaries if not (self.bin_dir / b).is_file()]


CONTROL_PLANE = Component(
    "kubernetes",
    versions.KUBERNETES,
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
)
KUBELET = Component("kubelet", versions.KUBERNETES, ("kubelet",))
ETCD = Component("etcd", versions.ETCD, ("etcd",))
KWOK = Component("kwok", versions.KWOK, ("kwok", "stages/pod/general/pod-complete.yaml"))
HELM = Component("helm", versions.HELM, ("helm",))
# Karpenter's kwok provider and the CRDs it serves (NodePool, NodeClaim, NodeOverlay, KWOKNodeClass).
KARPENTER = Component("karpenter", versions.KARPENTER, ("karpenter", "crds/karpenter.sh_nodepools.yaml",
                                                        "crds/karpenter.kwok.sh_kwoknodeclasses.yaml"))
# Kueue and the CRDs it serves (ResourceFlavor, ClusterQueue, LocalQueue, Workload, ...), for the benchmark.
KUEUE = Component("kueue", versions.KUEUE, ("kueue", "crds/kueue.x-k8s.io_clusterqueues.yaml",
                                            "crds/kueue.x-k8s.io_workloads.yaml"))
DEFAULT_COMPONENTS = (CONTROL_PLANE, ETCD, KWOK)
ALL_COMPONENTS = (CONTROL_PLANE, KUBELET, ETCD, KWOK, HELM, KARPENTER, KUEUE)


def binary(name: str) -> Path:
    for component in ALL_COMPONENTS:
        if name in component.binaries:
            return component.bin_dir / name
    raise KeyError(name)


def go_executable() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "`go` was not found on PATH. The local cluster is built from the Go module proxy; "
            "install Go 1.25 or newer (for example Debian's golang package) and retry."
        )
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def _run(args: list[str], cwd: Path, label: str, extra_env: dict[str, str] | None = None) -> str:
    """Run a go command, printing a heartbeat so a 5-minute compile does not look hung."""
    env = _go_env() | (extra_env or {})
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(15):
            print(f"  ... {label}: {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    finally:
        done.set()
    if proc.returncode != 0:
        raise BuildError(f"{label} failed ({' '.join(args)}):\n{proc.stderr[-4000:]}")
    print(f"  {label}: done in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return proc.stdout


def _k8s_ldflags() -> str:
    v = versions.KUBERNETES
    major, minor = v.removeprefix("v").split(".")[:2]
    return " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion={v}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={v}",
        ]
    )


def staging_replaces(upstream_gomod: str) -> tuple[list[str], list[str]]:
    """From k8s.io/kubernetes' go.mod: its go/godebug lines and the staging modules at v0.0.0.

    Only requirements at exactly `v0.0.0` are staging modules; k8s.io/utils and
    k8s.io/kube-openapi use pseudo-versions that merely start with `v0.0.0-`.
    """
    header: list[str] = []
    staging: list[str] = []
    in_godebug = False
    for raw in upstream_gomod.splitlines():
        line = raw.strip()
        if line.startswith("go ") or line.startswith("godebug "):
            header.append(line)
        elif line == "godebug (":
            in_godebug = True
            header.append(line)
        elif in_godebug:
            header.append(line)
            in_godebug = line != ")"
        parts = line.removeprefix("require ").split()
        if len(parts) >= 2 and parts[0].startswith("k8s.io/") and parts[1] == "v0.0.0":
            staging.append(parts[0])
    return header, sorted(set(staging))


def _prepare_k8s_module(go: str, workdir: Path) -> None:
    info = json.loads(
        _run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
             workdir, "download k8s.io/kubernetes")
    )
    header, staging = staging_replaces(Path(info["GoMod"]).read_text())
    lines = ["module barge.dev/k8sbuild", "", *header, "",
             f"require k8s.io/kubernetes {versions.KUBERNETES}", ""]
    lines += [f"replace {mod} => {mod} {versions.STAGING}" for mod in staging]
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    (workdir / "tools.go").write_text(
        "//go:build tools\n\npackage tools\n\n"
        + "".join(f'import _ "k8s.io/kubernetes/cmd/{b}"\n' for b in CONTROL_PLANE.binaries + KUBELET.binaries)
    )


def _build_kubernetes(component: Component, go: str) -> None:
    workdir = cache_root() / "src" / f"k8s-{versions.KUBERNETES}"
    workdir.mkdir(parents=True, exist_ok=True)
    tools = workdir / "tools.go"
    if not (workdir / "go.sum").is_file() or "cmd/kubelet" not in (tools.read_text() if tools.is_file() else ""):
        _prepare_k8s_module(go, workdir)
        _run([go, "mod", "tidy"], workdir, "resolve modules (about 700 MB on a cold cache)")
    packages = [f"k8s.io/kubernetes/cmd/{b}" for b in component.missing()]
    component.bin_dir.mkdir(parents=True, exist_ok=True)
    # Static like every binary here (the kubelet too: upstream releases it static), so the kubelet
    # reuses the control plane's compiled packages instead of compiling most of Kubernetes again.
    _run(
        [go, "build", "-trimpath", "-tags", "selinux,notest", "-ldflags", _k8s_ldflags(),
         "-o", str(component.bin_dir) + "/", *packages],
        workdir,
        f"compile {', '.join(component.missing())} (about 5 min on 2 cores)",
        {"CGO_ENABLED": "0"},
    )


def _build_etcd(component: Component, go: str) -> None:
    workdir = cache_root() / "src" / f"etcd-{component.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\n'
        "func main() { etcdmain.Main(os.Args) }\n"
    )
    if not (workdir / "go.mod").is_file():
        _run([go, "mod", "init", "barge.dev/etcdbuild"], workdir, "init etcd module")
    _run([go, "get", f"go.etcd.io/etcd/server/v3@{component.version}"], workdir, "resolve etcd")
    _run([go, "mod", "tidy"], workdir, "tidy etcd")
    _run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(component.bin_dir / "etcd"), "."],
         workdir, "compile etcd", {"CGO_ENABLED": "0"})


def _build_kwok(component: Component, go: str) -> None:
    _run([go, "install", f"sigs.k8s.io/kwok/cmd/kwok@{component.version}"], cache_root(),
         "compile kwok", {"GOBIN": str(component.bin_dir), "CGO_ENABLED": "0"})
    info = json.loads(_run([go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{component.version}"],
                           cache_root(), "locate kwok's stages"))
    target = component.bin_dir / "stages"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(Path(info["Dir"]) / "kustomize" / "stage", target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only


def _build_helm(component: Component, go: str) -> None:
    _run([go, "install", f"helm.sh/helm/v4/cmd/helm@{component.version}"], cache_root(),
         "compile helm", {"GOBIN": str(component.bin_dir), "CGO_ENABLED": "0"})


def _build_karpenter(component: Component, go: str) -> None:
    """`sigs.k8s.io/karpenter/kwok` installs as `kwok`; here it is named `karpenter` (the cluster's own
    kwok is another program, and processes are told apart by their binary's name)."""
    staging = component.bin_dir / "go-install"
    _run([go, "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/karpenter/kwok@{component.version}"],
         cache_root(), "compile karpenter (about 10 min on 2 cores)", {"GOBIN": str(staging), "CGO_ENABLED": "0"})
    (staging / "kwok").replace(component.bin_dir / "karpenter")
    staging.rmdir()
    info = json.loads(_run([go, "mod", "download", "-json", f"sigs.k8s.io/karpenter@{component.version}"],
                           cache_root(), "locate karpenter's CRDs"))
    target = component.bin_dir / "crds"
    target.mkdir(exist_ok=True)
    source = Path(info["Dir"])
    for crd in [*(source / "pkg/apis/crds").glob("*.yaml"), *(source / "kwok/apis/crds").glob("*.yaml")]:
        (target / crd.name).write_bytes(crd.read_bytes())
        (target / crd.name).chmod(0o644)


def _build_kueue(component: Component, go: str) -> None:
    _run([go, "install", "-trimpath", "-ldflags", "-s -w", f"sigs.k8s.io/kueue/cmd/kueue@{component.version}"],
         cache_root(), "compile kueue (about 10-20 min on 2 cores)",
         {"GOBIN": str(component.bin_dir), "CGO_ENABLED": "0"})
    info = json.loads(_run([go, "mod", "download", "-json", f"sigs.k8s.io/kueue@{component.version}"],
                           cache_root(), "locate kueue's CRDs"))
    target = component.bin_dir / "crds"
    target.mkdir(exist_ok=True)
    for crd in (Path(info["Dir"]) / "config/components/crd/bases").glob("*.yaml"):
        (target / crd.name).write_bytes(crd.read_bytes())
        (target / crd.name).chmod(0o644)  # the module cache is read-only


_BUILDERS = {"kubernetes": _build_kubernetes, "kubelet": _build_kubernetes,
             "etcd": _build_etcd, "kwok": _build_kwok, "helm": _build_helm,
             "karpenter": _build_karpenter, "kueue": _build_kueue}


def ensure_built(components: tuple[Component, ...] = DEFAULT_COMPONENTS) -> None:
    """Build what is missing. Components from different sources build side by side (one compiles
    while another downloads or links); a component another process is building is waited for."""
    todo = [c for c in components if c.missing()]
    if not todo:
        return
    go = go_executable()
    groups: dict[str, list[Component]] = {}
    for component in todo:
        groups.setdefault(_source_of(component), []).append(component)
    with ThreadPoolExecutor(len(groups)) as pool:
        futures = [pool.submit(_build_one_by_one, group, go) for group in groups.values()]
        for future in futures:
            future.result()


def _source_of(component: Component) -> str:
    """Components built from one source folder (the kubelet and the control plane) build in turn."""
    return "kubernetes" if component in (CONTROL_PLANE, KUBELET) else component.name


def _build_one_by_one(components: list[Component], go: str) -> None:
    for component in components:
        with _build_lock(_source_of(component)):
            if not component.missing():
                continue  # another process built it while this one waited
            print(f"building {component.name} {component.version} into {component.bin_dir} "
                  f"(missing: {', '.join(component.missing())})", file=sys.stderr, flush=True)
            component.bin_dir.mkdir(parents=True, exist_ok=True)
            _BUILDERS[component.name](component, go)
            if component.missing():
                raise BuildError(f"{component.name}: build finished but {component.missing()} missing")


@contextmanager
def _build_lock(source: str) -> Iterator[None]:
    lock_file = cache_root() / "bin" / f".{source}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
