"""CreateComputeEnvironment, UpdateComputeEnvironment, DescribeComputeEnvironments,
DeleteComputeEnvironment over the cluster's ComputeEnvironments.

An UNMANAGED environment created here selects nodes by its kind's spec.computeResources.nodeSelector
(empty: every node), settable with kubectl afterwards; unmanagedvCpus is its quota."""

from __future__ import annotations

from typing import Any

from barge.awsapi import fields, mapping
from barge.awsapi.context import Context, create_cluster_object, describe_named, kube_error
from barge.awsapi.errors import client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import check_kube_name, name_of

PLURAL = "computeenvironments"


async def find(ctx: Context, value: Any, field: str = "computeEnvironment") -> dict[str, Any] | None:
    name = name_of(value, "compute-environment", field)
    try:
        return await ctx.kube.get(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise kube_error(exc, f"compute environment {name}") from None


async def get(ctx: Context, value: Any, field: str = "computeEnvironment") -> dict[str, Any]:
    obj = await find(ctx, value, field)
    if obj is None:
        name = name_of(value, "compute-environment", field)
        raise client_error(f"{field}: compute environment {name!r} does not exist")
    return obj


async def create(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = check_kube_name(request.get("computeEnvironmentName"), "computeEnvironmentName")
    kind = request.get("type")
    if kind not in ("MANAGED", "UNMANAGED"):
        raise client_error(f"type: {kind!r} must be MANAGED or UNMANAGED")
    spec = mapping.environment_spec(request, create=True, kind=str(kind))
    await create_cluster_object(ctx, PLURAL, "ComputeEnvironment", name, spec,
                                fields.check_tags(request.get("tags")), "computeEnvironmentName",
                                "compute environment")
    return {"computeEnvironmentName": name, "computeEnvironmentArn": ctx.arns.environment(name)}


async def update(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    obj = await get(ctx, request.get("computeEnvironment"))
    name = obj["metadata"]["name"]
    kind = str((obj.get("spec") or {}).get("type") or "MANAGED")
    spec = mapping.environment_spec({k: v for k, v in request.items() if k != "computeEnvironment"},
                                    create=False, kind=kind)
    try:
        await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, None, name), {"spec": spec})
    except KubeError as exc:
        raise kube_error(exc, f"computeEnvironment {name}") from None
    return {"computeEnvironmentName": name, "computeEnvironmentArn": ctx.arns.environment(name)}


async def describe(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await describe_named(ctx, request, "computeEnvironments", PLURAL, "compute environments", find,
                                lambda obj: mapping.environment_to_aws(obj, ctx.arns))


async def delete(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    obj = await get(ctx, request.get("computeEnvironment"))
    name = obj["metadata"]["name"]
    if (obj.get("spec") or {}).get("state") != "DISABLED":
        raise client_error(f"computeEnvironment: {name} must be DISABLED before it is deleted")
    try:
        queues = await ctx.kube.list(ctx.who, path_of("jobqueues"))
    except KubeError as exc:
        raise kube_error(exc, "job queues") from None
    users = sorted(q["metadata"]["name"] for q in queues
                   if any(e.get("computeEnvironment") == name for e in q["spec"].get("computeEnvironmentOrder") or []))
    if users:
        raise client_error(f"computeEnvironment: {name} is still used by job queue(s) {', '.join(users)}")
    try:
        await ctx.kube.delete(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        raise kube_error(exc, f"computeEnvironment {name}") from None
    return {}
