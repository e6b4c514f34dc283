"""AWS Batch's requests and answers <-> Barge's kinds, field by field (docs/aws-api.md has the table):
job definitions, submissions, job queues, compute environments. Pure. The pod template is
pod_template.py's, a job's answer job_detail.py's.

What has no Kubernetes meaning is refused with a ClientException naming the field, never dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from barge.awsapi.errors import client_error
from barge.awsapi.fields import check_tags, only, refuse, tags_of
from barge.awsapi.names import (
    ACTIVE,
    DEFINITION_ARN_ANNOTATION,
    FAMILY_LABEL,
    INACTIVE,
    NAME_ANNOTATION,
    REVISION_LABEL,
    STATUS_LABEL,
    Arns,
    definition_object_name,
    kube_base,
    name_of,
    parse_definition_ref,
)
from barge.awsapi.pod_template import (
    container_properties_to_template,
    eks_properties_to_template,
    template_to_container_properties,
    template_to_eks_properties,
)
from barge.core.states import API_VERSION

# --- job definitions -------------------------------------------------------------------------------

REGISTER_FIELDS = {"jobDefinitionName", "type", "parameters", "schedulingPriority", "containerProperties",
                   "retryStrategy", "propagateTags", "timeout", "tags", "platformCapabilities", "eksProperties"}


def retry_strategy(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise client_error(f"{field}: must be an object")
    only(value, {"attempts", "evaluateOnExit"}, f"{field}.")
    out: dict[str, Any] = {}
    if value.get("attempts") is not None:
        attempts = value["attempts"]
        if not isinstance(attempts, int) or not 1 <= attempts <= 10:
            raise client_error(f"{field}.attempts: {attempts!r} must be between 1 and 10")
        out["attempts"] = attempts
    rules = []
    for i, rule in enumerate(value.get("evaluateOnExit") or []):
        only(rule, {"onStatusReason", "onReason", "onExitCode", "action"}, f"{field}.evaluateOnExit[{i}].")
        action = str(rule.get("action") or "").upper()
        if action not in ("RETRY", "EXIT"):
            raise client_error(f"{field}.evaluateOnExit[{i}].action: must be RETRY or EXIT")
        rules.append({**{k: v for k, v in rule.items() if k != "action" and v is not None}, "action": action})
    if rules:
        out["evaluateOnExit"] = rules
    return out


def timeout(value: Any, field: str) -> dict[str, Any]:
    seconds = (value or {}).get("attemptDurationSeconds") if isinstance(value, dict) else None
    if not isinstance(seconds, int) or seconds < 60:
        raise client_error(f"{field}.attemptDurationSeconds: {seconds!r} must be at least 60")
    return {"attemptDurationSeconds": seconds}


def parameters(value: Any, field: str = "parameters") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise client_error(f"{field}: must be a map of string to string")
    return dict(value)


def register_to_definition(request: Mapping[str, Any], revision: int) -> dict[str, Any]:
    """A RegisterJobDefinition request as the JobDefinition object of that revision."""
    only(request, REGISTER_FIELDS, "")
    name = str(request["jobDefinitionName"])
    kind = request.get("type")
    if kind != "container":
        raise refuse(f"type {kind!r}", "is not supported: Barge runs type 'container' (multinode is not served "
                     "through this API)")
    platforms = request.get("platformCapabilities") or []
    if any(p != "EC2" for p in platforms):
        raise refuse("platformCapabilities", "may only be EC2 (pods run on the cluster's nodes)")
    has_container, has_eks = bool(request.get("containerProperties")), bool(request.get("eksProperties"))
    if has_container == has_eks:
        raise client_error("exactly one of containerProperties and eksProperties is required")
    template = (container_properties_to_template(request["containerProperties"]) if has_container
                else eks_properties_to_template(request["eksProperties"]))
    spec: dict[str, Any] = {"template": template, "parameters": parameters(request.get("parameters"))}
    if request.get("retryStrategy") is not None:
        spec["retryStrategy"] = retry_strategy(request["retryStrategy"], "retryStrategy")
    if request.get("timeout") is not None:
        spec["timeout"] = timeout(request["timeout"], "timeout")
    if request.get("schedulingPriority") is not None:
        spec["schedulingPriority"] = request["schedulingPriority"]
    if request.get("propagateTags") is not None:
        spec["propagateTags"] = bool(request["propagateTags"])
    spec["tags"] = check_tags(request.get("tags"))
    return {
        "apiVersion": API_VERSION, "kind": "JobDefinition",
        "metadata": {"name": definition_object_name(name, revision),
                     "labels": {FAMILY_LABEL: kube_base(name), REVISION_LABEL: str(revision), STATUS_LABEL: ACTIVE},
                     "annotations": {NAME_ANNOTATION: name, "barge.dev/aws-properties":
                                     "eksProperties" if has_eks else "containerProperties"}},
        "spec": spec,
    }


def definition_identity(obj: Mapping[str, Any]) -> tuple[str, int, str]:
    """(AWS name, revision, ACTIVE|INACTIVE); a definition applied with kubectl is revision 1 of its name."""
    metadata = obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if REVISION_LABEL not in labels:
        return str(metadata.get("name")), 1, ACTIVE
    name = (metadata.get("annotations") or {}).get(NAME_ANNOTATION) or str(metadata.get("name"))
    return name, int(labels[REVISION_LABEL]), INACTIVE if labels.get(STATUS_LABEL) == INACTIVE else ACTIVE


def definition_to_aws(obj: Mapping[str, Any], arns: Arns) -> dict[str, Any]:
    name, revision, status = definition_identity(obj)
    spec = obj.get("spec") or {}
    out: dict[str, Any] = {
        "jobDefinitionName": name, "jobDefinitionArn": arns.definition(name, revision), "revision": revision,
        "status": status, "type": "container", "parameters": dict(spec.get("parameters") or {}),
        "tags": {**dict(spec.get("tags") or {}), **tags_of(obj)}, "propagateTags": bool(spec.get("propagateTags")),
        "platformCapabilities": ["EC2"], "containerOrchestrationType": "EKS",
    }
    properties = ((obj.get("metadata") or {}).get("annotations") or {}).get("barge.dev/aws-properties")
    template = spec.get("template") or {}
    if properties == "eksProperties":
        out["eksProperties"] = template_to_eks_properties(template)
    else:
        out["containerProperties"] = template_to_container_properties(template)
    if spec.get("retryStrategy"):
        out["retryStrategy"] = dict(spec["retryStrategy"])
    if spec.get("timeout"):
        out["timeout"] = dict(spec["timeout"])
    if spec.get("schedulingPriority") is not None:
        out["schedulingPriority"] = spec["schedulingPriority"]
    return out


# --- SubmitJob --------------------------------------------------------------------------------------

SUBMIT_FIELDS = {"jobName", "jobQueue", "jobDefinition", "parameters", "containerOverrides", "arrayProperties",
                 "dependsOn", "retryStrategy", "timeout", "tags", "schedulingPriorityOverride", "shareIdentifier",
                 "propagateTags"}
OVERRIDE_FIELDS = {"vcpus", "memory", "command", "environment", "resourceRequirements"}


def container_overrides(value: Any) -> dict[str, Any]:
    where = "containerOverrides."
    only(value, OVERRIDE_FIELDS, where)
    out: dict[str, Any] = {}
    if value.get("command") is not None:
        out["args"] = list(value["command"])
    if value.get("environment"):
        out["env"] = [{"name": e.get("name"), "value": e.get("value", "")} for e in value["environment"]]
    if value.get("vcpus") is not None:
        out["vcpus"] = value["vcpus"]
    if value.get("memory") is not None:
        out["memory"] = value["memory"]
    for i, requirement in enumerate(value.get("resourceRequirements") or []):
        kind, amount = requirement.get("type"), str(requirement.get("value"))
        try:
            if kind == "VCPU":
                out["vcpus"] = float(amount)
            elif kind == "MEMORY":
                out["memory"] = int(amount)
            elif kind == "GPU":
                out["gpus"] = int(amount)
            else:
                raise refuse(f"{where}resourceRequirements[{i}].type {kind!r}", "is not VCPU, MEMORY or GPU")
        except ValueError:
            raise client_error(f"{where}resourceRequirements[{i}].value: {amount!r} is not a number") from None
    return out


def submit_to_batchjob(request: Mapping[str, Any], definition_object: str, definition_arn: str,
                       dependencies: list[dict[str, Any]]) -> dict[str, Any]:
    """A SubmitJob request as a BatchJob (generateName: AWS job names need not be unique)."""
    only(request, SUBMIT_FIELDS, "")
    if request.get("propagateTags"):
        raise refuse("propagateTags", "is set on the job definition in Barge (JobDefinition spec.propagateTags)")
    name = str(request["jobName"])
    spec: dict[str, Any] = {"jobDefinition": definition_object,
                            "jobQueue": name_of(request["jobQueue"], "job-queue", "jobQueue"),
                            "parameters": parameters(request.get("parameters")),
                            "tags": check_tags(request.get("tags"))}
    if request.get("containerOverrides"):
        spec["overrides"] = container_overrides(request["containerOverrides"])
    array = request.get("arrayProperties") or {}
    if array:
        only(array, {"size"}, "arrayProperties.")
        size = array.get("size")
        if not isinstance(size, int) or not 2 <= size <= 100000:
            raise client_error(f"arrayProperties.size: {size!r} must be between 2 and 100000")
        spec["arrayProperties"] = {"size": size}
    if dependencies:
        spec["dependsOn"] = dependencies
    if request.get("retryStrategy") is not None:
        spec["retryStrategy"] = retry_strategy(request["retryStrategy"], "retryStrategy")
    if request.get("timeout") is not None:
        spec["timeout"] = timeout(request["timeout"], "timeout")
    for field in ("schedulingPriorityOverride", "shareIdentifier"):
        if request.get(field) is not None:
            spec[field] = request[field]
    return {"apiVersion": API_VERSION, "kind": "BatchJob",
            "metadata": {"generateName": f"{kube_base(name)[:50]}-",
                         "annotations": {NAME_ANNOTATION: name, DEFINITION_ARN_ANNOTATION: definition_arn}},
            "spec": spec}


def dependency_request(value: Any, array: bool) -> list[tuple[str | None, str | None]]:
    """(jobId, type) of each dependsOn entry; SEQUENTIAL on an array names no job, as AWS writes it."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 20:
        raise client_error("dependsOn: a list of at most 20 {jobId, type}")
    out = []
    for i, dependency in enumerate(value):
        only(dependency, {"jobId", "type"}, f"dependsOn[{i}].")
        kind = dependency.get("type")
        if kind not in (None, "N_TO_N", "SEQUENTIAL"):
            raise client_error(f"dependsOn[{i}].type: {kind!r} must be N_TO_N or SEQUENTIAL")
        if kind and not array:
            raise client_error(f"dependsOn[{i}].type: {kind} needs arrayProperties")
        if kind != "SEQUENTIAL" and not dependency.get("jobId"):
            raise client_error(f"dependsOn[{i}].jobId: required")
        out.append((dependency.get("jobId") if kind != "SEQUENTIAL" else None, kind))
    return out


# --- job queues -------------------------------------------------------------------------------------

QUEUE_FIELDS = {"jobQueueName", "jobQueue", "state", "priority", "computeEnvironmentOrder", "tags",
                "jobStateTimeLimitActions"}


def _state(value: Any, field: str = "state") -> str:
    if value not in ("ENABLED", "DISABLED"):
        raise client_error(f"{field}: {value!r} must be ENABLED or DISABLED")
    return str(value)


def queue_spec(request: Mapping[str, Any], create: bool) -> dict[str, Any]:
    only(request, QUEUE_FIELDS, "")
    spec: dict[str, Any] = {}
    if request.get("priority") is not None:
        priority = request["priority"]
        if not isinstance(priority, int) or priority < 0:
            raise client_error(f"priority: {priority!r} must be an integer >= 0")
        spec["priority"] = priority
    if request.get("state") is not None or create:
        spec["state"] = _state(request.get("state") or "ENABLED")
    order = request.get("computeEnvironmentOrder")
    if order is not None or create:
        if not order:
            raise client_error("computeEnvironmentOrder: at least one compute environment is required")
        spec["computeEnvironmentOrder"] = [
            {"order": entry.get("order"),
             "computeEnvironment": name_of(entry.get("computeEnvironment"), "compute-environment",
                                           f"computeEnvironmentOrder[{i}].computeEnvironment")}
            for i, entry in enumerate(order)]
    actions = request.get("jobStateTimeLimitActions")
    if actions is not None:
        spec["jobStateTimeLimitActions"] = [
            {"reason": a.get("reason"), "state": a.get("state"), "maxTimeSeconds": a.get("maxTimeSeconds"),
             "action": a.get("action")} for a in actions]
    return spec


def queue_to_aws(obj: Mapping[str, Any], arns: Arns) -> dict[str, Any]:
    name = str(obj["metadata"]["name"])
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    out: dict[str, Any] = {
        "jobQueueName": name, "jobQueueArn": arns.queue(name), "state": spec.get("state") or "ENABLED",
        "priority": int(spec.get("priority") or 0), "jobQueueType": "ECS", "tags": tags_of(obj),
        "computeEnvironmentOrder": [
            {"order": e["order"], "computeEnvironment": arns.environment(e["computeEnvironment"])}
            for e in spec.get("computeEnvironmentOrder") or []],
        "jobStateTimeLimitActions": [dict(a) for a in spec.get("jobStateTimeLimitActions") or []],
        "status": status.get("status") or "CREATING",
    }
    if status.get("statusReason"):
        out["statusReason"] = status["statusReason"]
    if spec.get("schedulingPolicy"):
        out["schedulingPolicyArn"] = arns.scheduling_policy(spec["schedulingPolicy"])
    return out


# --- compute environments ---------------------------------------------------------------------------

ENVIRONMENT_FIELDS = {"computeEnvironmentName", "computeEnvironment", "type", "state", "unmanagedvCpus",
                      "computeResources", "tags"}
COMPUTE_RESOURCE_FIELDS = {"type", "minvCpus", "maxvCpus", "desiredvCpus", "instanceTypes", "allocationStrategy"}
UNMANAGED_DEFAULT_VCPUS = 10000  # AWS caps an UNMANAGED environment by nothing; Barge's quota needs a number


def environment_spec(request: Mapping[str, Any], create: bool, kind: str) -> dict[str, Any]:
    only(request, ENVIRONMENT_FIELDS, "")
    spec: dict[str, Any] = {}
    if create:
        spec["type"] = kind
    if request.get("state") is not None or create:
        spec["state"] = _state(request.get("state") or "ENABLED")
    resources: dict[str, Any] = {}
    if kind == "UNMANAGED":
        if request.get("computeResources"):
            raise refuse("computeResources", "is for MANAGED environments (an UNMANAGED one takes unmanagedvCpus)")
        if request.get("unmanagedvCpus") is not None or create:
            resources["maxvCpus"] = int(request.get("unmanagedvCpus") or UNMANAGED_DEFAULT_VCPUS)
    else:
        if request.get("unmanagedvCpus") is not None:
            raise refuse("unmanagedvCpus", "is for UNMANAGED environments")
        given = request.get("computeResources") or {}
        if create and not given:
            raise client_error("computeResources: required for a MANAGED compute environment")
        only(given, COMPUTE_RESOURCE_FIELDS, "computeResources.")
        if given.get("type") not in (None, "EC2", "SPOT"):
            raise refuse(f"computeResources.type {given['type']!r}", "is not supported: EC2 or SPOT (Karpenter's "
                         "on-demand or spot capacity)")
        for field in ("minvCpus", "maxvCpus", "desiredvCpus"):
            if given.get(field) is not None:
                resources[field] = int(given[field])
        for field in ("type", "allocationStrategy", "instanceTypes"):
            if given.get(field):
                resources[field] = given[field]
        if create and "maxvCpus" not in resources:
            raise client_error("computeResources.maxvCpus: required")
    if resources:
        spec["computeResources"] = resources
    return spec


def environment_to_aws(obj: Mapping[str, Any], arns: Arns) -> dict[str, Any]:
    name = str(obj["metadata"]["name"])
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    resources = spec.get("computeResources") or {}
    kind = spec.get("type") or "MANAGED"
    out: dict[str, Any] = {
        "computeEnvironmentName": name, "computeEnvironmentArn": arns.environment(name), "type": kind,
        "state": spec.get("state") or "ENABLED", "status": status.get("status") or "CREATING",
        "tags": tags_of(obj), "containerOrchestrationType": "EKS", "uuid": str(obj["metadata"].get("uid", "")),
    }
    if status.get("statusReason"):
        out["statusReason"] = status["statusReason"]
    if kind == "UNMANAGED":
        out["unmanagedvCpus"] = int(resources.get("maxvCpus") or 0)
    else:
        desired = resources.get("desiredvCpus")
        out["computeResources"] = {
            "type": resources.get("type") or "EC2", "minvCpus": int(resources.get("minvCpus") or 0),
            "maxvCpus": int(resources.get("maxvCpus") or 0),
            "desiredvCpus": int(desired if desired is not None else status.get("desiredvCpus") or 0),
            **{k: resources[k] for k in ("instanceTypes", "allocationStrategy") if resources.get(k)}}
    return out


def definition_ref_text(value: object) -> str:
    ref = parse_definition_ref(value)
    return ref.name if ref.revision is None else f"{ref.name}:{ref.revision}"
