"""Resolving a definition with parameters and overrides, and the Kubernetes Job built from it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from barge.core import manifests
from barge.core.resolve import SpecError, resolve
from barge.core.resources import Resources

DEFINITION: dict[str, Any] = {
    "parameters": {"frame": "1", "codec": "h264"},
    "template": {"spec": {"containers": [{
        "name": "main", "image": "busybox",
        "command": ["render", "--frame=Ref::frame", "Ref::codec", "Ref::unknown"],
        "env": [{"name": "MODE", "value": "fast"}],
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }]}},
    "retryStrategy": {"attempts": 3},
    "timeout": {"attemptDurationSeconds": 120},
}


def test_parameters_substitute_submitted_then_default_and_keep_unknown() -> None:
    resolved = resolve(DEFINITION, {"parameters": {"frame": "42"}})
    command = resolved.template["spec"]["containers"][0]["command"]
    assert command == ["render", "--frame=42", "h264", "Ref::unknown"]


def test_overrides_replace_command_merge_env_and_set_resources() -> None:
    resolved = resolve(DEFINITION, {"overrides": {
        "command": ["other"], "env": [{"name": "MODE", "value": "slow"}, {"name": "X", "value": "1"}],
        "vcpus": 2.5, "memory": 2048, "gpus": 1}})
    main = resolved.template["spec"]["containers"][0]
    assert main["command"] == ["other"]
    assert main["env"] == [{"name": "MODE", "value": "slow"}, {"name": "X", "value": "1"}]
    assert main["resources"]["requests"] == {"cpu": "2500m", "memory": "2048Mi", "nvidia.com/gpu": "1"}
    assert main["resources"]["limits"] == {"memory": "2048Mi", "nvidia.com/gpu": "1"}
    assert resolved.request == Resources(2500, 2048 * 2**20, 1)


def test_definition_is_not_mutated_and_job_settings_replace_definition_settings() -> None:
    before = repr(DEFINITION)
    job = {"retryStrategy": {"attempts": 5}, "timeout": {"attemptDurationSeconds": 60}}
    resolved = resolve(DEFINITION, job)
    assert repr(DEFINITION) == before
    assert resolved.retry_strategy["attempts"] == 5 and resolved.timeout_seconds == 60
    defaults = resolve(DEFINITION, {})
    assert defaults.retry_strategy["attempts"] == 3 and defaults.timeout_seconds == 120


def test_bad_quantity_names_the_field() -> None:
    with pytest.raises(SpecError, match="resources of the main container"):
        resolve(DEFINITION, {"overrides": {"resources": {"requests": {"cpu": "lots"}}}})


def _placement(**extra: Any) -> manifests.Placement:
    base: dict[str, Any] = dict(namespace="ns", batchjob="render-7", job_id="uid-1", attempt=2, queue="high",
                                environment="cpu-ce", node_selector={"barge.dev/pool": "cpu"},
                                tolerations=[{"key": "k", "operator": "Exists"}], affinity=None,
                                ttl_seconds_after_finished=300)
    return manifests.Placement(**(base | extra))


def test_kubernetes_job_is_owned_labelled_placed_and_carries_aws_env() -> None:
    manifest = manifests.kubernetes_job(resolve(DEFINITION, {}), _placement())
    assert manifest["metadata"]["name"] == "render-7-2"
    assert manifest["metadata"]["ownerReferences"][0] | {} == {
        "apiVersion": "barge.dev/v1alpha1", "kind": "BatchJob", "name": "render-7", "uid": "uid-1",
        "controller": True, "blockOwnerDeletion": True}
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"]["barge.dev/job-id"] == "uid-1"
    assert manifest["metadata"]["labels"]["barge.dev/job-id"] == "uid-1"
    assert pod["spec"]["nodeSelector"] == {"barge.dev/pool": "cpu"}
    assert pod["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod["spec"]["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_BATCH_JOB_ID"] == "uid-1" and env["AWS_BATCH_JOB_ATTEMPT"] == "2"
    assert env["AWS_BATCH_JQ_NAME"] == "high" and env["AWS_BATCH_CE_NAME"] == "cpu-ce"
    assert env["MODE"] == "fast"


def test_array_job_is_indexed_and_child_id_includes_the_index() -> None:
    manifest = manifests.kubernetes_job(resolve(DEFINITION, {}), _placement(array_size=10, parallelism=4))
    assert manifest["spec"]["completionMode"] == "Indexed"
    assert manifest["spec"]["completions"] == 10 and manifest["spec"]["parallelism"] == 4
    env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("AWS_BATCH_JOB_ARRAY_INDEX") < names.index("AWS_BATCH_JOB_ID")
    assert next(e for e in env if e["name"] == "AWS_BATCH_JOB_ID")["value"] == "uid-1:$(AWS_BATCH_JOB_ARRAY_INDEX)"


def test_job_names_are_deterministic_and_fit_a_label() -> None:
    long = "x" * 200
    assert manifests.kubernetes_job_name(long, 3) == manifests.kubernetes_job_name(long, 3)
    assert len(manifests.kubernetes_job_name(long, 10)) <= 63
    assert manifests.kubernetes_job_name(long, 1) != manifests.kubernetes_job_name("x" * 199 + "y", 1)


def test_array_job_is_managed_by_barge_and_child_pods_carry_their_own_values() -> None:
    resolved = resolve(DEFINITION, {})
    placement = _placement(array_size=1000)
    job = manifests.array_job(resolved, placement)
    assert job["spec"]["managedBy"] == "barge.dev/operator" and job["metadata"]["name"] == "render-7"
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 1000
    pod = manifests.array_child_pod(resolved, placement, "render-7", "job-uid", 500, 2)
    assert pod["metadata"]["name"] == "render-7-500-2"
    assert pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "500"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "job-uid"
    assert pod["metadata"]["labels"]["barge.dev/job-id"] == "uid-1"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_BATCH_JOB_ARRAY_INDEX"] == "500" and env["AWS_BATCH_JOB_ARRAY_SIZE"] == "1000"
    assert env["AWS_BATCH_JOB_ID"] == "uid-1:500" and env["AWS_BATCH_JOB_ATTEMPT"] == "2"


def test_propagated_tags_all_reach_the_pods_and_those_that_can_be_labels_are_labels() -> None:
    definition = {**DEFINITION, "propagateTags": True, "tags": {"team": "render", "cost center": "42"}}
    resolved = resolve(definition, {"tags": {"team": "vfx", "note": "not a label value", "app": "x"}})
    assert resolved.labels == {"team": "vfx", "app": "x"}  # the job's tag wins over the definition's
    annotation = resolved.template["metadata"]["annotations"]["barge.dev/tags"]
    assert json.loads(annotation) == {"team": "vfx", "cost center": "42", "note": "not a label value", "app": "x"}
    pod = manifests.kubernetes_job(resolved, _placement())["spec"]["template"]["metadata"]
    assert pod["labels"]["team"] == "vfx" and "cost center" not in pod["labels"]
    assert json.loads(pod["annotations"]["barge.dev/tags"])["cost center"] == "42"


def test_tags_stay_on_the_job_without_propagate_tags() -> None:
    resolved = resolve({**DEFINITION, "tags": {"team": "render"}}, {"tags": {"app": "x"}})
    assert resolved.labels == {} and "barge.dev/tags" not in (resolved.template.get("metadata") or {}).get(
        "annotations", {})


def test_one_pod_job_is_managed_by_barge_and_its_pod_is_the_templates_owned_by_the_job() -> None:
    resolved = resolve(DEFINITION, {})
    placement = _placement()
    job = manifests.kubernetes_job(resolved, placement)
    assert job["spec"]["managedBy"] == "barge.dev/operator"  # the Job controller leaves it to Barge
    assert "ttlSecondsAfterFinished" not in job["spec"]  # Barge deletes it after the TTL itself
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 0)
    pod = manifests.single_pod(job, "job-uid", placement)
    assert pod["metadata"]["namespace"] == "ns"
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "render-7-2",
                                                   "uid": "job-uid", "controller": True, "blockOwnerDeletion": True}]
    labels = pod["metadata"]["labels"]
    assert labels["barge.dev/job-id"] == "uid-1" and labels["barge.dev/attempt"] == "2"
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "render-7-2"
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == "job-uid"
    assert pod["spec"] == job["spec"]["template"]["spec"]  # the env, placement and restartPolicy of the Job's
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_BATCH_JOB_ID"] == "uid-1" and env["AWS_BATCH_JOB_ATTEMPT"] == "2"


GENERATED = re.compile(r"^[bcdfghjklmnpqrstvwxz2456789]{5}$")


@pytest.mark.parametrize("job_name", ["render-7-2", "x" * 63, "a-" * 30 + "b-1"])
def test_one_pod_jobs_pod_name_has_the_job_controllers_shape_and_is_deterministic(job_name: str) -> None:
    name = manifests.single_pod_name(job_name, "uid-1", 2)
    assert name == manifests.single_pod_name(job_name, "uid-1", 2)
    assert name.startswith(f"{job_name}-"[:58]) and len(name) == min(len(job_name) + 1, 58) + 5 <= 63
    assert GENERATED.match(name[-5:])
    assert manifests.single_pod_name(job_name, "uid-2", 2) != name  # a BatchJob recreated under the same name
    assert manifests.single_pod_name(job_name, "uid-1", 3) != name

