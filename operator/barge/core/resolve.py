"""AWS Batch's submission semantics: a job definition plus a submission's parameters and overrides
give the job as it will run. Pure code.

A BatchJob resolves its definition once, at submission; the result is stored in its status and
every attempt is built from it (manifests.py), so editing or deleting the definition never changes the job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from barge.core import gangs
from barge.core.labels import label_key_problem, label_value_problem
from barge.core.resources import GPU_RESOURCE, Resources, parse_cpu_milli, pod_requests
from barge.core.states import TAGS_ANNOTATION

REF = re.compile(r"Ref::([A-Za-z0-9_\-]+)")


class SpecError(ValueError):
    """A submission that cannot become a pod; the message names the field."""


@dataclass(frozen=True)
class Resolved:
    template: dict[str, Any]
    request: Resources
    retry_strategy: dict[str, Any]
    timeout_seconds: int | None
    labels: dict[str, str]
    # A multi-node parallel job: {numNodes, mainNode, nodeRangeProperties: [{targetNodes: "a:b", template}]}
    # with each template resolved; `template` is then the main node's and `request` the whole gang's.
    nodes: dict[str, Any] | None = None


def substitute(value: str, parameters: dict[str, str]) -> str:
    """Replace `Ref::name` with the parameter's value; an unknown ref stays as written."""
    return REF.sub(lambda m: parameters.get(m.group(1), m.group(0)), value)


def _merge_env(env: list[dict[str, Any]], overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    replaced = {e["name"] for e in overrides}
    return [e for e in env if e.get("name") not in replaced] + [dict(e) for e in overrides]


def _apply_resource_shortcuts(resources: dict[str, Any], overrides: dict[str, Any]) -> None:
    requests = resources.setdefault("requests", {})
    limits = resources.setdefault("limits", {})
    if overrides.get("vcpus") is not None:
        cpu = f"{round(float(overrides['vcpus']) * 1000)}m"
        requests["cpu"] = cpu
        if "cpu" in limits and parse_cpu_milli(limits["cpu"]) < parse_cpu_milli(cpu):
            limits["cpu"] = cpu
    if overrides.get("memory") is not None:
        requests["memory"] = limits["memory"] = f"{int(overrides['memory'])}Mi"
    if overrides.get("gpus") is not None:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(int(overrides["gpus"]))
    for key in ("requests", "limits"):
        if not resources[key]:
            del resources[key]


def _apply_overrides(container: dict[str, Any], overrides: dict[str, Any]) -> None:
    for field in ("command", "args"):
        if overrides.get(field) is not None:
            container[field] = list(overrides[field])
    if overrides.get("env"):
        container["env"] = _merge_env(container.get("env") or [], overrides["env"])
    given = overrides.get("resources") or {}
    resources = container.setdefault("resources", {})
    for key in ("requests", "limits"):
        if given.get(key):
            resources[key] = {**resources.get(key, {}), **given[key]}
    _apply_resource_shortcuts(resources, overrides)
    if not resources:
        del container["resources"]


def _propagated(template: dict[str, Any], tags: dict[str, str]) -> dict[str, str]:
    """propagateTags: every tag is kept on the pods in the annotation barge.dev/tags (JSON), since
    AWS's tags allow what labels do not; those that are valid labels are also labels (returned)."""
    metadata = template.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = {**annotations, TAGS_ANNOTATION: json.dumps(tags, sort_keys=True, separators=(",", ":"))}
    return {k: v for k, v in tags.items() if label_key_problem(k) is None and label_value_problem(v) is None}


def _resolve_template(source: dict[str, Any], job_spec: dict[str, Any], parameters: dict[str, str],
                      where: str) -> tuple[dict[str, Any], Resources]:
    template = json_copy(source)
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise SpecError(f"JobDefinition {where}.spec.containers must have at least one container")
    _apply_overrides(containers[0], job_spec.get("overrides") or {})
    for container in containers + (template["spec"].get("initContainers") or []):
        for field in ("command", "args"):
            if container.get(field):
                container[field] = [substitute(str(v), parameters) for v in container[field]]
    try:
        return template, pod_requests(template["spec"])
    except ValueError as exc:
        of = f" of {where}" if where != "spec.template" else ""
        raise SpecError(f"resources of the main container{of}: {exc}") from exc


def resolve(definition: dict[str, Any], job_spec: dict[str, Any]) -> Resolved:
    """The job as it will run: definition + parameters + overrides. Raises SpecError."""
    parameters = {**(definition.get("parameters") or {}), **(job_spec.get("parameters") or {})}
    nodes: dict[str, Any] | None = None
    if definition.get("nodeProperties") is not None:
        template, request, nodes = _resolve_nodes(definition["nodeProperties"], job_spec, parameters)
    else:
        template, request = _resolve_template(definition.get("template") or {}, job_spec, parameters,
                                              "spec.template")
    tags = {**(definition.get("tags") or {}), **(job_spec.get("tags") or {})}
    retry = job_spec.get("retryStrategy") or definition.get("retryStrategy") or {"attempts": 1}
    timeout = job_spec.get("timeout") or definition.get("timeout") or {}
    return Resolved(
        template=template,
        request=request,
        retry_strategy={"attempts": retry.get("attempts", 1), "evaluateOnExit": retry.get("evaluateOnExit") or []},
        timeout_seconds=timeout.get("attemptDurationSeconds"),
        labels=_propagated(template, tags) if definition.get("propagateTags") and tags else {},
        nodes=nodes,
    )


def _resolve_nodes(properties: dict[str, Any], job_spec: dict[str, Any], parameters: dict[str, str]
                   ) -> tuple[dict[str, Any], Resources, dict[str, Any]]:
    """A multi-node job's templates, one per range, and the gang's total request (gangs.py)."""
    if job_spec.get("arrayProperties"):
        raise SpecError("spec.arrayProperties: a multi-node parallel job (the definition has spec.nodeProperties) "
                        "cannot be an array")
    num_nodes = int((job_spec.get("nodeOverrides") or {}).get("numNodes") or properties.get("numNodes") or 0)
    main = int(properties.get("mainNode") or 0)
    if not 0 <= main < num_nodes:
        raise SpecError(f"spec.nodeOverrides.numNodes: {num_nodes} nodes leave the definition's mainNode {main} "
                        "outside the job")
    try:
        ranges = gangs.node_ranges([r.get("targetNodes", "") for r in properties.get("nodeRangeProperties") or []],
                                   num_nodes)
    except ValueError as exc:
        raise SpecError(f"JobDefinition {exc}") from None
    resolved_ranges: list[dict[str, Any]] = []
    total = Resources()
    main_template: dict[str, Any] = {}
    for i, ((first, last), source) in enumerate(zip(ranges, properties["nodeRangeProperties"], strict=True)):
        where = f"spec.nodeProperties.nodeRangeProperties[{i}].template"
        template, request = _resolve_template(source.get("template") or {}, job_spec, parameters, where)
        resolved_ranges.append({"targetNodes": f"{first}:{last}", "template": template})
        total = total + request.times(last - first + 1)
        if first <= main <= last:
            main_template = template
    nodes = {"numNodes": num_nodes, "mainNode": main, "nodeRangeProperties": resolved_ranges}
    return main_template, total, nodes


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times cheaper than
    copy.deepcopy, which dominated the operator's CPU per dispatched job."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value
