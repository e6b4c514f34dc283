"""containerProperties and eksProperties <-> the pod template, field by field (docs/aws-api.md). Pure.

What has no Kubernetes meaning is refused with a ClientException naming the field, never dropped."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from barge.awsapi.errors import client_error
from barge.awsapi.fields import only, refuse
from barge.core.resources import GPU_RESOURCE, parse_cpu_milli, parse_quantity

MAIN = "main"
MIB = 1024 * 1024
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]*:role/(?:.*/)?([^/]+)$")
SECRET_REF = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?):([-._a-zA-Z0-9]+)$")


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
    only(cp, CONTAINER_FIELDS, where)
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
        only(volume, {"name", "host"}, f"{where}volumes[{i}].")
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
        only(container, EKS_CONTAINER_FIELDS, f"{where}[{i}].")
        if not container.get("image"):
            raise client_error(f"{where}[{i}].image: required")
        out.append({"name": container.get("name") or (MAIN if i == 0 else f"container-{i}"),
                    **{k: v for k, v in container.items() if k != "name" and v not in (None, [], {})}})
    return out


def eks_properties_to_template(eks: Mapping[str, Any], where: str = "eksProperties.") -> dict[str, Any]:
    only(eks, {"podProperties"}, where)
    pod = eks.get("podProperties") or {}
    where += "podProperties."
    only(pod, POD_FIELDS, where)
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
    only(metadata, {"labels", "annotations"}, f"{where}metadata.")
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
