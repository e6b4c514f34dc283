"""Kubernetes manifests of a resolved job: the Job of one attempt, an array's one Job and the pod of
each of its children, with deterministic names and AWS's environment variables. Pure code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from barge.core import gangs
from barge.core.resolve import Resolved, json_copy
from barge.core.states import (
    API_VERSION,
    ARRAY_INDEX_LABEL,
    ATTEMPT_LABEL,
    BATCHJOB_LABEL,
    COMPLETION_INDEX_ANNOTATION,
    ENVIRONMENT_ANNOTATION,
    ENVIRONMENT_LABEL,
    JOB_ID_LABEL,
    MANAGED_BY,
    NODE_INDEX_LABEL,
    QUEUE_LABEL,
)


def kubernetes_job_name(batchjob_name: str, attempt: int) -> str:
    """Deterministic and at most 63 characters (the Job controller puts it in a label)."""
    suffix = f"-{attempt}"
    if len(batchjob_name) + len(suffix) <= 63:
        return batchjob_name + suffix
    digest = hashlib.sha256(batchjob_name.encode()).hexdigest()[:8]
    return f"{batchjob_name[: 63 - len(suffix) - 9].rstrip('-.')}-{digest}{suffix}"


@dataclass(frozen=True)
class Placement:
    """What the scheduler decided for one attempt."""
    namespace: str
    batchjob: str
    job_id: str
    attempt: int
    queue: str
    environment: str
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    affinity: dict[str, Any] | None
    ttl_seconds_after_finished: int | None
    array_size: int | None = None
    parallelism: int = 1


def batch_env(p: Placement) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    job_id = p.job_id
    if p.array_size:
        env.append({"name": "AWS_BATCH_JOB_ARRAY_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}})
        env.append({"name": "AWS_BATCH_JOB_ARRAY_SIZE", "value": str(p.array_size)})
        job_id = f"{p.job_id}:$(AWS_BATCH_JOB_ARRAY_INDEX)"
    env += [
        {"name": "AWS_BATCH_JOB_ID", "value": job_id},
        {"name": "AWS_BATCH_JOB_ATTEMPT", "value": str(p.attempt)},
        {"name": "AWS_BATCH_JQ_NAME", "value": p.queue},
        {"name": "AWS_BATCH_CE_NAME", "value": p.environment},
    ]
    return env


def _labels(p: Placement, extra: dict[str, str]) -> dict[str, str]:
    labels = {**extra, JOB_ID_LABEL: p.job_id, ATTEMPT_LABEL: str(p.attempt)}
    for key, value in ((BATCHJOB_LABEL, p.batchjob), (QUEUE_LABEL, p.queue), (ENVIRONMENT_LABEL, p.environment)):
        if len(value) <= 63:
            labels[key] = value
    return labels


def kubernetes_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    """The Kubernetes Job of one attempt (a multi-node job's: gang_job)."""
    if resolved.nodes is not None:
        return gang_job(resolved, p)
    manifest = _kubernetes_job(resolved, p)
    if not p.array_size:
        # Barge creates the attempt's one pod itself (single_pod): waiting for the Job controller
        # to create it took seconds per job while the job already held its quota.
        manifest["spec"]["managedBy"] = MANAGED_BY
        manifest["spec"].pop("ttlSecondsAfterFinished", None)  # the TTL controller never sees it finish
    return manifest


# The API server's generateName: at most 58 characters of the base, then 5 of this alphabet.
_GENERATED_NAME_BASE = 58
_GENERATED_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def single_pod_name(job_name: str, job_id: str, attempt: int) -> str:
    """The name the Job controller would give the attempt's pod (`<Job>-<5 characters>`), but
    deterministic: a restarted operator finds the pod it created and never creates a second one.
    The characters come from the BatchJob's uid, so a BatchJob recreated under the same name does
    not meet its predecessor's pod."""
    digest = hashlib.sha256(f"{job_id}/{attempt}".encode()).digest()
    suffix = "".join(_GENERATED_ALPHABET[b % len(_GENERATED_ALPHABET)] for b in digest[:5])
    return f"{job_name}-"[:_GENERATED_NAME_BASE] + suffix


def single_pod(job: dict[str, Any], job_uid: str, p: Placement) -> dict[str, Any]:
    """The pod of a one-pod job's attempt, from its Job (`kubernetes_job`, created with uid `job_uid`):
    the Job's template with the labels the Job controller gives its pods, owned by the Job, so that
    deleting the Job (terminate, timeout, clean-up) deletes the pod."""
    template = json_copy(job["spec"]["template"])
    job_name = job["metadata"]["name"]
    metadata = template.get("metadata") or {}
    labels = {**(metadata.get("labels") or {}), "batch.kubernetes.io/controller-uid": job_uid,
              "controller-uid": job_uid, "batch.kubernetes.io/job-name": job_name, "job-name": job_name}
    pod_metadata: dict[str, Any] = {
        "name": single_pod_name(job_name, p.job_id, p.attempt),
        "namespace": p.namespace,
        "labels": labels,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
                             "controller": True, "blockOwnerDeletion": True}],
    }
    if metadata.get("annotations"):
        pod_metadata["annotations"] = metadata["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_metadata, "spec": template["spec"]}


def _kubernetes_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    template = json_copy(resolved.template)
    labels = _labels(p, resolved.labels)
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    spec = template["spec"]
    spec["restartPolicy"] = "Never"
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **p.node_selector}
    spec["tolerations"] = (spec.get("tolerations") or []) + p.tolerations
    if p.affinity:
        spec["affinity"] = {**(spec.get("affinity") or {}), **p.affinity}
    injected = batch_env(p)
    for container in spec["containers"] + (spec.get("initContainers") or []):
        container["env"] = injected + (container.get("env") or [])
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": p.array_size or 1,
        "parallelism": p.parallelism,
        "podReplacementPolicy": "Failed",
        "template": template,
    }
    if p.array_size:
        job_spec["completionMode"] = "Indexed"
    if p.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = p.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": kubernetes_job_name(p.batchjob, p.attempt),
            "namespace": p.namespace,
            "labels": labels,
            # The placement, in full even when the label had to be dropped: a restarted operator
            # recovers it from here when the BatchJob's status was not written yet.
            "annotations": {ENVIRONMENT_ANNOTATION: p.environment},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "BatchJob", "name": p.batchjob,
                                 "uid": p.job_id, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": job_spec,
    }


def array_job_name(batchjob_name: str) -> str:
    if len(batchjob_name) <= 63:
        return batchjob_name
    digest = hashlib.sha256(batchjob_name.encode()).hexdigest()[:8]
    return f"{batchjob_name[:54].rstrip('-.')}-{digest}"


def array_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    """The one Kubernetes Job of an array. Barge manages it (spec.managedBy): the Job controller
    leaves it alone and Barge creates its pods, one per child attempt, as the quota allows."""
    manifest = _kubernetes_job(resolved, p)
    manifest["metadata"]["name"] = array_job_name(p.batchjob)
    manifest["metadata"]["labels"].pop(ATTEMPT_LABEL, None)
    spec = manifest["spec"]
    spec["managedBy"] = MANAGED_BY
    spec.pop("ttlSecondsAfterFinished", None)  # the TTL controller ignores Jobs it cannot see finish
    spec["template"]["metadata"]["labels"].pop(ATTEMPT_LABEL, None)
    return manifest


def array_child_pod(resolved: Resolved, p: Placement, job_name: str, job_uid: str, index: int,
                    attempt: int) -> dict[str, Any]:
    """Child `index`, attempt `attempt`: the array's pod template with the child's own values."""
    template = _kubernetes_job(resolved, p)["spec"]["template"]
    labels = {**template["metadata"]["labels"], ATTEMPT_LABEL: str(attempt), ARRAY_INDEX_LABEL: str(index),
              "batch.kubernetes.io/controller-uid": job_uid, "controller-uid": job_uid,
              "batch.kubernetes.io/job-name": job_name, "job-name": job_name,
              "batch.kubernetes.io/job-completion-index": str(index)}
    annotations = {**(template["metadata"].get("annotations") or {}), COMPLETION_INDEX_ANNOTATION: str(index)}
    child_values = {
        "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
        "AWS_BATCH_JOB_ID": f"{p.job_id}:{index}",
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
    }
    spec = template["spec"]
    for container in spec["containers"] + (spec.get("initContainers") or []):
        container["env"] = [{"name": e["name"], "value": child_values[e["name"]]} if e["name"] in child_values
                            else e for e in container["env"]]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job_name}-{index}-{attempt}",
            "namespace": p.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
    }


# --- multi-node parallel jobs ----------------------------------------------------------------

def gang_job(resolved: Resolved, p: Placement) -> dict[str, Any]:
    """A multi-node job's attempt: an Indexed Job of numNodes completions that Barge manages
    (spec.managedBy), so that each node may run its own range's template and the other nodes are
    created once the main node has an address (gang_node_pod). Deleting it stops every node."""
    assert resolved.nodes is not None
    manifest = _kubernetes_job(resolved, p)
    spec = manifest["spec"]
    spec["managedBy"] = MANAGED_BY
    spec["completionMode"] = "Indexed"
    spec["completions"] = spec["parallelism"] = int(resolved.nodes["numNodes"])
    spec.pop("ttlSecondsAfterFinished", None)  # Barge deletes it when the main node exits
    return manifest


def gang_node_pod(resolved: Resolved, p: Placement, job_name: str, job_uid: str, index: int,
                  main_address: str | None) -> dict[str, Any]:
    """Node `index` of the current attempt: its range's template, AWS's node variables, and (on the
    other nodes) the main node's address."""
    assert resolved.nodes is not None
    node = Resolved(gangs.node_template(resolved.nodes, index), resolved.request, resolved.retry_strategy,
                    resolved.timeout_seconds, resolved.labels)
    template = _kubernetes_job(node, p)["spec"]["template"]
    main = int(resolved.nodes["mainNode"])
    labels = {**template["metadata"]["labels"], NODE_INDEX_LABEL: str(index),
              "batch.kubernetes.io/controller-uid": job_uid, "controller-uid": job_uid,
              "batch.kubernetes.io/job-name": job_name, "job-name": job_name,
              "batch.kubernetes.io/job-completion-index": str(index)}
    annotations = {**(template["metadata"].get("annotations") or {}), COMPLETION_INDEX_ANNOTATION: str(index)}
    node_env = [
        {"name": "AWS_BATCH_JOB_NODE_INDEX", "value": str(index)},
        {"name": "AWS_BATCH_JOB_NUM_NODES", "value": str(resolved.nodes["numNodes"])},
        {"name": "AWS_BATCH_JOB_MAIN_NODE_INDEX", "value": str(main)},
    ]
    if index != main and main_address:
        node_env.append({"name": "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "value": main_address})
    spec = template["spec"]
    for container in spec["containers"] + (spec.get("initContainers") or []):
        env = [{"name": "AWS_BATCH_JOB_ID", "value": f"{p.job_id}#{index}"} if e["name"] == "AWS_BATCH_JOB_ID"
               else e for e in container["env"]]
        container["env"] = node_env + env
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": gang_pod_name(job_name, index),
            "namespace": p.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid,
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
    }


def gang_pod_name(job_name: str, index: int) -> str:
    """`<attempt's Job>-<node>`: deterministic (the Job's name carries the attempt)."""
    return f"{job_name}-{index}"
