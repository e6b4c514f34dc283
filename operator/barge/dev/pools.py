"""The node pools kwok simulates, read from a small YAML file and validated with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

POOL_LABEL = "barge.dev/pool"
KWOK_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
DEFAULT_POOLS_FILE = Path(__file__).with_name("pools.yaml")


class PoolConfigError(ValueError):
    pass


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40)
    nodes: int = Field(ge=0, le=1000)
    capacity: dict[str, str] = Field(description="cpu, memory, pods, nvidia.com/gpu, ...")
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    def node_names(self) -> list[str]:
        return [f"kwok-{self.name}-{i}" for i in range(self.nodes)]


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pools: list[Pool]


def load_pools(path: Path = DEFAULT_POOLS_FILE) -> PoolConfig:
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PoolConfigError(f"cannot read pool config {path}: {exc}") from exc
    try:
        config = PoolConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PoolConfigError(f"invalid pool config {path}: {problems}") from exc
    names = [p.name for p in config.pools]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PoolConfigError(f"invalid pool config {path}: pools.name: duplicate {duplicates}")
    for i, pool in enumerate(config.pools):
        if "cpu" not in pool.capacity:
            raise PoolConfigError(f"invalid pool config {path}: pools.{i}.capacity.cpu: required")
    return config


def node_manifest(pool: Pool, name: str, pod_cidr: str | None = None) -> dict[str, Any]:
    allocatable = {"pods": "110"} | pool.capacity
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_NODE_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                POOL_LABEL: pool.name,
            }
            | pool.labels,
        },
        "spec": {"taints": [t.model_dump() for t in pool.taints]} | ({"podCIDR": pod_cidr} if pod_cidr else {}),
        "status": {"capacity": allocatable, "allocatable": allocatable},
    }
