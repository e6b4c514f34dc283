"""AWS shapes <-> Barge's kinds: names and ARNs, containerProperties and eksProperties to a pod
template and back, submissions, and the errors (ClientException naming the field) for what cannot map."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barge.awsapi import job_detail, mapping, pod_template
from barge.awsapi.errors import AwsError, client_error
from barge.awsapi.names import Arns, definition_object_name, kube_base, parse_definition_ref, parse_job_id
from barge.core.resolve import resolve
from tests.awsmodel import MODEL, problems

pytestmark = pytest.mark.unit
ARNS = Arns("eu-west-1", "123456789012")
JOB_ID = "4c59c97e-4a70-4a7c-8a4b-e7d9b9548bb1"


def refused(call: Any) -> str:
    with pytest.raises(AwsError) as caught:
        call()
    assert (caught.value.code, caught.value.status) == ("ClientException", 400)
    return caught.value.message


def test_client_exception_is_what_botocore_parses_from_the_model() -> None:
    error = client_error("jobQueue: job queue 'x' does not exist")
    shape = MODEL.shape_for("ClientException")
    assert shape.metadata["error"]["httpStatusCode"] == error.status == 400
    assert error.headers()["x-amzn-ErrorType"] == "ClientException"
    server = MODEL.shape_for("ServerException")
    assert server.metadata["error"]["httpStatusCode"] == 500


@pytest.mark.parametrize(("value", "name", "revision"), [
    ("report", "report", None), ("report:3", "report", 3),
    ("arn:aws:batch:eu-west-1:123456789012:job-definition/report:3", "report", 3),
])
def test_definition_references(value: str, name: str, revision: int | None) -> None:
    ref = parse_definition_ref(value)
    assert (ref.name, ref.revision) == (name, revision)


@pytest.mark.parametrize("value", ["report:0", "report:x", "arn:aws:batch:eu-west-1:1:job-definition/report",
                                   "arn:aws:batch:eu-west-1:1:job-queue/q", "bad name", ""])
def test_bad_definition_references_name_the_field(value: str) -> None:
    assert "jobDefinition" in refused(lambda: parse_definition_ref(value))


def test_job_ids_and_array_children() -> None:
    assert parse_job_id(f"{JOB_ID}:7").index == 7
    assert parse_job_id(ARNS.job(JOB_ID)).job_id == JOB_ID
    assert "jobId" in refused(lambda: parse_job_id("not-an-id"))


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True))
def test_every_aws_name_has_a_kubernetes_name_that_keeps_names_apart(name: str) -> None:
    obj_name = definition_object_name(name, 12)
    assert len(obj_name) <= 63 and obj_name == obj_name.lower() and "_" not in obj_name
    assert obj_name[0].isalnum() and obj_name[-1].isalnum()
    if name != name.lower():
        assert kube_base(name) != kube_base(name.lower())


CONTAINER = {
    "image": "busybox", "command": ["echo", "Ref::x"], "jobRoleArn": "arn:aws:iam::123456789012:role/reporter",
    "environment": [{"name": "A", "value": "1"}], "secrets": [{"name": "TOKEN", "valueFrom": "creds:token"}],
    "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "256"},
                             {"type": "GPU", "value": "1"}],
    "volumes": [{"name": "data", "host": {"sourcePath": "/data"}}],
    "mountPoints": [{"sourceVolume": "data", "containerPath": "/mnt", "readOnly": True}],
    "privileged": False, "readonlyRootFilesystem": True, "user": "1000",
}


def test_container_properties_become_the_pod_template_field_by_field() -> None:
    template = pod_template.container_properties_to_template(CONTAINER)
    spec = template["spec"]
    main = spec["containers"][0]
    assert main["args"] == ["echo", "Ref::x"] and "command" not in main
    assert main["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi", "nvidia.com/gpu": "1"},
                                 "limits": {"memory": "256Mi", "nvidia.com/gpu": "1"}}
    assert main["env"] == [{"name": "A", "value": "1"},
                           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    assert spec["serviceAccountName"] == "reporter"
    assert spec["volumes"] == [{"name": "data", "hostPath": {"path": "/data"}}]
    assert main["volumeMounts"] == [{"name": "data", "mountPath": "/mnt", "readOnly": True}]
    assert main["securityContext"] == {"privileged": False, "readOnlyRootFilesystem": True, "runAsUser": 1000}


def test_container_properties_survive_the_round_trip() -> None:
    back = pod_template.template_to_container_properties(pod_template.container_properties_to_template(CONTAINER))
    assert back == {**CONTAINER, "jobRoleArn": "reporter",
                    "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "256"},
                                             {"type": "GPU", "value": "1"}]}
    assert not problems("RegisterJobDefinition", {"jobDefinitionName": "x", "type": "container",
                                                  "containerProperties": back}, "input")


@pytest.mark.parametrize(("field", "value"), [
    ("logConfiguration", {"logDriver": "awslogs"}), ("executionRoleArn", "arn:aws:iam::1:role/x"),
    ("linuxParameters", {"initProcessEnabled": True}), ("ulimits", [{"name": "nofile"}]),
    ("fargatePlatformConfiguration", {"platformVersion": "LATEST"}),
])
def test_what_cannot_map_is_refused_naming_the_field(field: str, value: Any) -> None:
    message = refused(lambda: pod_template.container_properties_to_template({**CONTAINER, field: value}))
    assert f"containerProperties.{field}" in message


@pytest.mark.parametrize(("changed", "named"), [
    ({"secrets": [{"name": "T", "valueFrom": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}]}, "secrets[0].valueFrom"),
    ({"user": "nobody"}, "containerProperties.user"),
    ({"volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]},
     "volumes[0].efsVolumeConfiguration"),
    ({"resourceRequirements": [{"type": "MEMORY", "value": "lots"}]}, "resourceRequirements[0].value"),
    ({"image": None}, "containerProperties.image"),
])
def test_unmappable_values_name_the_field(changed: dict[str, Any], named: str) -> None:
    assert named in refused(lambda: pod_template.container_properties_to_template({**CONTAINER, **changed}))


def test_registration_is_one_labelled_revision_that_barge_resolves() -> None:
    body = mapping.register_to_definition({"jobDefinitionName": "Nightly_Report", "type": "container",
                                           "containerProperties": CONTAINER, "parameters": {"x": "hi"},
                                           "retryStrategy": {"attempts": 3, "evaluateOnExit": [
                                               {"onExitCode": "1", "action": "exit"}]},
                                           "timeout": {"attemptDurationSeconds": 90}}, 4)
    assert body["metadata"]["name"] == definition_object_name("Nightly_Report", 4)
    assert mapping.definition_identity(body) == ("Nightly_Report", 4, "ACTIVE")
    assert body["spec"]["retryStrategy"] == {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1", "action": "EXIT"}]}
    resolved = resolve(body["spec"], {"parameters": {}})
    assert resolved.template["spec"]["containers"][0]["args"] == ["echo", "hi"]
    shown = mapping.definition_to_aws(body, ARNS)
    assert shown["jobDefinitionArn"] == "arn:aws:batch:eu-west-1:123456789012:job-definition/Nightly_Report:4"
    assert not problems("DescribeJobDefinitions", {"jobDefinitions": [shown]})


@pytest.mark.parametrize(("request_", "named"), [
    ({"type": "multinode"}, "type"), ({"platformCapabilities": ["FARGATE"]}, "platformCapabilities"),
    ({"containerProperties": None}, "exactly one of containerProperties and eksProperties"),
    ({"ecsProperties": {"taskProperties": []}}, "ecsProperties"),
    ({"timeout": {"attemptDurationSeconds": 10}}, "timeout.attemptDurationSeconds"),
    ({"retryStrategy": {"attempts": 11}}, "retryStrategy.attempts"),
])
def test_bad_registrations_name_the_field(request_: dict[str, Any], named: str) -> None:
    base = {"jobDefinitionName": "d", "type": "container", "containerProperties": CONTAINER}
    assert named in refused(lambda: mapping.register_to_definition({**base, **request_}, 1))


def test_eks_properties_are_the_pod_template_and_back() -> None:
    eks = {"podProperties": {"serviceAccountName": "sa", "containers": [
        {"image": "busybox", "command": ["sleep"], "args": ["5"], "env": [{"name": "A", "value": "1"}],
         "resources": {"requests": {"cpu": "1"}}}], "metadata": {"labels": {"team": "a"}}}}
    template = pod_template.eks_properties_to_template(eks)
    assert template["spec"]["containers"][0]["name"] == "main"
    assert template["metadata"] == {"labels": {"team": "a"}}
    back = pod_template.template_to_eks_properties(template)
    assert back["podProperties"]["containers"][0]["args"] == ["5"]
    assert not problems("RegisterJobDefinition", {"jobDefinitionName": "x", "type": "container",
                                                  "eksProperties": back}, "input")
    assert "podProperties.containers[0].imagePullSecretsX" in refused(lambda: pod_template.eks_properties_to_template(
        {"podProperties": {"containers": [{"image": "b", "imagePullSecretsX": [1]}]}}))


def test_a_submission_is_a_batchjob_with_the_revision_it_resolved() -> None:
    job = mapping.submit_to_batchjob({
        "jobName": "My_Job", "jobQueue": ARNS.queue("q"), "jobDefinition": "d:2", "parameters": {"x": "1"},
        "containerOverrides": {"command": ["a"], "environment": [{"name": "E", "value": "v"}],
                               "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "GPU", "value": "1"}]},
        "arrayProperties": {"size": 5}, "retryStrategy": {"attempts": 2}, "timeout": {"attemptDurationSeconds": 60},
        "tags": {"t": "v"}, "schedulingPriorityOverride": 3}, "d-2", ARNS.definition("d", 2),
        [{"type": "SEQUENTIAL"}])
    spec = job["spec"]
    assert (spec["jobDefinition"], spec["jobQueue"]) == ("d-2", "q")
    assert spec["overrides"] == {"args": ["a"], "env": [{"name": "E", "value": "v"}], "vcpus": 2.0, "gpus": 1}
    assert spec["arrayProperties"] == {"size": 5} and spec["dependsOn"] == [{"type": "SEQUENTIAL"}]
    assert job["metadata"]["generateName"].startswith(kube_base("My_Job"))
    assert job_detail.job_name_of(job) == "My_Job"


@pytest.mark.parametrize(("request_", "named"), [
    ({"nodeOverrides": {"numNodes": 2}}, "nodeOverrides"),
    ({"containerOverrides": {"instanceType": "m5.large"}}, "containerOverrides.instanceType"),
    ({"arrayProperties": {"size": 1}}, "arrayProperties.size"),
    ({"propagateTags": True}, "propagateTags"),
    ({"eksPropertiesOverride": {"podProperties": {}}}, "eksPropertiesOverride"),
])
def test_bad_submissions_name_the_field(request_: dict[str, Any], named: str) -> None:
    base = {"jobName": "j", "jobQueue": "q", "jobDefinition": "d"}
    assert named in refused(lambda: mapping.submit_to_batchjob({**base, **request_}, "d-1", "arn", []))


def test_dependencies_by_id_and_sequential_as_aws_writes_them() -> None:
    assert mapping.dependency_request([{"jobId": JOB_ID}, {"type": "SEQUENTIAL"}], array=True) == [
        (JOB_ID, None), (None, "SEQUENTIAL")]
    assert "dependsOn[0].type" in refused(lambda: mapping.dependency_request([{"type": "N_TO_N", "jobId": JOB_ID}],
                                                                           array=False))
    assert "dependsOn[0].jobId" in refused(lambda: mapping.dependency_request([{}], array=False))


def batchjob(state: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "my-job-x7", "uid": JOB_ID, "creationTimestamp": "2026-11-30T10:00:00Z",
                         "annotations": {"barge.dev/aws-name": "My_Job",
                                         "barge.dev/aws-job-definition": ARNS.definition("d", 2)}},
            "spec": {"jobQueue": "q", "jobDefinition": "d-2", "arrayProperties": {"size": 4},
                     "dependsOn": [{"jobName": "before"}], "tags": {"a": "b"}},
            "status": {"jobId": JOB_ID, "state": state, "createdAt": "2026-11-30T10:00:00.250Z", **status}}


def test_a_batchjob_as_describe_jobs_answers_it() -> None:
    job = batchjob("SUCCEEDED", startedAt="2026-11-30T10:00:05Z", stoppedAt="2026-11-30T10:00:09Z",
                   arrayProperties={"size": 4, "statusSummary": {"SUCCEEDED": 3, "FAILED": 1},
                                    "succeededIndices": "0-1,3", "failedIndices": "2",
                                    "children": {"2": {"attempts": [{"exitCode": 3, "podName": "p",
                                                                     "startedAt": "2026-11-30T10:00:06Z",
                                                                     "stoppedAt": "2026-11-30T10:00:07Z"}]}}})
    detail = job_detail.batchjob_to_detail(job, ARNS, {"before": "id-of-before"})
    assert (detail["createdAt"], detail["startedAt"], detail["stoppedAt"]) == (
        1796032800250, 1796032805000, 1796032809000)
    assert detail["jobName"] == "My_Job" and detail["jobQueue"] == ARNS.queue("q")
    assert detail["dependsOn"] == [{"jobId": "id-of-before"}]
    assert detail["arrayProperties"]["statusSummary"] == {"SUBMITTED": 0, "PENDING": 0, "RUNNABLE": 0, "STARTING": 0,
                                                          "RUNNING": 0, "SUCCEEDED": 3, "FAILED": 1}
    child = job_detail.child_detail(job, 2, None, ARNS, {})
    assert (child["jobId"], child["status"], child["arrayProperties"]) == (f"{JOB_ID}:2", "FAILED", {"index": 2})
    assert child["attempts"][0]["container"] == {"exitCode": 3, "logStreamName": "p"}
    assert not problems("DescribeJobs", {"jobs": [detail, child]})
    summary = job_detail.batchjob_to_summary(job, ARNS)
    assert not problems("ListJobs", {"jobSummaryList": [summary]})


@pytest.mark.parametrize(("parent", "phase", "expected"), [
    ("PENDING", "Running", "RUNNING"), ("PENDING", "Pending", "STARTING"), ("SUBMITTED", None, "SUBMITTED"),
])
def test_an_unsettled_childs_state_comes_from_its_pod(parent: str, phase: str | None, expected: str) -> None:
    assert job_detail.child_state(batchjob(parent), 0, phase) == expected


def test_queues_and_environments_both_ways() -> None:
    spec = mapping.queue_spec({"jobQueueName": "q", "priority": 3, "computeEnvironmentOrder": [
        {"order": 1, "computeEnvironment": ARNS.environment("ce")}]}, create=True)
    assert spec == {"priority": 3, "state": "ENABLED", "computeEnvironmentOrder": [
        {"order": 1, "computeEnvironment": "ce"}]}
    shown = mapping.queue_to_aws({"metadata": {"name": "q"}, "spec": spec, "status": {"status": "VALID"}}, ARNS)
    assert not problems("DescribeJobQueues", {"jobQueues": [shown]})
    unmanaged = mapping.environment_spec({"computeEnvironmentName": "ce", "type": "UNMANAGED", "unmanagedvCpus": 8},
                                         create=True, kind="UNMANAGED")
    assert unmanaged == {"type": "UNMANAGED", "state": "ENABLED", "computeResources": {"maxvCpus": 8}}
    managed = mapping.environment_spec({"computeEnvironmentName": "ce", "type": "MANAGED", "computeResources": {
        "type": "EC2", "minvCpus": 0, "maxvCpus": 16}}, create=True, kind="MANAGED")
    assert managed["computeResources"] == {"type": "EC2", "minvCpus": 0, "maxvCpus": 16}
    spot = mapping.environment_spec({"computeEnvironmentName": "ce", "type": "MANAGED", "computeResources": {
        "type": "SPOT", "minvCpus": 4, "maxvCpus": 64, "desiredvCpus": 4, "instanceTypes": ["c5.large", "optimal"],
        "allocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED"}}, create=True, kind="MANAGED")
    assert spot["computeResources"] == {"type": "SPOT", "minvCpus": 4, "maxvCpus": 64, "desiredvCpus": 4,
                                        "instanceTypes": ["c5.large", "optimal"],
                                        "allocationStrategy": "SPOT_PRICE_CAPACITY_OPTIMIZED"}
    shown_spot = mapping.environment_to_aws({"metadata": {"name": "ce", "uid": "u"}, "spec": spot}, ARNS)
    assert shown_spot["computeResources"]["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    for spec_ in (unmanaged, managed, spot):
        shown = mapping.environment_to_aws({"metadata": {"name": "ce", "uid": "u"}, "spec": spec_}, ARNS)
        assert not problems("DescribeComputeEnvironments", {"computeEnvironments": [shown]})
    assert "computeResources.subnets" in refused(lambda: mapping.environment_spec(
        {"type": "MANAGED", "computeResources": {"maxvCpus": 1, "subnets": ["s"]}}, create=True, kind="MANAGED"))
    assert "computeResources.type 'FARGATE'" in refused(lambda: mapping.environment_spec(
        {"type": "MANAGED", "computeResources": {"maxvCpus": 1, "type": "FARGATE"}}, create=True, kind="MANAGED"))

