"""CreateJobQueue, UpdateJobQueue, DescribeJobQueues, DeleteJobQueue over the cluster's JobQueues."""

from __future__ import annotations

from typing import Any

from barge.awsapi import fields, mapping, scheduling_policies
from barge.awsapi.context import Context, create_cluster_object, describe_named, kube_error
from barge.awsapi.errors import client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import check_kube_name, name_of

PLURAL = "jobqueues"


async def _environments_exist(ctx: Context, spec: dict[str, Any]) -> None:
    for i, entry in enumerate(spec.get("computeEnvironmentOrder") or []):
        try:
            await ctx.kube.get(ctx.who, path_of("computeenvironments", None, entry["computeEnvironment"]))
        except KubeError as exc:
            if exc.status == 404:
                raise client_error(f"computeEnvironmentOrder[{i}].computeEnvironment: compute environment "
                                   f"{entry['computeEnvironment']!r} does not exist") from None
            raise kube_error(exc, "compute environment") from None


async def find(ctx: Context, value: Any, field: str = "jobQueue") -> dict[str, Any] | None:
    name = name_of(value, "job-queue", field)
    try:
        return await ctx.kube.get(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise kube_error(exc, f"job queue {name}") from None


async def get(ctx: Context, value: Any, field: str = "jobQueue") -> dict[str, Any]:
    obj = await find(ctx, value, field)
    if obj is None:
        raise client_error(f"{field}: job queue {name_of(value, 'job-queue', field)!r} does not exist")
    return obj


async def _scheduling_policy(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    """spec.schedulingPolicy from schedulingPolicyArn (a fair-share queue), when given."""
    if not request.get("schedulingPolicyArn"):
        return {}
    policy = await scheduling_policies.get(ctx, request["schedulingPolicyArn"], "schedulingPolicyArn")
    return {"schedulingPolicy": policy["metadata"]["name"]}


async def create(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = check_kube_name(request.get("jobQueueName"), "jobQueueName")
    spec = mapping.queue_spec({k: v for k, v in request.items() if k != "schedulingPolicyArn"}, create=True)
    spec |= await _scheduling_policy(ctx, request)
    await _environments_exist(ctx, spec)
    await create_cluster_object(ctx, PLURAL, "JobQueue", name, spec, fields.check_tags(request.get("tags")),
                                "jobQueueName", "job queue")
    return {"jobQueueName": name, "jobQueueArn": ctx.arns.queue(name)}


async def update(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    obj = await get(ctx, request.get("jobQueue"))
    name = obj["metadata"]["name"]
    spec = mapping.queue_spec({k: v for k, v in request.items() if k not in ("jobQueue", "schedulingPolicyArn")},
                              create=False)
    spec |= await _scheduling_policy(ctx, request)
    await _environments_exist(ctx, spec)
    try:
        await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, None, name), {"spec": spec})
    except KubeError as exc:
        raise kube_error(exc, f"jobQueue {name}") from None
    return {"jobQueueName": name, "jobQueueArn": ctx.arns.queue(name)}


async def describe(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await describe_named(ctx, request, "jobQueues", PLURAL, "job queues", find,
                                lambda obj: mapping.queue_to_aws(obj, ctx.arns))


async def delete(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    obj = await get(ctx, request.get("jobQueue"))
    name = obj["metadata"]["name"]
    if (obj.get("spec") or {}).get("state") != "DISABLED":
        raise client_error(f"jobQueue: {name} must be DISABLED before it is deleted (UpdateJobQueue state=DISABLED)")
    try:
        await ctx.kube.delete(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        raise kube_error(exc, f"jobQueue {name}") from None
    return {}
