"""Generate crds/*.yaml (and the Helm chart's copy) from the pydantic models: `python -m barge.api.crdgen`.

pydantic emits JSON Schema with $refs, anyOf-null for optionals and titles; Kubernetes wants
structural OpenAPI v3: everything inlined, every node typed, no nulls.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from barge.api import models
from barge.core.states import GROUP, VERSION

DROP_KEYS = {"title", "$defs", "examples"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _resolve(defs[node["$ref"].split("/")[-1]], defs)
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **extra}, defs)
    node = {k: _resolve(v, defs) for k, v in node.items() if k not in DROP_KEYS}
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) == 1:
            node = {**variants[0], **node}
        else:
            node["anyOf"] = variants
    if node.get("default") is None or isinstance(node.get("default"), (dict, list)):
        node.pop("default", None)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    if node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if node.get("x-kubernetes-int-or-string"):
        node.pop("anyOf", None)
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[plain] = node.pop(bound)
            node[bound] = True
    if node.get("type") == "number" and "maximum" in node and isinstance(node["maximum"], int):
        node["maximum"] = float(node["maximum"])
    return node


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")
    schema = _resolve(raw, raw.get("$defs", {}))
    props = schema["properties"]
    props["metadata"] = {"type": "object"}
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    schema.pop("required", None)
    schema["required"] = ["spec"]
    return dict(schema)


def _column(name: str, path: str, kind: str = "string", priority: int = 0, desc: str = "") -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    if desc:
        column["description"] = desc
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date")

KINDS: dict[str, dict[str, Any]] = {
    "ComputeEnvironment": {
        "model": models.ComputeEnvironment, "plural": "computeenvironments", "scope": "Cluster",
        "short": ["ce"],
        "columns": [
            _column("State", ".spec.state"),
            _column("Status", ".status.status"),
            _column("vCPU(Used/Max)", ".status.vcpuUsage", desc="vCPUs admitted / maxvCpus"),
            AGE,
            _column("Type", ".spec.type", priority=1),
            _column("Reason", ".status.statusReason", priority=1),
        ],
    },
    "JobQueue": {
        "model": models.JobQueue, "plural": "jobqueues", "scope": "Cluster", "short": ["jq"],
        "columns": [
            _column("Priority", ".spec.priority", "integer"),
            _column("State", ".spec.state"),
            _column("Runnable", ".status.jobCounts.RUNNABLE", "integer"),
            _column("Running", ".status.jobCounts.RUNNING", "integer"),
            AGE,
            _column("Status", ".status.status", priority=1),
        ],
    },
    "JobDefinition": {
        "model": models.JobDefinition, "plural": "jobdefinitions", "scope": "Namespaced",
        "short": ["jd"],
        "columns": [
            _column("Image", ".spec.template.spec.containers[0].image"),
            _column("Attempts", ".spec.retryStrategy.attempts", "integer"),
            _column("Timeout", ".spec.timeout.attemptDurationSeconds", "integer"),
            AGE,
        ],
    },
    "BatchJob": {
        "model": models.BatchJob, "plural": "batchjobs", "scope": "Namespaced", "short": ["bj"],
        "columns": [
            _column("State", ".status.state"),
            _column("Queue", ".spec.jobQueue"),
            _column("Array", ".status.arrayProgress", desc="children done/size"),
            _column("Attempts", ".status.attemptCount", "integer"),
            _column("Reason", ".status.statusReason"),
            AGE,
            _column("Env", ".status.computeEnvironment", priority=1),
            _column("Job-ID", ".status.jobId", priority=1),
        ],
    },
    "SchedulingPolicy": {
        "model": models.SchedulingPolicy, "plural": "schedulingpolicies", "scope": "Cluster", "short": ["sp"],
        "columns": [
            _column("Active", ".status.activeShares", "integer", desc="shares with jobs waiting or running"),
            _column("Busiest", ".status.busiest", desc="the shares with the most decayed usage (vCPU-seconds)"),
            _column("Decay", ".spec.fairsharePolicy.shareDecaySeconds", "integer", priority=1),
            _column("Reservation", ".spec.fairsharePolicy.computeReservation", "integer", priority=1),
            AGE,
        ],
    },
}


def crd(kind: str) -> dict[str, Any]:
    info = KINDS[kind]
    plural = info["plural"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": info["scope"],
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                      "listKind": f"{kind}List", "shortNames": info["short"],
                      "categories": ["barge", "all"] if kind == "BatchJob" else ["barge"]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": openapi_schema(info["model"])},
                "subresources": {"status": {}},
                "additionalPrinterColumns": info["columns"],
            }],
        },
    }


def render(kind: str) -> str:
    header = "# Generated by `python -m barge.api.crdgen` from barge/api/models.py. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120)


def file_name(kind: str) -> str:
    return f"{GROUP}_{KINDS[kind]['plural']}.yaml"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = out_dir / file_name(kind)
        path.write_text(render(kind))
        written.append(path)
    return written


ROOT = Path(__file__).resolve().parents[3]
TARGETS = (ROOT / "crds", ROOT / "helm" / "barge" / "files" / "crds")

if __name__ == "__main__":
    for target in [Path(a) for a in sys.argv[1:]] or TARGETS:
        for p in write_all(target):
            print(p)
