"""SubmitJob, DescribeJobs, ListJobs, CancelJob, TerminateJob, GetJobQueueSnapshot.

A job is a BatchJob; its jobId is its uid (status.jobId). The API labels each BatchJob it creates
with `barge.dev/job-id`, so an id is found by label; a BatchJob applied with kubectl (no label) is
found by listing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from barge.awsapi import definitions, job_detail, mapping
from barge.awsapi.context import Context, kube_error, page
from barge.awsapi.errors import AwsError, client_error
from barge.awsapi.kubeapi import KubeError, path_of
from barge.awsapi.names import JobRef, check_aws_name, name_of, parse_job_id
from barge.core.states import ARRAY_INDEX_LABEL, JOB_ID_LABEL, JOB_STATES

PLURAL = "batchjobs"
DESCRIBE_MAX = 100


async def _list(ctx: Context, selector: str | None = None) -> list[dict[str, Any]]:
    try:
        return await ctx.kube.list(ctx.who, path_of(PLURAL, ctx.namespace), selector)
    except KubeError as exc:
        raise kube_error(exc, "jobs") from None


async def find_jobs(ctx: Context, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The BatchJobs with these ids (missing ids are left out)."""
    if not job_ids:
        return {}
    found = {job_detail.job_id_of(o): o for o in await _list(ctx, f"{JOB_ID_LABEL} in ({','.join(sorted(job_ids))})")}
    if job_ids - set(found):
        for obj in await _list(ctx):
            if obj["metadata"].get("uid") in job_ids:
                found[str(obj["metadata"]["uid"])] = obj
    return {k: v for k, v in found.items() if k in job_ids}


async def find_job(ctx: Context, ref: JobRef, field: str = "jobId") -> dict[str, Any]:
    obj = (await find_jobs(ctx, {ref.job_id})).get(ref.job_id)
    if obj is None:
        raise client_error(f"{field}: job {ref.job_id} does not exist")
    return obj


async def _queue(ctx: Context, name: str) -> dict[str, Any]:
    try:
        return await ctx.kube.get(ctx.who, path_of("jobqueues", None, name))
    except KubeError as exc:
        if exc.status == 404:
            raise client_error(f"jobQueue: job queue {name!r} does not exist") from None
        raise kube_error(exc, f"jobQueue {name}") from None


async def _queue_takes(ctx: Context, name: str, share: Any) -> None:
    """The queue exists, and a share identifier is given exactly when it is a fair-share queue (as AWS
    refuses SubmitJob otherwise)."""
    queue = await _queue(ctx, name)
    policy = (queue.get("spec") or {}).get("schedulingPolicy")
    if policy and not share:
        raise client_error(f"shareIdentifier: required, job queue {name!r} is a fair-share queue "
                           f"(scheduling policy {policy!r})")
    if share and not policy:
        raise client_error(f"shareIdentifier: job queue {name!r} has no scheduling policy (a FIFO queue); "
                           "leave shareIdentifier out")


async def _dependencies(ctx: Context, request: dict[str, Any]) -> list[dict[str, Any]]:
    given = mapping.dependency_request(request.get("dependsOn"), bool(request.get("arrayProperties")))
    refs = {i: parse_job_id(job_id, f"dependsOn[{i}].jobId") for i, (job_id, _) in enumerate(given) if job_id}
    for i, ref in refs.items():
        if ref.index is not None:
            raise client_error(f"dependsOn[{i}].jobId: depending on one array child is not supported; "
                               "depend on the array (or use N_TO_N)")
    found = await find_jobs(ctx, {ref.job_id for ref in refs.values()})
    out = []
    for i, (job_id, kind) in enumerate(given):
        if job_id is not None and refs[i].job_id not in found:
            raise client_error(f"dependsOn[{i}].jobId: job {job_id} does not exist")
        entry: dict[str, Any] = {}
        if job_id is not None:
            entry["jobId"] = refs[i].job_id
        if kind:
            entry["type"] = kind
        out.append(entry)
    return out


async def submit(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    name = check_aws_name(request.get("jobName"), "jobName")
    queue = name_of(request.get("jobQueue"), "job-queue", "jobQueue")
    (definition, definition_arn), _, dependencies = await asyncio.gather(
        definitions.resolve(ctx, request.get("jobDefinition")),
        _queue_takes(ctx, queue, request.get("shareIdentifier")), _dependencies(ctx, request))
    body = mapping.submit_to_batchjob(request, definition, definition_arn, dependencies)
    try:
        created = await ctx.kube.create(ctx.who, path_of(PLURAL, ctx.namespace), body)
        job_id = str(created["metadata"]["uid"])
        await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, ctx.namespace, created["metadata"]["name"]),
                                   job_detail.id_label_patch(job_id))
    except KubeError as exc:
        raise kube_error(exc, f"job {name}") from None
    return {"jobArn": ctx.arns.job(job_id), "jobName": name, "jobId": job_id}


async def _names_to_ids(ctx: Context, objects: list[dict[str, Any]]) -> dict[str, str]:
    """Ids of the jobs that described jobs depend on by name (BatchJobs applied with kubectl)."""
    names = {str(d["jobName"]) for o in objects for d in o["spec"].get("dependsOn") or [] if d.get("jobName")}
    out = {}
    for name in names:
        try:
            obj = await ctx.kube.get(ctx.who, path_of(PLURAL, ctx.namespace, name))
            out[name] = job_detail.job_id_of(obj)
        except KubeError:
            continue
    return out


async def _child_pods(ctx: Context, job_id: str) -> dict[int, str]:
    """The phase of each array child's newest pod (children without a pod are left out)."""
    try:
        pods = await ctx.kube.list(ctx.who, f"/api/v1/namespaces/{ctx.namespace}/pods", f"{JOB_ID_LABEL}={job_id}")
    except KubeError as exc:
        if exc.status == 403:
            return {}  # the caller may not read pods: children not settled show as waiting
        raise kube_error(exc, f"pods of job {job_id}") from None
    phases: dict[int, tuple[str, str]] = {}
    for pod in pods:
        index = (pod["metadata"].get("labels") or {}).get(ARRAY_INDEX_LABEL)
        if index is None or not str(index).isdigit():
            continue
        created = str(pod["metadata"].get("creationTimestamp"))
        if int(index) not in phases or created >= phases[int(index)][0]:
            phases[int(index)] = (created, str((pod.get("status") or {}).get("phase")))
    return {i: phase for i, (_, phase) in phases.items()}


async def describe(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    given = request.get("jobs") or []
    if len(given) > DESCRIBE_MAX:
        raise client_error(f"jobs: at most {DESCRIBE_MAX} job ids")
    refs = [parse_job_id(j, "jobs") for j in given]
    found = await find_jobs(ctx, {r.job_id for r in refs})
    ids = await _names_to_ids(ctx, list(found.values()))
    pods: dict[str, dict[int, str]] = {}
    out = []
    for ref in refs:
        obj = found.get(ref.job_id)
        if obj is None:
            continue  # AWS leaves unknown ids out
        size = (obj["spec"].get("arrayProperties") or {}).get("size")
        if ref.index is None:
            out.append(job_detail.batchjob_to_detail(obj, ctx.arns, ids))
        elif size and ref.index < size:
            if ref.job_id not in pods:
                pods[ref.job_id] = await _child_pods(ctx, ref.job_id)
            out.append(job_detail.child_detail(obj, ref.index, pods[ref.job_id].get(ref.index), ctx.arns, ids))
    return {"jobs": out}


FILTERS = ("JOB_NAME", "JOB_DEFINITION", "BEFORE_CREATED_AT", "AFTER_CREATED_AT")


def _matches(summary: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    for i, flt in enumerate(filters):
        name, values = flt.get("name"), [str(v) for v in flt.get("values") or []]
        if name not in FILTERS or len(values) != 1:
            raise client_error(f"filters[{i}]: name must be one of {', '.join(FILTERS)}, with one value")
        value = values[0]
        if name == "JOB_NAME" and not _glob(summary["jobName"], value):
            return False
        if name == "JOB_DEFINITION" and not (_glob(summary["jobDefinition"], value) or
                                             _glob(summary["jobDefinition"].split("/", 1)[-1], value) or
                                             _glob(summary["jobDefinition"].split("/", 1)[-1].split(":")[0], value)):
            return False
        if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
            if not value.isdigit():
                raise client_error(f"filters[{i}].values: {value!r} must be epoch milliseconds")
            before = name == "BEFORE_CREATED_AT"
            if (summary["createdAt"] >= int(value)) if before else (summary["createdAt"] <= int(value)):
                return False
    return True


def _glob(text: str, pattern: str) -> bool:
    """AWS's filter values: exact, or a prefix with a trailing '*'."""
    return text.startswith(pattern[:-1]) if pattern.endswith("*") else text == pattern


async def list_jobs(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("multiNodeJobId"):
        raise client_error("multiNodeJobId: multi-node jobs are not served through this API")
    status = request.get("jobStatus")
    if status is not None and status not in JOB_STATES:
        raise client_error(f"jobStatus: {status!r} is not one of {', '.join(JOB_STATES)}")
    filters = request.get("filters") or []
    # AWS: with filters, jobStatus is ignored and every status is listed; else the default is RUNNING.
    wanted = None if filters else (status or "RUNNING")
    if bool(request.get("jobQueue")) == bool(request.get("arrayJobId")):
        raise client_error("exactly one of jobQueue and arrayJobId is required")
    if request.get("arrayJobId"):
        summaries = await _children(ctx, parse_job_id(request["arrayJobId"], "arrayJobId"))
    else:
        queue = name_of(request["jobQueue"], "job-queue", "jobQueue")
        objects = [o for o in await _list(ctx) if o["spec"].get("jobQueue") == queue]
        objects.sort(key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]))
        summaries = [job_detail.batchjob_to_summary(o, ctx.arns) for o in objects]
    summaries = [s for s in summaries if (wanted is None or s["status"] == wanted) and _matches(s, filters)]
    chunk, token = page(summaries, request)
    return {"jobSummaryList": chunk, **({"nextToken": token} if token else {})}


async def _children(ctx: Context, ref: JobRef) -> list[dict[str, Any]]:
    parent = await find_job(ctx, ref, "arrayJobId")
    size = (parent["spec"].get("arrayProperties") or {}).get("size")
    if not size or ref.index is not None:
        raise client_error(f"arrayJobId: {ref.job_id} is not an array job")
    phases = await _child_pods(ctx, ref.job_id)
    summary = job_detail.batchjob_to_summary(parent, ctx.arns)
    out = []
    for index in range(size):
        child_id = f"{ref.job_id}:{index}"
        out.append({**summary, "jobId": child_id, "jobArn": ctx.arns.job(child_id),
                    "status": job_detail.child_state(parent, index, phases.get(index)),
                    "arrayProperties": {"index": index}})
        out[-1].pop("statusReason", None)
        out[-1].pop("container", None)
    return out


async def _stop(ctx: Context, request: dict[str, Any], field: str) -> dict[str, Any]:
    ref = parse_job_id(request.get("jobId"))
    if ref.index is not None:
        raise client_error(f"jobId: {ref.job_id}:{ref.index} is an array child; {field} the array job "
                           f"{ref.job_id}")
    reason = request.get("reason")
    if not isinstance(reason, str) or not reason:
        raise client_error("reason: required")
    obj = await find_job(ctx, ref)
    if obj["spec"].get(field) is None:  # already requested: AWS answers success again
        try:
            await ctx.kube.merge_patch(ctx.who, path_of(PLURAL, ctx.namespace, obj["metadata"]["name"]),
                                       {"spec": {field: {"reason": reason[:1024]}}})
        except KubeError as exc:
            raise kube_error(exc, f"job {ref.job_id}") from None
    return {}


async def cancel(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await _stop(ctx, request, "cancel")


async def terminate(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await _stop(ctx, request, "terminate")


BULK_MAX = 50


async def _stop_each(ctx: Context, request: dict[str, Any], field: str) -> dict[str, Any]:
    """CancelJobs / TerminateJobs: each job answered on its own, as AWS reports them."""
    given = request.get("jobs") or []
    if not 1 <= len(given) <= BULK_MAX:
        raise client_error(f"jobs: between 1 and {BULK_MAX} job ids")
    if not isinstance(request.get("reason"), str) or not request["reason"]:
        raise client_error("reason: required")
    successful, errors = [], []
    for job in given:
        try:
            await _stop(ctx, {"jobId": job, "reason": request.get("reason")}, field)
            successful.append(job)
        except AwsError as error:
            errors.append({"job": str(job), "code": error.code, "message": error.message})
    return {"successful": successful, "errors": errors}


async def cancel_each(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await _stop_each(ctx, request, "cancel")


async def terminate_each(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    return await _stop_each(ctx, request, "terminate")


async def snapshot(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
    """The front of a queue: its RUNNABLE jobs in the order they will be placed (by queue time)."""
    queue = name_of(request.get("jobQueue"), "job-queue", "jobQueue")
    await _queue(ctx, queue)
    objects = [o for o in await _list(ctx) if o["spec"].get("jobQueue") == queue
               and (o.get("status") or {}).get("state") == "RUNNABLE"]
    objects.sort(key=lambda o: float((o.get("status") or {}).get("queuedAt") or 0))
    front = [{"jobArn": ctx.arns.job(job_detail.job_id_of(o)),
              "earliestTimeAtPosition": int(float((o.get("status") or {}).get("queuedAt") or 0) * 1000)}
             for o in objects[:100]]
    return {"frontOfQueue": {"jobs": front, "lastUpdatedAt": int(time.time() * 1000)}}
