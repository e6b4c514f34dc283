"""Bad input is rejected at `kubectl apply` with the field named (schema and CEL rules)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.barge_objects import batch_job, compute_environment, job_definition, job_queue
from tests.e2e.kube import Cluster


def managed(environment: dict[str, Any]) -> dict[str, Any]:
    environment["spec"]["type"] = "MANAGED"
    return environment


def rejected(cluster: Cluster, obj: dict[str, Any], namespace: str | None) -> str:
    result = cluster.apply([obj], namespace, check=False)
    assert result.returncode != 0, f"accepted: {obj}"
    return result.stderr


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda o: o["spec"]["overrides"].update(env=[{"name": "AWS_BATCH_JOB_ID", "value": "x"}]),
     "spec.overrides.env"),
    (lambda o: o["spec"].update(retryStrategy={"attempts": 11}), "spec.retryStrategy.attempts"),
    (lambda o: o["spec"].update(timeout={"attemptDurationSeconds": 30}), "spec.timeout.attemptDurationSeconds"),
    (lambda o: o["spec"].update(arrayProperties={"size": 1}), "spec.arrayProperties.size"),
    (lambda o: o["spec"].update(arrayProperties={"size": 100001}), "spec.arrayProperties.size"),
    (lambda o: o["spec"].pop("jobQueue"), "spec.jobQueue"),
    (lambda o: o["spec"].update(dependsOn=[{"jobName": "a", "condition": "Maybe"}]), "spec.dependsOn[0].condition"),
    (lambda o: o["spec"].update(dependsOn=[{"type": "SEQUENTIAL"}]), "SEQUENTIAL"),
    (lambda o: o["spec"].update(dependsOn=[{"jobName": f"j{i}"} for i in range(21)]), "spec.dependsOn"),
    (lambda o: o["spec"].update(dependsOn=[{"condition": "Failed"}]), "jobName or jobId is required"),
    (lambda o: o["spec"].update(dependsOn=[{"jobName": "a", "jobId": "b"}]), "jobName or jobId, not both"),
    (lambda o: o["spec"].update(retryStrategy={"attempts": 2, "evaluateOnExit": [{"action": "RETRY"}]}),
     "spec.retryStrategy.evaluateOnExit[0]"),
    (lambda o: o["spec"].update(unknownField=1), "unknownField"),
])
def test_bad_batchjob_is_rejected_naming_the_field(crds: Cluster, namespace: str, mutate: Any, field: str) -> None:
    job = batch_job("bad", "def", "queue", overrides={})
    mutate(job)
    assert field in rejected(crds, job, namespace)


def test_reserved_env_in_definition_template_is_rejected(crds: Cluster, namespace: str) -> None:
    definition = job_definition("bad")
    definition["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "AWS_BATCH_CE_NAME", "value": "x"}]
    message = rejected(crds, definition, namespace)
    assert "spec.template.spec.containers[0].env" in message and "AWS_BATCH" in message


@pytest.mark.parametrize(("obj", "field"), [
    (job_queue("bad-q", ["ce"], priority=-1), "spec.priority"),
    (job_queue("bad-q", ["ce"], state="PAUSED"), "spec.state"),
    (job_queue("bad-q", ["a", "a"]), "spec.computeEnvironmentOrder"),
    (job_queue("bad-q", ["ce"], jobStateTimeLimitActions=[
        {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "state": "RUNNABLE", "maxTimeSeconds": 10,
         "action": "CANCEL"}]), "spec.jobStateTimeLimitActions[0].maxTimeSeconds"),
    (compute_environment("bad-ce", -1), "spec.computeResources.maxvCpus"),
    (managed(compute_environment("bad-ce", 4, minvCpus=8)), "minvCpus must not exceed maxvCpus"),
    (compute_environment("bad-ce", 4, minvCpus=2), "spec.computeResources.minvCpus: Invalid value"),
    (compute_environment("bad-ce", 4, desiredvCpus=2), "spec.computeResources.desiredvCpus: Invalid value"),
    (compute_environment("bad-ce", 4, maxMemory="lots"), "spec.computeResources.maxMemory"),
    (compute_environment("bad-ce", 4, allocationStrategy="BEST_FIT"),
     "allocationStrategy applies only to MANAGED environments"),
    (managed(compute_environment("bad-ce", 4, allocationStrategy="SPOT_CAPACITY_OPTIMIZED")),
     "need computeResources.type SPOT"),
    (managed(compute_environment("bad-ce", 4, allocationStrategy="CHEAPEST")),
     "spec.computeResources.allocationStrategy"),
])
def test_bad_queue_or_environment_is_rejected_naming_the_field(crds: Cluster, obj: dict[str, Any], field: str) -> None:
    assert field in rejected(crds, obj, None)


def test_submitted_job_spec_is_immutable(crds: Cluster, namespace: str) -> None:
    crds.apply([batch_job("fixed", "def", "queue")], namespace)
    message = rejected(crds, batch_job("fixed", "def", "other-queue"), namespace)
    assert "spec.jobQueue is immutable" in message


def test_plain_and_sequential_dependencies_are_accepted(crds: Cluster, namespace: str) -> None:
    plain = [{"jobName": "a"}, {"jobName": "b", "condition": "Failed"}]
    crds.apply([batch_job("plain", "def", "queue", dependsOn=plain),
                batch_job("seq", "def", "queue", arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}]),
                batch_job("n2n", "def", "queue", arrayProperties={"size": 3},
                          dependsOn=[{"jobName": "seq", "type": "N_TO_N"}])], namespace)


def test_n_to_n_needs_an_array(crds: Cluster, namespace: str) -> None:
    message = rejected(crds, batch_job("bad", "def", "queue", dependsOn=[{"jobName": "a", "type": "N_TO_N"}]),
                       namespace)
    assert "N_TO_N needs spec.arrayProperties" in message


def main_container(definition: dict[str, Any]) -> dict[str, Any]:
    return definition["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("obj", "field", "words"), [
    (compute_environment("bad-ce", 4, nodeSelector={"barge.dev/pool": "cpu", "bad key": "x"}),
     "spec.computeResources.nodeSelector", "key 'bad key' is not a label key"),
    (compute_environment("bad-ce", 4, nodeSelector={"a" * 254 + "/pool": "x"}),
     "spec.computeResources.nodeSelector", "is not a label key"),
    (compute_environment("bad-ce", 4, nodeSelector={"barge.dev/pool": "cpu pool"}),
     "spec.computeResources.nodeSelector.barge.dev/pool", "cpu pool"),
    (compute_environment("bad-ce", 4, tolerations=[{"key": "a b", "operator": "Exists"}]),
     "spec.computeResources.tolerations[0].key", "a b"),
    (compute_environment("bad-ce", 4, tolerations=[{"key": "k", "operator": "Exists", "value": "v"}]),
     "spec.computeResources.tolerations[0].value", "value must be empty when operator is Exists"),
    (compute_environment("bad-ce", 4, tolerations=[{"value": "v"}]),
     "spec.computeResources.tolerations[0].operator", "operator must be Exists when key is empty"),
    (compute_environment("bad-ce", 4, tolerations=[{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
     "spec.computeResources.tolerations[0].tolerationSeconds", "tolerationSeconds needs effect NoExecute"),
])
def test_bad_node_pool_is_rejected_naming_the_field(crds: Cluster, obj: dict[str, Any], field: str,
                                                    words: str) -> None:
    message = rejected(crds, obj, None)
    assert f"{field}:" in message and words in message


MAIN = "spec.template.spec.containers[0]"


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda c: c.update(resources={"requests": {"cpu": "abc"}}), f"{MAIN}.resources.requests.cpu"),
    (lambda c: c.update(resources={"requests": {"cpu": "-1"}}), f"{MAIN}.resources.requests.cpu"),
    (lambda c: c.update(resources={"limits": {"memory": -1}}), f"{MAIN}.resources.limits.memory"),
    (lambda c: c.pop("image"), f"{MAIN}.image"),
    (lambda c: c.update(image=""), f"{MAIN}.image"),
    (lambda c: c.update(env=[{"name": "A=B", "value": "x"}]), f"{MAIN}.env[0].name"),
])
def test_bad_container_is_rejected_naming_the_field(crds: Cluster, namespace: str, mutate: Any, field: str) -> None:
    definition = job_definition("bad")
    mutate(main_container(definition))
    assert f"{field}:" in rejected(crds, definition, namespace)


@pytest.mark.parametrize(("spec", "field"), [
    ({"overrides": {"env": [{"name": "A=B", "value": "x"}]}}, "spec.overrides.env[0].name"),
    ({"overrides": {"resources": {"requests": {"cpu": "abc"}}}}, "spec.overrides.resources.requests.cpu"),
    ({"overrides": {"resources": {"limits": {"cpu": "-1"}}}}, "spec.overrides.resources.limits.cpu"),
    ({"tags": {"k" * 129: "v"}}, "spec.tags"),
    ({"tags": {"team": "v" * 257}}, "spec.tags.team"),
])
def test_bad_overrides_or_tags_are_rejected_naming_the_field(crds: Cluster, namespace: str, spec: dict[str, Any],
                                                             field: str) -> None:
    assert f"{field}:" in rejected(crds, batch_job("bad", "def", "queue", **spec), namespace)


def test_good_pools_containers_and_overrides_still_apply(crds: Cluster, namespace: str) -> None:
    name = f"{namespace}-good"
    tolerations = [{"operator": "Exists"}, {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                   {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}]
    environment = compute_environment(name, 4, nodeSelector={"barge.dev/pool": "cpu", "example.com/zone": ""},
                                      tolerations=tolerations)
    definition = job_definition("good", resources={"requests": {"cpu": 0.5, "memory": "1.5Gi"},
                                                   "limits": {"cpu": "500m", "memory": 2**31}})
    main_container(definition)["env"] = [{"name": "my var.1-x", "value": "x"}]
    main_container(definition)["workingDir"] = "/tmp"
    definition["spec"]["tags"] = {"k" * 128: "v" * 256}
    job = batch_job("good", "good", "queue", tags={"team": "render"},
                    overrides={"env": [{"name": "FRAME", "value": "7"}], "resources": {"requests": {"cpu": "250m"}}})
    try:
        crds.apply([environment])
        crds.apply([definition, job], namespace)
        stored = crds.custom.get_namespaced_custom_object("barge.dev", "v1alpha1", namespace, "jobdefinitions", "good")
        assert main_container(stored)["resources"]["requests"]["cpu"] == 0.5
        assert main_container(stored)["workingDir"] == "/tmp"  # fields beyond the checked ones pass through
    finally:
        crds.delete_cluster_object("computeenvironments", name)


def test_minvcpus_and_desiredvcpus_on_an_unmanaged_environment_say_why(crds: Cluster) -> None:
    message = rejected(crds, compute_environment("bad-ce", 4, minvCpus=2, desiredvCpus=2), None)
    assert "minvCpus applies only to MANAGED environments" in message
    assert "desiredvCpus applies only to MANAGED environments" in message


def test_an_environment_without_a_type_is_unmanaged(crds: Cluster) -> None:
    environment = compute_environment("untyped-ce", 4)
    del environment["spec"]["type"]
    crds.apply([environment], None)
    try:
        stored = crds.custom.get_cluster_custom_object("barge.dev", "v1alpha1", "computeenvironments", "untyped-ce")
        assert stored["spec"]["type"] == "UNMANAGED"
    finally:
        crds.kubectl("delete", "computeenvironment", "untyped-ce", "--wait=false", check=False)


def test_fair_share_rules_are_enforced_at_apply(crds: Cluster, namespace: str) -> None:
    policy = {"apiVersion": "barge.dev/v1alpha1", "kind": "SchedulingPolicy", "metadata": {"name": f"{namespace}-sp"},
              "spec": {"fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 1},
                                                                 {"shareIdentifier": "a", "weightFactor": 2}]}}}
    message = rejected(crds, policy, None)
    assert "spec.fairsharePolicy.shareDistribution[1]" in message and "Duplicate value" in message
    crds.apply([batch_job("array", "def", "queue", arrayProperties={"size": 10, "maxParallel": 2})], namespace)
    crds.apply([batch_job("array", "def", "queue", arrayProperties={"size": 10, "maxParallel": 5})], namespace)
    message = rejected(crds, batch_job("array", "def", "queue", arrayProperties={"size": 11, "maxParallel": 5}),
                       namespace)
    assert "spec.arrayProperties.size is immutable" in message
    message = rejected(crds, batch_job("array", "def", "queue", shareIdentifier="late"), namespace)
    assert "spec.shareIdentifier is immutable" in message


def _gang(**node_properties: Any) -> dict[str, Any]:
    definition = job_definition("gang")
    template = definition["spec"].pop("template")
    definition["spec"]["nodeProperties"] = {"numNodes": 2, "mainNode": 0,
                                            "nodeRangeProperties": [{"targetNodes": "0:", "template": template}],
                                            **node_properties}
    return definition


@pytest.mark.parametrize(("change", "words"), [
    (lambda d: d["spec"]["nodeProperties"].update(numNodes=0), "spec.nodeProperties.numNodes"),
    (lambda d: d["spec"]["nodeProperties"].update(numNodes=1001), "spec.nodeProperties.numNodes"),
    (lambda d: d["spec"]["nodeProperties"].update(mainNode=2), "mainNode must be less than numNodes"),
    (lambda d: d["spec"]["nodeProperties"]["nodeRangeProperties"][0].update(targetNodes="0-1"),
     "spec.nodeProperties.nodeRangeProperties[0].targetNodes"),
    (lambda d: d["spec"]["nodeProperties"].update(nodeRangeProperties=[]),
     "spec.nodeProperties.nodeRangeProperties"),
    (lambda d: d["spec"].update(template=d["spec"]["nodeProperties"]["nodeRangeProperties"][0]["template"]),
     "exactly one of spec.template"),
    (lambda d: d["spec"].pop("nodeProperties"), "exactly one of spec.template"),
])
def test_bad_multinode_definition_is_rejected_naming_the_field(crds: Cluster, namespace: str, change: Any,
                                                               words: str) -> None:
    definition = _gang()
    change(definition)
    assert words in rejected(crds, definition, namespace)


def test_node_overrides_are_checked_and_are_not_for_arrays(crds: Cluster, namespace: str) -> None:
    assert "spec.nodeOverrides.numNodes" in rejected(
        crds, batch_job("bad", "gang", "queue", nodeOverrides={"numNodes": 0}), namespace)
    assert "spec.nodeOverrides and spec.arrayProperties cannot be combined" in rejected(
        crds, batch_job("bad", "gang", "queue", nodeOverrides={"numNodes": 2}, arrayProperties={"size": 2}),
        namespace)
    assert crds.apply([_gang(), batch_job("good", "gang", "queue", nodeOverrides={"numNodes": 3})],
                      namespace).returncode == 0
