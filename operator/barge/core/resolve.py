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


def resolve(definition: dict[str, Any], job_spec: dict[str, Any]) -> Resolved:
    """The job as it will run: definition + parameters + overrides. Raises SpecError."""
    template = json_copy(definition.get("template") or {})
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise SpecError("JobDefinition spec.template.spec.containers must have at least one container")
    parameters = {**(definition.get("parameters") or {}), **(job_spec.get("parameters") or {})}
    main = containers[0]
    _apply_overrides(main, job_spec.get("overrides") or {})
    for container in containers + (template["spec"].get("initContainers") or []):
        for field in ("command", "args"):
            if container.get(field):
                container[field] = [substitute(str(v), parameters) for v in container[field]]
    try:
        request = pod_requests(template["spec"])
    except ValueError as exc:
        raise SpecError(f"resources of the main container: {exc}") from exc
    tags = {**(definition.get("tags") or {}), **(job_spec.get("tags") or {})}
    retry = job_spec.get("retryStrategy") or definition.get("retryStrategy") or {"attempts": 1}
    timeout = job_spec.get("timeout") or definition.get("timeout") or {}
    return Resolved(
        template=template,
        request=request,
        retry_strategy={"attempts": retry.get("attempts", 1), "evaluateOnExit": retry.get("evaluateOnExit") or []},
        timeout_seconds=timeout.get("attemptDurationSeconds"),
        labels=_propagated(template, tags) if definition.get("propagateTags") and tags else {},
    )


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times cheaper than
    copy.deepcopy, which dominated the operator's CPU per dispatched job."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value
