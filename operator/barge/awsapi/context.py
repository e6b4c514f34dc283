"""What every operation is given: the API server as the caller, the caller's ARNs, the namespace."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from barge.awsapi.errors import AwsError, access_denied, client_error, server_error
from barge.awsapi.identity import Identity
from barge.awsapi.kubeapi import KubeApi, KubeError, path_of
from barge.awsapi.names import TAGS_ANNOTATION, Arns
from barge.core.states import API_VERSION


@dataclass
class Context:
    kube: KubeApi
    who: Identity
    arns: Arns
    namespace: str


def kube_error(error: KubeError, what: str) -> AwsError:
    """An API server refusal in AWS's terms: RBAC's answer is AccessDenied, a bad object a ClientException."""
    if error.status in (401, 403):
        return access_denied(f"Not authorized ({what}): {error.message}")
    if error.status == 404:
        return client_error(f"{what}: not found")
    if error.status in (400, 409, 422):
        return client_error(f"{what}: {error.message}")
    return server_error(f"{what}: the Kubernetes API server answered {error.status} {error.reason}")


def page(items: list[Any], request: dict[str, Any], default: int = 100, largest: int = 1000,
         field: str = "maxResults") -> tuple[list[Any], str | None]:
    """One page of `items` and the nextToken of the next (an opaque offset), as AWS's list calls page."""
    size = request.get(field) or default
    if not isinstance(size, int) or not 1 <= size <= largest:
        raise client_error(f"{field}: {size!r} must be between 1 and {largest}")
    start = 0
    if request.get("nextToken"):
        try:
            start = int(json.loads(base64.urlsafe_b64decode(str(request["nextToken"]).encode()))["offset"])
        except (ValueError, KeyError, TypeError):
            raise client_error("nextToken: not a token this API returned") from None
    chunk = items[start:start + size]
    more = start + size < len(items)
    token = base64.urlsafe_b64encode(json.dumps({"offset": start + size}).encode()).decode() if more else None
    return chunk, token


async def describe_named(ctx: Context, request: dict[str, Any], field: str, plural: str, what: str,
                         find: Callable[[Context, Any, str], Awaitable[dict[str, Any] | None]],
                         to_aws: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """DescribeJobQueues / DescribeComputeEnvironments: the named ones (unknown names are left out of
    the answer, as AWS does), or every one by name, a page at a time."""
    wanted = request.get(field) or []
    if wanted:
        found = [await find(ctx, value, field) for value in wanted]
        objects = [o for o in found if o is not None]
    else:
        try:
            objects = await ctx.kube.list(ctx.who, path_of(plural))
        except KubeError as exc:
            raise kube_error(exc, what) from None
        objects.sort(key=lambda o: o["metadata"]["name"])
    chunk, token = page([to_aws(o) for o in objects], request)
    return {field: chunk, **({"nextToken": token} if token else {})}


async def create_cluster_object(ctx: Context, plural: str, kind: str, name: str, spec: dict[str, Any],
                                tags: dict[str, str], field: str, what: str) -> None:
    """Create a queue, compute environment or scheduling policy (cluster objects named as given), its
    tags in the annotation; an existing name is AWS's ClientException naming `field`."""
    metadata: dict[str, Any] = {"name": name}
    if tags:
        metadata["annotations"] = {TAGS_ANNOTATION: json.dumps(tags)}
    try:
        await ctx.kube.create(ctx.who, path_of(plural), {"apiVersion": API_VERSION, "kind": kind,
                                                         "metadata": metadata, "spec": spec})
    except KubeError as exc:
        if exc.status == 409:
            raise client_error(f"{field}: {what} {name!r} already exists") from None
        raise kube_error(exc, f"{field} {name}") from None
