"""RegisterJobDefinition, DescribeJobDefinitions, DeregisterJobDefinition; and a submission's definition.

A revision is its own JobDefinition object, `<name>-<revision>`, labelled with its family, revision
and ACTIVE/INACTIVE: a BatchJob names the revision it was submitted with, and keeps it (AWS's
revisions are Barge's resolve-once rule). A JobDefinition applied with kubectl is revision 1 of its name."""

from __future__ import annotations

from typing import Any

from barge.awsapi import mapping
from barge.awsapi.context import Context, kube_error, page
from barge.awsapi.errors import client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import (
    ACTIVE,
    FAMILY_LABEL,
    INACTIVE,
    REVISION_LABEL,
    STATUS_LABEL,
    check_aws_name,
    kube_base,
    parse_definition_ref,
)

PLURAL = "jobdefinitions"
REGISTER_TRIES = 5


async def family(ctx: Context, name: str, plain: bool = True) -> list[dict[str, Any]]:
    """Revisions of `name`, oldest first: those registered here, and (`plain`, or when there are none)
    the JobDefinition applied with kubectl under that very name."""
    path = path_of(PLURAL, ctx.namespace)
    try:
        labelled = await ctx.kube.list(ctx.who, path, f"{FAMILY_LABEL}={kube_base(name)}")
        revisions = [o for o in labelled if mapping.definition_identity(o)[0] == name]
        if revisions and not plain:
            return sorted(revisions, key=lambda o: mapping.definition_identity(o)[1])
        try:
            applied = await ctx.kube.get(ctx.who, path_of(PLURAL, ctx.namespace, name))
            if REVISION_LABEL not in (applied["metadata"].get("labels") or {}):
                revisions.append(applied)
        except KubeError as exc:
            if exc.status != 404:
                raise
    except KubeError as exc:
        raise kube_error(exc, f"job definition {name}") from None
    return sorted(revisions, key=lambda o: mapping.definition_identity(o)[1])


async def register(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = check_aws_name(request.get("jobDefinitionName"), "jobDefinitionName")
    for _ in range(REGISTER_TRIES):
        existing = await family(ctx, name)
        revision = max((mapping.definition_identity(o)[1] for o in existing), default=0) + 1
        body = mapping.register_to_definition(request, revision)
        try:
            await ctx.kube.create(ctx.who, path_of(PLURAL, ctx.namespace), body)
        except KubeError as exc:
            if exc.status == 409:
                continue  # registered concurrently: take the next revision
            raise kube_error(exc, f"jobDefinition {name}") from None
        return {"jobDefinitionName": name, "jobDefinitionArn": ctx.arns.definition(name, revision),
                "revision": revision}
    raise client_error(f"jobDefinitionName {name}: too many concurrent registrations, try again")


async def find(ctx: Context, value: Any, field: str = "jobDefinition") -> dict[str, Any]:
    """The revision a reference names (the latest ACTIVE one for a bare name)."""
    ref = parse_definition_ref(value, field)
    # A kubectl-applied definition is revision 1: it is read only when it can be the one asked for.
    revisions = await family(ctx, ref.name, plain=ref.revision == 1)
    if ref.revision is None:
        active = [o for o in revisions if mapping.definition_identity(o)[2] == ACTIVE]
        if not active:
            revisions = await family(ctx, ref.name)
            active = [o for o in revisions if mapping.definition_identity(o)[2] == ACTIVE]
        if not active:
            raise client_error(f"{field}: no ACTIVE revision of job definition {ref.name!r}")
        return active[-1]
    for obj in revisions:
        if mapping.definition_identity(obj)[1] == ref.revision:
            return obj
    raise client_error(f"{field}: job definition {ref.name}:{ref.revision} does not exist")


async def resolve(ctx: Context, value: Any) -> tuple[str, str]:
    """(the JobDefinition object's name, the revision's ARN) a SubmitJob names."""
    obj = await find(ctx, value)
    name, revision, status = mapping.definition_identity(obj)
    if status != ACTIVE:
        raise client_error(f"jobDefinition: {name}:{revision} is INACTIVE (deregistered)")
    return str(obj["metadata"]["name"]), ctx.arns.definition(name, revision)


async def describe(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    wanted = request.get("jobDefinitions") or []
    status = request.get("status")
    if status not in (None, ACTIVE, INACTIVE):
        raise client_error(f"status: {status!r} must be ACTIVE or INACTIVE")
    if wanted:
        objects = [await find(ctx, ref, "jobDefinitions") for ref in wanted]
    elif request.get("jobDefinitionName"):
        objects = await family(ctx, check_aws_name(request["jobDefinitionName"], "jobDefinitionName"))
    else:
        try:
            objects = await ctx.kube.list(ctx.who, path_of(PLURAL, ctx.namespace))
        except KubeError as exc:
            raise kube_error(exc, "job definitions") from None
        objects.sort(key=lambda o: (mapping.definition_identity(o)[0], mapping.definition_identity(o)[1]))
    shown = [mapping.definition_to_aws(o, ctx.arns) for o in objects]
    if status:
        shown = [d for d in shown if d["status"] == status]
    chunk, token = page(shown, request)
    return {"jobDefinitions": chunk, **({"nextToken": token} if token else {})}


async def deregister(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    ref = parse_definition_ref(request.get("jobDefinition"))
    if ref.revision is None:
        raise client_error("jobDefinition: name:revision or the ARN is required to deregister")
    obj = await find(ctx, request["jobDefinition"])
    name, revision, _ = mapping.definition_identity(obj)
    labels = {FAMILY_LABEL: kube_base(name), REVISION_LABEL: str(revision), STATUS_LABEL: INACTIVE}
    try:
        await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, ctx.namespace, obj["metadata"]["name"]),
                                   {"metadata": {"labels": labels}})
    except KubeError as exc:
        raise kube_error(exc, f"jobDefinition {name}:{revision}") from None
    return {}
