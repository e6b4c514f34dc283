"""MANAGED environments on Karpenter: the NodePool Barge owns for one, the placement that keeps its pods on
its nodes, and the vCPUs it reports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barge.controller.records import EnvironmentRecord, JobRecord, placement
from barge.core import nodepools as rules
from barge.core.manifests import kubernetes_job
from barge.core.resolve import Resolved
from barge.core.resources import Resources

KWOK = rules.NodeClassRef("karpenter.kwok.sh", "KWOKNodeClass", "default")


def pool(**resources: Any) -> dict[str, Any]:
    return rules.nodepool_manifest("ce", {"maxvCpus": 32, **resources}, KWOK)


@pytest.mark.parametrize(("resources", "requirements"), [
    ({}, [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]),
    ({"type": "EC2"}, [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]),
    ({"type": "SPOT"}, [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]),
    ({"type": "SPOT", "instanceTypes": ["c-4x-amd64-linux", "c-2x-amd64-linux"]},
     [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
      {"key": "node.kubernetes.io/instance-type", "operator": "In",
       "values": ["c-2x-amd64-linux", "c-4x-amd64-linux"]}]),
    ({"instanceTypes": ["optimal"]},
     [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}]),
])
def test_requirements_come_from_type_and_instance_types(resources: dict[str, Any],
                                                        requirements: list[dict[str, Any]]) -> None:
    linux = {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
    assert pool(**resources)["spec"]["template"]["spec"]["requirements"] == [linux, *requirements]


def test_the_nodepool_is_labelled_tainted_limited_and_consolidated() -> None:
    manifest = pool(nodeSelector={"team": "a"})
    assert manifest["apiVersion"] == "karpenter.sh/v1" and manifest["kind"] == "NodePool"
    assert manifest["metadata"]["name"] == "barge-ce"
    assert manifest["metadata"]["ownerReferences"] is None  # not garbage-collected under running jobs
    template = manifest["spec"]["template"]
    assert template["metadata"]["labels"] == {"team": "a", "barge.dev/compute-environment": "ce"}
    assert template["spec"]["taints"] == [{"key": "barge.dev/compute-environment", "value": "ce",
                                           "effect": "NoSchedule"}]
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass",
                                                "name": "default"}
    assert manifest["spec"]["limits"] == {"cpu": "32"}
    assert manifest["spec"]["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "30s"}
    assert manifest["metadata"]["annotations"] == {"barge.dev/allocation-strategy": "BEST_FIT_PROGRESSIVE"}
    spot = pool(type="SPOT", allocationStrategy="SPOT_CAPACITY_OPTIMIZED")
    assert spot["metadata"]["annotations"] == {"barge.dev/allocation-strategy": "SPOT_CAPACITY_OPTIMIZED"}


def test_a_changed_environment_changes_its_nodepool_and_an_unchanged_one_does_not() -> None:
    current = pool()
    served = {**current, "spec": {**current["spec"], "weight": 0,
                                  "disruption": {**current["spec"]["disruption"], "budgets": [{"nodes": "10%"}]}},
              "status": {"resources": {"cpu": "4"}}}
    assert not rules.differs(pool(), served)  # what the server adds is not a difference
    assert rules.differs(pool(maxvCpus=64), served)
    assert rules.differs(pool(type="SPOT"), served)
    assert rules.differs(pool(allocationStrategy="BEST_FIT"), served)
    assert rules.differs(pool(), None)
    owned = {**served, "metadata": {**served["metadata"], "ownerReferences": [{"kind": "ComputeEnvironment"}]}}
    assert rules.differs(pool(), owned)  # an owner an earlier Barge gave it is dropped


@pytest.mark.parametrize(("pools", "environments", "in_use", "retired"), [
    (["a", "b"], ["a", "b"], [], []),
    (["a", "b"], ["a"], [], ["b"]),  # its environment deleted, nothing on it
    (["a", "b"], ["a"], ["b"], []),  # deleted, but a job still runs there: kept until it is done
    (["a", "b"], [], ["a"], ["b"]),
])
def test_a_nodepool_goes_once_its_environment_is_gone_and_its_jobs_are_done(
        pools: list[str], environments: list[str], in_use: list[str], retired: list[str]) -> None:
    assert rules.retired(pools, environments, in_use) == retired


def test_only_the_environments_pods_tolerate_its_taint_and_select_its_nodes() -> None:
    job = JobRecord.from_body({"metadata": {"namespace": "ns", "name": "j", "uid": "u"},
                               "spec": {"jobQueue": "q"}, "status": {"attempts": []}})

    def pod_spec(environment_type: str) -> dict[str, Any]:
        environment = EnvironmentRecord.from_body({"metadata": {"name": "ce", "uid": "e"}, "spec": {
            "type": environment_type, "computeResources": {"maxvCpus": 8, "nodeSelector": {"team": "a"}}}})
        resolved = Resolved({"spec": {"containers": [{"name": "main", "image": "busybox"}]}}, Resources(), {}, None, {})
        spec: dict[str, Any] = kubernetes_job(resolved, placement(job, environment, None))["spec"]["template"]["spec"]
        return spec

    managed, unmanaged = pod_spec("MANAGED"), pod_spec("UNMANAGED")
    assert managed["nodeSelector"] == {"team": "a", "barge.dev/compute-environment": "ce"}
    assert {"key": "barge.dev/compute-environment", "operator": "Equal", "value": "ce",
            "effect": "NoSchedule"} in managed["tolerations"]
    assert unmanaged["nodeSelector"] == {"team": "a"} and not unmanaged.get("tolerations")


@pytest.mark.parametrize(("used_milli", "minimum", "maximum", "desired"), [
    (0, 0, 32, 0), (500, 0, 32, 1), (16000, 0, 32, 16), (40000, 0, 32, 32), (2000, 8, 32, 8), (0, 8, 8, 8),
])
def test_desired_vcpus_is_demand_between_min_and_max(used_milli: int, minimum: int, maximum: int,
                                                     desired: int) -> None:
    assert rules.desired_vcpus(used_milli, minimum, maximum) == desired


@given(st.integers(0, 10**7), st.integers(0, 10**4), st.integers(0, 10**4))
def test_desired_vcpus_never_leaves_min_max(used_milli: int, minimum: int, extra: int) -> None:
    maximum = minimum + extra
    assert minimum <= rules.desired_vcpus(used_milli, minimum, maximum) <= maximum


def node(environment: str | None, cpu: str, instance_cpu: str | None = None) -> dict[str, Any]:
    labels = {} if environment is None else {"barge.dev/compute-environment": environment}
    if instance_cpu is not None:
        labels["karpenter.kwok.sh/instance-cpu"] = instance_cpu
    return {"metadata": {"labels": labels}, "status": {"capacity": {"cpu": cpu}}}


def test_provisioned_counts_each_environments_nodes_by_instance_size() -> None:
    nodes = [node("a", "2", instance_cpu="4"), node("a", "1500m"), node("b", "8"), node(None, "64")]
    assert rules.provisioned(nodes) == {"a": (2, 6), "b": (1, 8)}


@pytest.mark.parametrize(("text", "ok"), [
    ("karpenter.kwok.sh/KWOKNodeClass/default", True), ("karpenter.k8s.aws/EC2NodeClass/default", True),
    ("EC2NodeClass/default", False), ("a//b", False), ("", False),
])
def test_the_node_class_setting_is_group_kind_name(text: str, ok: bool) -> None:
    if ok:
        assert "/".join(rules.parse_node_class(text).manifest().values()) == text
    else:
        with pytest.raises(ValueError, match="group/Kind/name"):
            rules.parse_node_class(text)


@pytest.mark.parametrize(("minimum", "pods"), [(0, (0, 0)), (1, (1, 1)), (4, (1, 4)), (8, (2, 4)), (10, (3, 4)),
                                               (13, (4, 4))])
def test_warm_capacity_is_split_into_small_placeholders(minimum: int, pods: tuple[int, int]) -> None:
    assert rules.warm_pods(minimum) == pods


@given(st.integers(1, 10_000))
def test_warm_placeholders_hold_at_least_min_vcpus_and_less_than_one_more_each(minimum: int) -> None:
    replicas, vcpus = rules.warm_pods(minimum)
    assert minimum <= replicas * vcpus < minimum + replicas and vcpus <= rules.WARM_POD_VCPUS


def test_warm_placeholders_sit_on_the_environments_nodes_at_a_preemptible_priority() -> None:
    assert rules.warm_deployment("ce", "uid-1", {"maxvCpus": 32, "minvCpus": 0}, "barge") is None
    deployment = rules.warm_deployment("ce", "uid-1", {"maxvCpus": 32, "minvCpus": 8}, "barge")
    assert deployment is not None
    assert deployment["metadata"]["namespace"] == "barge" and deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"barge.dev/compute-environment": "ce"}
    assert rules.toleration("ce") in pod["tolerations"]
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "4"}
    assert pod["priorityClassName"] == rules.warm_priority_class()["metadata"]["name"]
    assert rules.warm_priority_class()["value"] < 0  # below every job's pod: jobs preempt placeholders
    assert not rules.warm_differs(deployment, deployment)
    bigger = rules.warm_deployment("ce", "uid-1", {"maxvCpus": 32, "minvCpus": 16}, "barge")
    assert bigger is not None and rules.warm_differs(bigger, deployment) and rules.warm_differs(deployment, None)
