"""The real node's generated configuration and the image cache key (no root, no cluster)."""

from __future__ import annotations

import json
from pathlib import Path

from barge.dev import images, realnode


def test_image_content_hash_follows_the_context_but_not_ignored_files(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:bookworm-20251229-slim\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / ".dockerignore").write_text("notes\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("a")
    first = images.content_hash(tmp_path / "Dockerfile", tmp_path)
    (tmp_path / "notes" / "todo.txt").write_text("b")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.pyc").write_bytes(b"x")
    assert images.content_hash(tmp_path / "Dockerfile", tmp_path) == first
    (tmp_path / "app.py").write_text("print(2)\n")
    assert images.content_hash(tmp_path / "Dockerfile", tmp_path) != first


def test_the_projects_dockerfile_builds_from_the_base_made_here() -> None:
    dockerfile = Path(__file__).resolve().parents[2] / "Dockerfile"
    assert f"ARG BASE={images.DEBIAN_BASE}" in dockerfile.read_text()


def test_kubelet_config_keeps_everything_on_loopback_and_tolerates_cgroup_v1(tmp_path: Path) -> None:
    config = realnode.kubelet_config(tmp_path)
    assert config["address"] == "127.0.0.1" and config["healthzBindAddress"] == "127.0.0.1"
    assert config["readOnlyPort"] == 0 and config["failCgroupV1"] is False
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["containerRuntimeEndpoint"] == f"unix://{tmp_path / 'realnode' / 'containerd.sock'}"
    assert {"key": realnode.TAINT_KEY, "value": "true", "effect": "NoSchedule"} in config["registerWithTaints"]


def test_cni_config_is_a_bridge_without_masquerade_in_the_pod_cidr(tmp_path: Path) -> None:
    config = json.loads(realnode.cni_config(tmp_path))
    bridge = config["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": realnode.POD_CIDR}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
