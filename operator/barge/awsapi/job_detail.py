"""A BatchJob as DescribeJobs and ListJobs show it (JobDetail, JobSummary), and array children. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from barge.awsapi.fields import epoch_ms, tags_of
from barge.awsapi.names import DEFINITION_ARN_ANNOTATION, NAME_ANNOTATION, Arns
from barge.awsapi.pod_template import template_to_container_properties
from barge.core.arrays import Settled
from barge.core.states import JOB_ID_LABEL, JOB_STATES, SUBMITTED

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
