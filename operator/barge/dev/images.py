"""Container images without a registry: buildah builds them, the real node's containerd imports them.

Base images are made here rather than pulled: a Debian base from debootstrap, tagged with the name a
Dockerfile's `FROM debian:bookworm-slim` resolves to, a pause image (catatonit) and a busybox worker.
A build is skipped when the image carries the hash of its Dockerfile and context (cached by content),
and an import is skipped when containerd already has that image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from barge.dev import build, realnode

DEBIAN_SUITE = "bookworm"
DEBIAN_BASE = "debian:bookworm-20251229-slim"  # the FROM of the project's Dockerfile
WORKER_IMAGE = "localhost/barge/worker:busybox"
HASH_LABEL = "dev.barge.content-hash"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ALWAYS_IGNORED = (".git", ".venv", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache")


class ImageError(RuntimeError):
    pass


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def storage() -> Path:
    return build.cache_root() / "buildah"


def buildah(*args: str, check: bool = True) -> str:
    argv = ["buildah", "--root", str(storage() / "root"), "--runroot", str(storage() / "run"),
            "--storage-driver", "vfs", *args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise ImageError(f"buildah {' '.join(args)} failed:\n{(proc.stderr or proc.stdout)[-3000:]}")
    return proc.stdout


def image_id(name: str) -> str | None:
    out = buildah("images", "--noheading", "--no-trunc", "--format", "{{.ID}}", name, check=False).strip()
    return out.splitlines()[0] if out else None


def image_label(name: str, label: str) -> str | None:
    out = buildah("inspect", "--type", "image", name, check=False)
    if not out:
        return None
    labels = json.loads(out).get("OCIv1", {}).get("config", {}).get("Labels") or {}
    return labels.get(label)


# --- base images ---------------------------------------------------------------------------------

def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for line in text.splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and len(parts) >= 3 and not parts[1].startswith("[") \
                    and "security" not in parts[1]:
                return parts[1]
            if parts[:1] == ["URIs:"] and len(parts) >= 2 and "security" not in parts[1]:
                return parts[1]
    raise ImageError("no Debian mirror found in /etc/apt/sources.list*; debootstrap needs one")


def _from_folder(rootfs: Path, name: str, config: list[str]) -> None:
    container = buildah("from", "scratch").strip()
    try:
        mount = Path(buildah("mount", container).strip())
        subprocess.run(["cp", "-a", f"{rootfs}/.", str(mount)], check=True)
        buildah("unmount", container)
        buildah("config", *config, container)
        buildah("commit", "--quiet", container, name)
    finally:
        buildah("rm", container, check=False)


def ensure_debian_base() -> None:
    if image_id(DEBIAN_BASE):
        return
    started = time.monotonic()
    _say(f"making the {DEBIAN_BASE} base with debootstrap (about a minute)")
    with tempfile.TemporaryDirectory(prefix="barge-debian-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
                               DEBIAN_SUITE, str(rootfs), debian_mirror()], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"debootstrap failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        # This machine's CA bundle (it may trust a proxy the Debian one does not), for apt and for pip,
        # whose own bundle would not have it either. Only this locally made base carries them.
        shutil.copy2(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        _from_folder(rootfs, DEBIAN_BASE, ["--cmd", "/bin/bash", "--env", path])
    _say(f"{DEBIAN_BASE} made in {time.monotonic() - started:.0f}s")


def ensure_pause() -> None:
    if image_id(realnode.PAUSE_IMAGE):
        return
    with tempfile.TemporaryDirectory(prefix="barge-pause-") as tmp:
        shutil.copy2(shutil.which("catatonit") or "/usr/bin/catatonit", Path(tmp) / "pause")
        _from_folder(Path(tmp), realnode.PAUSE_IMAGE, ["--entrypoint", '["/pause", "-P"]'])


def ensure_worker() -> None:
    """A busybox image (static busybox and its applets), the worker of the real-node tests."""
    if image_id(WORKER_IMAGE):
        return
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory(prefix="barge-worker-") as tmp:
        root = Path(tmp)
        for sub in ("bin", "tmp", "etc"):
            (root / sub).mkdir()
        shutil.copy2(busybox, root / "bin" / "busybox")
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                (root / "bin" / applet).symlink_to("busybox")
        (root / "tmp").chmod(0o1777)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
        _from_folder(root, WORKER_IMAGE, ["--cmd", "/bin/sh", "--env", "PATH=/bin"])


# --- Dockerfile builds ---------------------------------------------------------------------------

def _ignore_patterns(context: Path) -> list[str]:
    ignore = context / ".dockerignore"
    lines = ignore.read_text().splitlines() if ignore.is_file() else []
    return [*ALWAYS_IGNORED, *(line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#"))]


def content_hash(dockerfile: Path, context: Path) -> str:
    """sha256 over the Dockerfile and every file of the context that the build can see."""
    patterns = _ignore_patterns(context)
    digest = hashlib.sha256(dockerfile.read_bytes())
    for path in sorted(context.rglob("*")):
        relative = path.relative_to(context).as_posix()
        if any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(part, p) or relative.startswith(p + "/")
               for p in patterns for part in relative.split("/")):
            continue
        if path.is_file():
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_image(dockerfile: Path, context: Path, tag: str) -> bool:
    """Build `tag` unless an image of the same content exists. True when it built."""
    fingerprint = content_hash(dockerfile, context)
    if image_label(tag, HASH_LABEL) == fingerprint:
        _say(f"{tag} is up to date (content {fingerprint[:12]})")
        return False
    ensure_debian_base()
    started = time.monotonic()
    _say(f"building {tag} from {dockerfile}")
    buildah("bud", "--pull=never", "--isolation", "chroot", "--layers", "--label", f"{HASH_LABEL}={fingerprint}",
            "-f", str(dockerfile), "-t", tag, str(context))
    _say(f"{tag} built in {time.monotonic() - started:.0f}s")
    return True


def load_image(state: Path, tag: str) -> bool:
    """Import `tag` into the real node's containerd unless it already has this image. True when imported."""
    wanted = image_id(tag)
    if not wanted:
        raise ImageError(f"no image {tag} in buildah's storage; build it first")
    qualified = tag if "/" in tag.split(":")[0] else f"localhost/{tag}"
    listed = realnode.ctr(state, "images", "ls", f"name=={qualified}").splitlines()[1:]
    marker = realnode.containerd_root().parent / "containerd-imports" / hashlib.sha256(qualified.encode()).hexdigest()
    if listed and marker.is_file() and marker.read_text() == wanted:
        return False
    with tempfile.TemporaryDirectory(prefix="barge-image-") as tmp:
        archive = Path(tmp) / "image.tar"
        buildah("push", "--quiet", tag, f"docker-archive:{archive}:{qualified}")
        realnode.ctr(state, "images", "import", str(archive))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(wanted)
    return True


def image_size(tag: str) -> str:
    return buildah("images", "--noheading", "--format", "{{.Size}}", tag, check=False).strip()
