"""CreateSchedulingPolicy, UpdateSchedulingPolicy, DescribeSchedulingPolicies, ListSchedulingPolicies,
DeleteSchedulingPolicy over the cluster's SchedulingPolicies (a fair-share queue names one by its
ARN in schedulingPolicyArn)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from barge.awsapi import fields
from barge.awsapi.context import Context, create_cluster_object, kube_error, page
from barge.awsapi.errors import client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import Arns, check_kube_name, name_of

PLURAL = "schedulingpolicies"
KIND = "scheduling-policy"
FAIRSHARE_FIELDS = {"shareDecaySeconds", "computeReservation", "shareDistribution"}


async def find(ctx: Context, value: Any, field: str = "arn") -> dict[str, Any] | None:
    name = name_of(value, KIND, field)
    try:
        return await ctx.kube.get(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise kube_error(exc, f"scheduling policy {name}") from None


async def get(ctx: Context, value: Any, field: str = "arn") -> dict[str, Any]:
    obj = await find(ctx, value, field)
    if obj is None:
        raise client_error(f"{field}: scheduling policy {name_of(value, KIND, field)!r} does not exist")
    return obj


def fairshare_spec(policy: Any, field: str = "fairsharePolicy") -> dict[str, Any]:
    if policy is None:
        return {}
    if not isinstance(policy, Mapping):
        raise client_error(f"{field}: must be an object")
    fields.only(policy, FAIRSHARE_FIELDS, f"{field}.")
    spec = {k: policy[k] for k in ("shareDecaySeconds", "computeReservation") if policy.get(k) is not None}
    distribution = policy.get("shareDistribution")
    if distribution is not None:
        spec["shareDistribution"] = [_share(entry, f"{field}.shareDistribution[{i}]")
                                     for i, entry in enumerate(distribution)]
    return spec


def _share(entry: Any, field: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping) or not entry.get("shareIdentifier"):
        raise client_error(f"{field}.shareIdentifier: required")
    fields.only(entry, {"shareIdentifier", "weightFactor"}, f"{field}.")
    share = {"shareIdentifier": entry["shareIdentifier"]}
    if entry.get("weightFactor") is not None:
        share["weightFactor"] = entry["weightFactor"]
    return share


def to_aws(obj: Mapping[str, Any], arns: Arns) -> dict[str, Any]:
    name = str(obj["metadata"]["name"])
    policy = dict((obj.get("spec") or {}).get("fairsharePolicy") or {})
    return {"name": name, "arn": arns.scheduling_policy(name), "fairsharePolicy": policy,
            "tags": fields.tags_of(obj)}


async def create(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = check_kube_name(request.get("name"), "name")
    spec = {"fairsharePolicy": fairshare_spec(request.get("fairsharePolicy"))}
    await create_cluster_object(ctx, PLURAL, "SchedulingPolicy", name, spec, fields.check_tags(request.get("tags")),
                                "name", "scheduling policy")
    return {"name": name, "arn": ctx.arns.scheduling_policy(name)}


async def update(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    """As in AWS, the fairsharePolicy given replaces the one the policy had."""
    obj = await get(ctx, request.get("arn"))
    name = obj["metadata"]["name"]
    policy = dict.fromkeys(FAIRSHARE_FIELDS) | fairshare_spec(request.get("fairsharePolicy"))  # None removes
    try:
        await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, None, name), {"spec": {"fairsharePolicy": policy}})
    except KubeError as exc:
        raise kube_error(exc, f"arn {name}") from None
    return {}


async def describe(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    """The named policies; names that do not exist are left out of the answer, as AWS does."""
    wanted = request.get("arns") or []
    if not wanted:
        raise client_error("arns: at least one scheduling policy ARN is required")
    found = [await find(ctx, value, "arns") for value in wanted]
    return {"schedulingPolicies": [to_aws(obj, ctx.arns) for obj in found if obj is not None]}


async def list_policies(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    try:
        objects = await ctx.kube.list(ctx.who, path_of(PLURAL))
    except KubeError as exc:
        raise kube_error(exc, "scheduling policies") from None
    arns = sorted(ctx.arns.scheduling_policy(o["metadata"]["name"]) for o in objects)
    chunk, token = page([{"arn": arn} for arn in arns], request)
    return {"schedulingPolicies": chunk, **({"nextToken": token} if token else {})}


async def delete(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    obj = await get(ctx, request.get("arn"))
    name = obj["metadata"]["name"]
    try:
        queues = await ctx.kube.list(ctx.who, path_of("jobqueues"))
    except KubeError as exc:
        raise kube_error(exc, "job queues") from None
    users = sorted(q["metadata"]["name"] for q in queues if (q.get("spec") or {}).get("schedulingPolicy") == name)
    if users:
        raise client_error(f"arn: scheduling policy {name} is still used by job queue(s) {', '.join(users)}")
    try:
        await ctx.kube.delete(ctx.who, path_of(PLURAL, None, name))
    except KubeError as exc:
        raise kube_error(exc, f"arn {name}") from None
    return {}
