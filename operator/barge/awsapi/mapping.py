"""AWS Batch's shapes <-> Barge's kinds, field by field (docs/aws-api.md has the table). Pure.

What has no Kubernetes meaning is refused with a ClientException naming the field, never dropped."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from barge.awsapi.errors import client_error
from barge.awsapi.names import (
    ACTIVE,
    DEFINITION_ARN_ANNOTATION,
    FAMILY_LABEL,
    INACTIVE,
    NAME_ANNOTATION,
    REVISION_LABEL,
    STATUS_LABEL,
    TAGS_ANNOTATION,
    Arns,
    definition_object_name,
    kube_base,
    name_of,
    parse_definition_ref,
)
from barge.core.arrays import Settled
from barge.core.resources import GPU_RESOURCE, parse_cpu_milli, parse_quantity
from barge.core.states import API_VERSION, JOB_ID_LABEL, JOB_STATES, SUBMITTED

MAIN = "main"
MIB = 1024 * 1024
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]*:role/(?:.*/)?([^/]+)$")
SECRET_REF = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?):([-._a-zA-Z0-9]+)$")


def refuse(field: str, why: str = "has no equivalent on Kubernetes in Barge") -> Exception:
    return client_error(f"{field} {why}")


def _only(request: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Every field given (and not null) must be one Barge maps."""
    for key in request:
        if key not in allowed and request[key] not in (None, [], {}):
            raise refuse(f"{where}{key}")


def epoch_ms(rfc3339: str | None) -> int | None:
    if not rfc3339:
        return None
    text = rfc3339.rstrip("Z").split("+")[0]
    whole, _, fraction = text.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000 + int((fraction + "000")[:3])


def tags_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Tags kept beside an object that has no tags field (and added after submission on one that has)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(TAGS_ANNOTATION)
    return dict(json.loads(text)) if text else {}


def check_tags(tags: Any, field: str = "tags") -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise client_error(f"{field}: must be a map of string to string")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise client_error(f"{field}: key {key!r}: keys are 1 to 128 characters, values at most 256")
    return dict(tags)


# --- containerProperties <-> the pod template ------------------------------------------------------

CONTAINER_FIELDS = {"image", "vcpus", "memory", "command", "jobRoleArn", "volumes", "environment", "mountPoints",
                    "readonlyRootFilesystem", "privileged", "user", "resourceRequirements", "secrets"}


def _resources(vcpus: Any, memory: Any, requirements: Any, where: str) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if vcpus is not None:
        requests["cpu"] = str(vcpus)
    if memory is not None:
        requests["memory"] = limits["memory"] = f"{int(memory)}Mi"
    for i, requirement in enumerate(requirements or []):
        kind, value = requirement.get("type"), requirement.get("value")
        field = f"{where}resourceRequirements[{i}]"
        if not isinstance(value, str):
            raise client_error(f"{field}.value: required, a string")
        try:
            if kind == "VCPU":
                requests["cpu"] = f"{parse_cpu_milli(value)}m" if "." in value else value
            elif kind == "MEMORY":
                requests["memory"] = limits["memory"] = f"{int(value)}Mi"
            elif kind == "GPU":
                requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(int(value))
            else:
                raise refuse(f"{field}.type {kind!r}", "is not VCPU, MEMORY or GPU")
        except ValueError:
            raise client_error(f"{field}.value: {value!r} is not a number") from None
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}


def _service_account(role: str, field: str) -> str:
    match = ROLE_ARN.match(role)
    name = match.group(1) if match else role
    if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
        raise client_error(f"{field}: {role!r}: the role's name becomes the pod's service account and must be a "
                           "Kubernetes name")
    return name


def container_properties_to_template(cp: Mapping[str, Any], where: str = "containerProperties.") -> dict[str, Any]:
    _only(cp, CONTAINER_FIELDS, where)
    if not cp.get("image"):
        raise client_error(f"{where}image: required")
    container: dict[str, Any] = {"name": MAIN, "image": cp["image"]}
    if cp.get("command"):
        container["args"] = list(cp["command"])  # ECS semantics: the image's CMD, not its ENTRYPOINT
    env = [{"name": e.get("name"), "value": e.get("value", "")} for e in cp.get("environment") or []]
    for i, secret in enumerate(cp.get("secrets") or []):
        match = SECRET_REF.match(str(secret.get("valueFrom") or ""))
        if not match:
            raise client_error(f"{where}secrets[{i}].valueFrom: {secret.get('valueFrom')!r} must be "
                               "'<Secret name>:<key>' (a Kubernetes Secret in the job's namespace)")
        env.append({"name": secret.get("name"), "valueFrom": {"secretKeyRef": {"name": match.group(1),
                                                                               "key": match.group(3)}}})
    if env:
        container["env"] = env
    resources = _resources(cp.get("vcpus"), cp.get("memory"), cp.get("resourceRequirements"), where)
    if resources:
        container["resources"] = resources
    security: dict[str, Any] = {}
    if cp.get("privileged") is not None:
        security["privileged"] = bool(cp["privileged"])
    if cp.get("readonlyRootFilesystem") is not None:
        security["readOnlyRootFilesystem"] = bool(cp["readonlyRootFilesystem"])
    if cp.get("user") is not None:
        if not str(cp["user"]).isdigit():
            raise client_error(f"{where}user: {cp['user']!r} must be a numeric uid on Kubernetes")
        security["runAsUser"] = int(cp["user"])
    if security:
        container["securityContext"] = security
    spec: dict[str, Any] = {"containers": [container]}
    volumes = []
    for i, volume in enumerate(cp.get("volumes") or []):
        _only(volume, {"name", "host"}, f"{where}volumes[{i}].")
        source = (volume.get("host") or {}).get("sourcePath")
        volumes.append({"name": volume.get("name"), **({"hostPath": {"path": source}} if source
                                                         else {"emptyDir": {}})})
    if volumes:
        spec["volumes"] = volumes
    mounts = [{"name": m.get("sourceVolume"), "mountPath": m.get("containerPath"),
               **({"readOnly": True} if m.get("readOnly") else {})} for m in cp.get("mountPoints") or []]
    if mounts:
        container["volumeMounts"] = mounts
    if cp.get("jobRoleArn"):
        spec["serviceAccountName"] = _service_account(cp["jobRoleArn"], f"{where}jobRoleArn")
    return {"spec": spec}


def _requirements(resources: Mapping[str, Any]) -> list[dict[str, str]]:
    requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    out = []
    if "cpu" in requests:
        milli = parse_cpu_milli(requests["cpu"])
        out.append({"type": "VCPU", "value": str(milli // 1000) if milli % 1000 == 0 else str(milli / 1000)})
    if "memory" in requests:
        out.append({"type": "MEMORY", "value": str(max(1, int(parse_quantity(requests["memory"]) // MIB)))})
    if GPU_RESOURCE in requests:
        out.append({"type": "GPU", "value": str(int(parse_quantity(requests[GPU_RESOURCE])))})
    return out


def template_to_container_properties(template: Mapping[str, Any]) -> dict[str, Any]:
    """The main container as AWS shows it (command is ENTRYPOINT + CMD when both are set)."""
    spec = template.get("spec") or {}
    container = (spec.get("containers") or [{}])[0]
    out: dict[str, Any] = {"image": container.get("image", "")}
    command = list(container.get("command") or []) + list(container.get("args") or [])
    out["command"] = command
    out["environment"] = [{"name": e["name"], "value": str(e.get("value", ""))}
                          for e in container.get("env") or [] if "valueFrom" not in e]
    secrets = [{"name": e["name"], "valueFrom": f"{ref['name']}:{ref['key']}"}
               for e in container.get("env") or [] if (ref := (e.get("valueFrom") or {}).get("secretKeyRef"))]
    if secrets:
        out["secrets"] = secrets
    out["resourceRequirements"] = _requirements(container.get("resources") or {})
    out["volumes"] = [{"name": v["name"], **({"host": {"sourcePath": v["hostPath"]["path"]}} if v.get("hostPath")
                                              else {})} for v in spec.get("volumes") or []]
    out["mountPoints"] = [{"sourceVolume": m.get("name"), "containerPath": m.get("mountPath"),
                           "readOnly": bool(m.get("readOnly"))} for m in container.get("volumeMounts") or []]
    security = container.get("securityContext") or {}
    if "privileged" in security:
        out["privileged"] = bool(security["privileged"])
    if "readOnlyRootFilesystem" in security:
        out["readonlyRootFilesystem"] = bool(security["readOnlyRootFilesystem"])
    if "runAsUser" in security:
        out["user"] = str(security["runAsUser"])
    if spec.get("serviceAccountName"):
        out["jobRoleArn"] = spec["serviceAccountName"]
    return out


# --- eksProperties: already Kubernetes' shapes -----------------------------------------------------

POD_FIELDS = {"serviceAccountName", "hostNetwork", "dnsPolicy", "imagePullSecrets", "containers", "initContainers",
              "volumes", "metadata", "shareProcessNamespace", "securityContext"}
EKS_CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "command", "args", "env", "resources", "volumeMounts",
                        "securityContext"}


def _eks_containers(containers: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, container in enumerate(containers or []):
        _only(container, EKS_CONTAINER_FIELDS, f"{where}[{i}].")
        if not container.get("image"):
            raise client_error(f"{where}[{i}].image: required")
        out.append({"name": container.get("name") or (MAIN if i == 0 else f"container-{i}"),
                    **{k: v for k, v in container.items() if k != "name" and v not in (None, [], {})}})
    return out


def eks_properties_to_template(eks: Mapping[str, Any], where: str = "eksProperties.") -> dict[str, Any]:
    _only(eks, {"podProperties"}, where)
    pod = eks.get("podProperties") or {}
    where += "podProperties."
    _only(pod, POD_FIELDS, where)
    containers = _eks_containers(pod.get("containers"), f"{where}containers")
    if not containers:
        raise client_error(f"{where}containers: at least one container is required")
    spec: dict[str, Any] = {k: v for k, v in pod.items() if k not in ("containers", "initContainers", "metadata")
                            and v not in (None, [], {})}
    spec["containers"] = containers
    if pod.get("initContainers"):
        spec["initContainers"] = _eks_containers(pod["initContainers"], f"{where}initContainers")
    template: dict[str, Any] = {"spec": spec}
    metadata = pod.get("metadata") or {}
    _only(metadata, {"labels", "annotations"}, f"{where}metadata.")
    if metadata:
        template["metadata"] = {k: v for k, v in metadata.items() if v}
    return template


def template_to_eks_properties(template: Mapping[str, Any]) -> dict[str, Any]:
    spec = dict(template.get("spec") or {})
    pod = {k: v for k, v in spec.items() if k in POD_FIELDS}
    pod["containers"] = [{k: v for k, v in c.items() if k in EKS_CONTAINER_FIELDS}
                         for c in spec.get("containers") or []]
    if spec.get("initContainers"):
        pod["initContainers"] = [{k: v for k, v in c.items() if k in EKS_CONTAINER_FIELDS}
                                 for c in spec["initContainers"]]
    metadata = template.get("metadata") or {}
    if metadata.get("labels") or metadata.get("annotations"):
        pod["metadata"] = {k: metadata[k] for k in ("labels", "annotations") if metadata.get(k)}
    return {"podProperties": pod}


# --- job definitions -------------------------------------------------------------------------------

REGISTER_FIELDS = {"jobDefinitionName", "type", "parameters", "schedulingPriority", "containerProperties",
                   "retryStrategy", "propagateTags", "timeout", "tags", "platformCapabilities", "eksProperties"}


def retry_strategy(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise client_error(f"{field}: must be an object")
    _only(value, {"attempts", "evaluateOnExit"}, f"{field}.")
    out: dict[str, Any] = {}
    if value.get("attempts") is not None:
        attempts = value["attempts"]
        if not isinstance(attempts, int) or not 1 <= attempts <= 10:
            raise client_error(f"{field}.attempts: {attempts!r} must be between 1 and 10")
        out["attempts"] = attempts
    rules = []
    for i, rule in enumerate(value.get("evaluateOnExit") or []):
        _only(rule, {"onStatusReason", "onReason", "onExitCode", "action"}, f"{field}.evaluateOnExit[{i}].")
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
    _only(request, REGISTER_FIELDS, "")
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
    _only(value, OVERRIDE_FIELDS, where)
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
    _only(request, SUBMIT_FIELDS, "")
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
        _only(array, {"size"}, "arrayProperties.")
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
        _only(dependency, {"jobId", "type"}, f"dependsOn[{i}].")
        kind = dependency.get("type")
        if kind not in (None, "N_TO_N", "SEQUENTIAL"):
            raise client_error(f"dependsOn[{i}].type: {kind!r} must be N_TO_N or SEQUENTIAL")
        if kind and not array:
            raise client_error(f"dependsOn[{i}].type: {kind} needs arrayProperties")
        if kind != "SEQUENTIAL" and not dependency.get("jobId"):
            raise client_error(f"dependsOn[{i}].jobId: required")
        out.append((dependency.get("jobId") if kind != "SEQUENTIAL" else None, kind))
    return out


# --- DescribeJobs / ListJobs -----------------------------------------------------------------------

def job_id_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("jobId") or (obj.get("metadata") or {}).get("uid"))


def job_name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return str((metadata.get("annotations") or {}).get(NAME_ANNOTATION) or metadata.get("name"))


def definition_arn_of(obj: Mapping[str, Any], arns: Arns) -> str:
    given = ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFINITION_ARN_ANNOTATION)
    if given:
        return str(given)
    ref = str((obj.get("spec") or {}).get("jobDefinition"))
    return arns.definition(ref, 1)


def _times(status: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, int]:
    out = {"createdAt": epoch_ms(status.get("createdAt") or metadata.get("creationTimestamp"))}
    for field in ("startedAt", "stoppedAt"):
        if status.get(field):
            out[field] = epoch_ms(status[field])
    return {k: v for k, v in out.items() if v is not None}


def attempts_to_aws(attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for attempt in attempts:
        container: dict[str, Any] = {}
        if attempt.get("exitCode") is not None:
            container["exitCode"] = attempt["exitCode"]
        if attempt.get("reason"):
            container["reason"] = attempt["reason"]
        if attempt.get("podName"):
            container["logStreamName"] = attempt["podName"]
        if attempt.get("nodeName"):
            container["containerInstanceArn"] = attempt["nodeName"]
        entry: dict[str, Any] = {"container": container}
        for field in ("startedAt", "stoppedAt"):
            if attempt.get(field):
                entry[field] = epoch_ms(attempt[field])
        if attempt.get("statusReason"):
            entry["statusReason"] = attempt["statusReason"]
        out.append(entry)
    return out


def summary_counts(array_status: Mapping[str, Any], size: int) -> dict[str, int]:
    given = array_status.get("statusSummary") or {}
    counts = {state: int(given.get(state, 0)) for state in JOB_STATES}
    if not any(counts.values()):
        counts[SUBMITTED] = size
    return counts


def dependency_to_aws(dependency: Mapping[str, Any], id_of_name: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    job_id = dependency.get("jobId") or id_of_name.get(str(dependency.get("jobName")))
    if job_id:
        out["jobId"] = job_id
    elif dependency.get("jobName"):
        out["jobId"] = str(dependency["jobName"])
    if dependency.get("type"):
        out["type"] = dependency["type"]
    return out


def batchjob_to_detail(obj: Mapping[str, Any], arns: Arns, id_of_name: Mapping[str, str]) -> dict[str, Any]:
    """A BatchJob as DescribeJobs' JobDetail (startedAt only once started, as AWS answers)."""
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    job_id = job_id_of(obj)
    detail: dict[str, Any] = {
        "jobArn": arns.job(job_id), "jobName": job_name_of(obj), "jobId": job_id,
        "jobQueue": arns.queue(str(spec.get("jobQueue"))), "status": status.get("state") or SUBMITTED,
        "jobDefinition": definition_arn_of(obj, arns), "parameters": dict(spec.get("parameters") or {}),
        "dependsOn": [dependency_to_aws(d, id_of_name) for d in spec.get("dependsOn") or []],
        "tags": {**dict(spec.get("tags") or {}), **tags_of(obj)}, "propagateTags": False,
        "platformCapabilities": ["EC2"], "isCancelled": bool(status.get("isCancelled")),
        "isTerminated": bool(status.get("isTerminated")),
        "attempts": attempts_to_aws(status.get("attempts") or []),
        **_times(status, metadata),
    }
    if status.get("statusReason"):
        detail["statusReason"] = status["statusReason"]
    resolved = status.get("resolved") or {}
    container = template_to_container_properties(resolved.get("template") or {}) if resolved else {}
    last = (status.get("attempts") or [{}])[-1]
    if last.get("exitCode") is not None:
        container["exitCode"] = last["exitCode"]
    if last.get("reason"):
        container["reason"] = last["reason"]
    if last.get("podName"):
        container["logStreamName"] = last["podName"]
    detail["container"] = container
    retry = resolved.get("retryStrategy") or spec.get("retryStrategy")
    if retry:
        detail["retryStrategy"] = dict(retry)
    seconds = resolved.get("timeoutSeconds") or (spec.get("timeout") or {}).get("attemptDurationSeconds")
    if seconds:
        detail["timeout"] = {"attemptDurationSeconds": seconds}
    if spec.get("shareIdentifier"):
        detail["shareIdentifier"] = spec["shareIdentifier"]
    if spec.get("schedulingPriorityOverride") is not None:
        detail["schedulingPriority"] = spec["schedulingPriorityOverride"]
    size = (spec.get("arrayProperties") or {}).get("size")
    if size:
        detail["arrayProperties"] = {"size": size,
                                     "statusSummary": summary_counts(status.get("arrayProperties") or {}, size)}
    return detail


def child_state(parent: Mapping[str, Any], index: int, pod_phase: str | None) -> str:
    """An array child's state: recorded in the parent once settled, else from its pod, else waiting."""
    status = parent.get("status") or {}
    settled = Settled.from_status(status.get("arrayProperties") or {})
    if index in settled.succeeded:
        return "SUCCEEDED"
    if index in settled.failed:
        return "FAILED"
    if pod_phase == "Running":
        return "RUNNING"
    if pod_phase == "Pending":
        return "STARTING"
    parent_state = status.get("state") or SUBMITTED
    if parent_state in ("SUCCEEDED", "FAILED"):
        return str(parent_state)  # a child the parent's end settled without a record (cancelled)
    return "RUNNABLE" if parent_state == "PENDING" and "Children" in str(status.get("statusReason")) else (
        "PENDING" if parent_state == "PENDING" else SUBMITTED)


def child_detail(parent: Mapping[str, Any], index: int, pod_phase: str | None, arns: Arns,
                 id_of_name: Mapping[str, str]) -> dict[str, Any]:
    detail = batchjob_to_detail(parent, arns, id_of_name)
    child_id = f"{detail['jobId']}:{index}"
    status = parent.get("status") or {}
    settled = Settled.from_status(status.get("arrayProperties") or {})
    state = child_state(parent, index, pod_phase)
    detail.update(jobId=child_id, jobArn=arns.job(child_id), status=state,
                  arrayProperties={"index": index},
                  attempts=attempts_to_aws(settled.attempts.get(index, [])))
    detail.pop("statusReason", None)
    if state in ("SUCCEEDED", "FAILED") and status.get("stoppedAt"):
        detail["stoppedAt"] = epoch_ms(status["stoppedAt"])
    else:
        detail.pop("stoppedAt", None)
    return detail


def batchjob_to_summary(obj: Mapping[str, Any], arns: Arns) -> dict[str, Any]:
    metadata, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    job_id = job_id_of(obj)
    out: dict[str, Any] = {"jobArn": arns.job(job_id), "jobId": job_id, "jobName": job_name_of(obj),
                           "status": status.get("state") or SUBMITTED,
                           "jobDefinition": definition_arn_of(obj, arns), **_times(status, metadata),
                           "isCancelled": bool(status.get("isCancelled")),
                           "isTerminated": bool(status.get("isTerminated"))}
    if status.get("statusReason"):
        out["statusReason"] = status["statusReason"]
    last = (status.get("attempts") or [{}])[-1]
    if last.get("exitCode") is not None or last.get("reason"):
        out["container"] = {k: v for k, v in (("exitCode", last.get("exitCode")), ("reason", last.get("reason")))
                            if v is not None}
    size = (spec.get("arrayProperties") or {}).get("size")
    if size:
        out["arrayProperties"] = {"size": size}
    return out


def id_label_patch(job_id: str) -> dict[str, Any]:
    return {"metadata": {"labels": {JOB_ID_LABEL: job_id}}}


# --- job queues -------------------------------------------------------------------------------------

QUEUE_FIELDS = {"jobQueueName", "jobQueue", "state", "priority", "computeEnvironmentOrder", "tags",
                "jobStateTimeLimitActions"}


def _state(value: Any, field: str = "state") -> str:
    if value not in ("ENABLED", "DISABLED"):
        raise client_error(f"{field}: {value!r} must be ENABLED or DISABLED")
    return str(value)


def queue_spec(request: Mapping[str, Any], create: bool) -> dict[str, Any]:
    _only(request, QUEUE_FIELDS, "")
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
        out["schedulingPolicyArn"] = arns._arn(f"scheduling-policy/{spec['schedulingPolicy']}")
    return out


# --- compute environments ---------------------------------------------------------------------------

ENVIRONMENT_FIELDS = {"computeEnvironmentName", "computeEnvironment", "type", "state", "unmanagedvCpus",
                      "computeResources", "tags"}
COMPUTE_RESOURCE_FIELDS = {"type", "minvCpus", "maxvCpus", "desiredvCpus"}
UNMANAGED_DEFAULT_VCPUS = 10000  # AWS caps an UNMANAGED environment by nothing; Barge's quota needs a number


def environment_spec(request: Mapping[str, Any], create: bool, kind: str) -> dict[str, Any]:
    _only(request, ENVIRONMENT_FIELDS, "")
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
        _only(given, COMPUTE_RESOURCE_FIELDS, "computeResources.")
        if given.get("type") not in (None, "EC2"):
            raise refuse(f"computeResources.type {given['type']!r}", "is not supported: EC2 (the cluster's nodes)")
        for field in ("minvCpus", "maxvCpus", "desiredvCpus"):
            if given.get(field) is not None:
                resources[field] = int(given[field])
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
        out["computeResources"] = {"type": "EC2", "minvCpus": int(resources.get("minvCpus") or 0),
                                   "maxvCpus": int(resources.get("maxvCpus") or 0),
                                   **({"desiredvCpus": resources["desiredvCpus"]} if resources.get("desiredvCpus")
                                      is not None else {})}
    return out


def definition_ref_text(value: object) -> str:
    ref = parse_definition_ref(value)
    return ref.name if ref.revision is None else f"{ref.name}:{ref.revision}"
