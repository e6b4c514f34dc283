"""From a job definition and a submission to the pod template and the Kubernetes Job. Pure code.

A BatchJob resolves its definition once, at submission; the result is stored in its status and
every attempt is built from it, so editing or deleting the definition never changes the job.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from barge.core.resources import GPU_RESOURCE, Resources, parse_cpu_milli, pod_requests

API_VERSION = "barge.dev/v1alpha1"
JOB_ID_LABEL = "barge.dev/job-id"
BATCHJOB_LABEL = "barge.dev/batchjob"
ATTEMPT_LABEL = "barge.dev/attempt"
QUEUE_LABEL = "barge.dev/queue"
ENVIRONMENT_LABEL = "barge.dev/compute-environment"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
REF = re.compile(r"Ref::([A-Za-z0-9_\-]+)")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


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


def _valid_labels(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if isinstance(v, str) and len(v) <= 63 and LABEL_VALUE.match(v)}


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
        labels=_valid_labels(tags) if definition.get("propagateTags") else {},
    )


def kubernetes_job_name(batchjob_name: str, attempt: int) -> str:
    """Deterministic and at most 63 characters (the Job controller puts it in a label)."""
    suffix = f"-{attempt}"
    if len(batchjob_name) + len(suffix) <= 63:
        return batchjob_name + suffix
    digest = hashlib.sha256(batchjob_name.encode()).hexdigest()[:8]
    return f"{batchjob_name[: 63 - len(suffix) - 9].rstrip('-.')}-{digest}{suffix}"


@dataclass(frozen=True)
class Placement:
    """What the scheduler decided for one attempt."""
    namespace: str
    batchjob: str
    job_id: str
    attempt: int
    queue: str
    environment: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any] | None
    ttl_seconds_after_finished: int | None
    array_size: int | None = None
    parallelism: int = 1


def batch_env(p: Placement) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    job_id = p.job_id
    if p.array_size:
        env.append({"name": "AWS_BATCH_JOB_ARRAY_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}})
        env.append({"name": "AWS_BATCH_JOB_ARRAY_SIZE", "value": str(p.array_size)})
        job_id = f"{p.job_id}:$(AWS_BATCH_JOB_ARRAY_INDEX)"
    env += [
        {"name": "AWS_BATCH_JOB_ID", "value": job_id},
        {"name": "AWS_BATCH_JOB_ATTEMPT", "value": str(p.attempt)},
        {"name": "AWS_BATCH_JQ_NAME", "value": p.queue},
        {"name": "AWS_BATCH_CE_NAME", "value": p.environment},
    ]
    return env


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), several times cheaper than
    copy.deepcopy, which dominated the operator's CPU per dispatched job."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def _labels(p: Placement, extra: dict[str, str]) -> dict[str, str]:
    labels = {**extra, JOB_ID_LABEL: p.job_id, ATTEMPT_LABEL: str(p.attempt)}
    for key, value in ((BATCHJOB_LABEL, p.batchjob), (QUEUE_LABEL, p.queue), (ENVIRONMENT_LABEL, p.environment)):
        if len(value) <= 63:
            labels[key] = value
    return labels


def kubernetes_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    template = json_copy(resolved.template)
    labels = _labels(p, resolved.labels)
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    spec = template["spec"]
    spec["restartPolicy"] = "Never"
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **p.node_selector}
    spec["tolerations"] = (spec.get("tolerations") or []) + p.tolerations
    if p.affinity:
        spec["affinity"] = {**(spec.get("affinity") or {}), **p.affinity}
    injected = batch_env(p)
    for container in spec["containers"] + (spec.get("initContainers") or []):
        container["env"] = injected + (container.get("env") or [])
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": p.array_size or 1,
        "parallelism": p.parallelism,
        "podReplacementPolicy": "Failed",
        "template": template,
    }
    if p.array_size:
        job_spec["completionMode"] = "Indexed"
    if p.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = p.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": kubernetes_job_name(p.batchjob, p.attempt),
            "namespace": p.namespace,
            "labels": labels,
            # The placement, in full even when the label had to be dropped: a restarted operator
            # recovers it from here when the BatchJob's status was not written yet.
            "annotations": {ENVIRONMENT_LABEL: p.environment},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "BatchJob", "name": p.batchjob,
                                 "uid": p.job_id, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": job_spec,
    }


MANAGED_BY = "barge.dev/operator"
ARRAY_INDEX_LABEL = "barge.dev/array-index"


def array_job_name(batchjob_name: str) -> str:
    if len(batchjob_name) <= 63:
        return batchjob_name
    digest = hashlib.sha256(batchjob_name.encode()).hexdigest()[:8]
    return f"{batchjob_name[:54].rstrip('-.')}-{digest}"


def array_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    """The one Kubernetes Job of an array. Barge manages it (spec.managedBy): the Job controller
    leaves it alone and Barge creates its pods, one per child attempt, as the quota allows."""
    manifest = kubernetes_job(resolved, p)
    manifest["metadata"]["name"] = array_job_name(p.batchjob)
    manifest["metadata"]["labels"].pop(ATTEMPT_LABEL, None)
    spec = manifest["spec"]
    spec["managedBy"] = MANAGED_BY
    spec.pop("ttlSecondsAfterFinished", None)  # the TTL controller ignores Jobs it cannot see finish
    spec["template"]["metadata"]["labels"].pop(ATTEMPT_LABEL, None)
    return manifest


def array_child_pod(resolved: Resolved, p: Placement, job_name: str, job_uid: str, index: int,
                    attempt: int) -> dict[str, Any]:
    """Child `index`, attempt `attempt`: the array's pod template with the child's own values."""
    template = kubernetes_job(resolved, p)["spec"]["template"]
    labels = {**template["metadata"]["labels"], ATTEMPT_LABEL: str(attempt), ARRAY_INDEX_LABEL: str(index),
              "batch.kubernetes.io/controller-uid": job_uid, "controller-uid": job_uid,
              "batch.kubernetes.io/job-name": job_name, "job-name": job_name,
              "batch.kubernetes.io/job-completion-index": str(index)}
    annotations = {**(template["metadata"].get("annotations") or {}), COMPLETION_INDEX_ANNOTATION: str(index)}
    child_values = {
        "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
        "AWS_BATCH_JOB_ID": f"{p.job_id}:{index}",
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
    }
    spec = template["spec"]
    for container in spec["containers"] + (spec.get("initContainers") or []):
        container["env"] = [{"name": e["name"], "value": child_values[e["name"]]} if e["name"] in child_values
                            else e for e in container["env"]]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job_name}-{index}-{attempt}",
            "namespace": p.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
    }
