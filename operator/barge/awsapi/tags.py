"""TagResource, UntagResource, ListTagsForResource, by ARN.

A JobDefinition's tags are its spec.tags. Queues, compute environments and scheduling policies have no
tags field, and a BatchJob's spec.tags is fixed at submission: their tags (and those added to a job
later) are kept in the annotation `barge.dev/aws-tags`. A tag given at submission cannot be removed
(the spec is immutable)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from barge.awsapi import definitions, environments, fields, jobs, queues, scheduling_policies
from barge.awsapi.context import Context, kube_error
from barge.awsapi.errors import client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import TAGS_ANNOTATION, parse_arn, parse_job_id


async def _resource(ctx: Context, arn: Any) -> tuple[str, dict[str, Any]]:
    """(the object's API path, the object) an ARN names."""
    text = unquote(str(arn or ""))
    parsed = parse_arn(text)
    if parsed is None:
        raise client_error(f"resourceArn: {text!r} is not an AWS Batch ARN")
    kind = parsed[0]
    if kind == "job":
        ref = parse_job_id(text, "resourceArn")
        if ref.index is not None:
            raise client_error("resourceArn: an array child has its parent's tags; tag the array job")
        obj = await jobs.find_job(ctx, ref, "resourceArn")
        return path_of("batchjobs", ctx.namespace, obj["metadata"]["name"]), obj
    if kind == "job-queue":
        obj = await queues.get(ctx, text, "resourceArn")
        return path_of("jobqueues", None, obj["metadata"]["name"]), obj
    if kind == "compute-environment":
        obj = await environments.get(ctx, text, "resourceArn")
        return path_of("computeenvironments", None, obj["metadata"]["name"]), obj
    if kind == "scheduling-policy":
        obj = await scheduling_policies.get(ctx, text, "resourceArn")
        return path_of(scheduling_policies.PLURAL, None, obj["metadata"]["name"]), obj
    if kind == "job-definition":
        obj = await definitions.find(ctx, text, "resourceArn")
        return path_of("jobdefinitions", ctx.namespace, obj["metadata"]["name"]), obj
    raise client_error(f"resourceArn: {kind} resources are not served through this API")


async def _patch(ctx: Context, path: str, patch: dict[str, Any]) -> None:
    try:
        await ctx.kube.merge_patch(ctx.who, path, patch)
    except KubeError as exc:
        raise kube_error(exc, "resourceArn") from None


async def tag(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    path, obj = await _resource(ctx, request.get("resourceArn"))
    added = fields.check_tags(request.get("tags"))
    if not added:
        raise client_error("tags: at least one tag is required")
    if obj["kind"] == "JobDefinition":
        await _patch(ctx, path, {"spec": {"tags": added}})
    else:
        fixed = (obj.get("spec") or {}).get("tags") or {}
        clash = sorted(k for k in added if k in fixed and fixed[k] != added[k])
        if clash:
            raise client_error(f"tags: {clash[0]!r} was given at submission and cannot be changed")
        tags = {**fields.tags_of(obj), **added}
        await _patch(ctx, path, {"metadata": {"annotations": {TAGS_ANNOTATION: json.dumps(tags)}}})
    return {}


async def untag(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    path, obj = await _resource(ctx, request.get("resourceArn"))
    keys = request.get("tagKeys") or []
    if not keys:
        raise client_error("tagKeys: at least one key is required")
    if obj["kind"] == "JobDefinition":
        await _patch(ctx, path, {"spec": {"tags": dict.fromkeys(keys)}})
        return {}
    fixed = (obj.get("spec") or {}).get("tags") or {}
    given = sorted(k for k in keys if k in fixed)
    if given:
        raise client_error(f"tagKeys: {given[0]!r} was given at submission and cannot be removed")
    tags = {k: v for k, v in fields.tags_of(obj).items() if k not in keys}
    await _patch(ctx, path, {"metadata": {"annotations": {TAGS_ANNOTATION: json.dumps(tags)}}})
    return {}


async def list_tags(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    _, obj = await _resource(ctx, request.get("resourceArn"))
    return {"tags": {**dict((obj.get("spec") or {}).get("tags") or {}), **fields.tags_of(obj)}}
