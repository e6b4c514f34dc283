"""A compute environment whose node pool Kubernetes would refuse (stored before the schema's rules,
or past what CEL sees) is INVALID with a reason naming the field, and is never placed into."""

from __future__ import annotations

from typing import Any

import pytest

from barge.controller.nodepools import UNSERVED
from barge.controller.records import EnvironmentRecord
from barge.controller.store import Store
from barge.core.resources import Resources
from barge.core.scheduler import Queue, Runnable, Snapshot, schedule


def record(**resources: Any) -> EnvironmentRecord:
    spec = {"type": "UNMANAGED", "state": "ENABLED",
            "computeResources": {"maxvCpus": 8, "nodeSelector": {"barge.dev/pool": "cpu"}, **resources}}
    return EnvironmentRecord.from_body({"metadata": {"name": "ce", "uid": "u1", "generation": 1}, "spec": spec})


@pytest.mark.parametrize(("resources", "reason"), [
    ({"nodeSelector": {"bad key": "cpu"}}, "spec.computeResources.nodeSelector: key 'bad key' is not a label key"),
    ({"nodeSelector": {"a" * 254 + "/pool": "cpu"}}, "spec.computeResources.nodeSelector: key 'aaa"),
    ({"nodeSelector": {"pool": "bad value"}}, "spec.computeResources.nodeSelector[pool]: 'bad value' is not a label"),
    ({"nodeSelector": {"pool": "a" * 64}}, "spec.computeResources.nodeSelector[pool]: 'aaa"),
    ({"nodeSelector": ["pool"]}, "spec.computeResources.nodeSelector: must be a map"),
    ({"tolerations": [{"operator": "Exists"}, {"key": "a b", "operator": "Exists"}]},
     "spec.computeResources.tolerations[1].key: 'a b' is not a label key"),
    ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
     "spec.computeResources.tolerations[0].value: must be empty when operator is Exists"),
    ({"tolerations": [{"value": "v"}]}, "spec.computeResources.tolerations[0].operator: must be Exists when key"),
    ({"tolerations": [{"key": "k", "operator": "Within"}]},
     "spec.computeResources.tolerations[0].operator: 'Within' is not Exists or Equal"),
    ({"tolerations": [{"key": "k", "value": "x y"}]}, "spec.computeResources.tolerations[0].value: 'x y' is not"),
    ({"tolerations": [{"key": "k", "effect": "NoRun"}]}, "spec.computeResources.tolerations[0].effect: 'NoRun'"),
    ({"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
     "spec.computeResources.tolerations[0].tolerationSeconds: needs effect NoExecute"),
    ({"tolerations": ["k"]}, "spec.computeResources.tolerations[0]: must be an object"),
    ({"tolerations": {"key": "k"}}, "spec.computeResources.tolerations: must be a list"),
    ({"maxMemory": "lots", "nodeSelector": {"bad key": "x"}}, "spec.computeResources.maxMemory: invalid quantity"),
])
def test_an_unplaceable_pool_is_invalid_naming_the_field(resources: dict[str, Any], reason: str) -> None:
    environment = record(**resources)
    assert environment.invalid_reason is not None and environment.invalid_reason.startswith(reason), \
        environment.invalid_reason
    assert not environment.enabled and not environment.to_core().enabled


@pytest.mark.parametrize("resources", [
    {},
    {"nodeSelector": {"example.com/x_y.z-1": "", "k": "a" * 63}},
    {"tolerations": [{"operator": "Exists"}, {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                     {"key": "k", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30},
                     {"key": "k", "operator": "Equal", "value": ""}]},
    {"nodeSelector": None, "tolerations": None},
])
def test_a_good_pool_is_valid(resources: dict[str, Any]) -> None:
    environment = record(**resources)
    assert environment.invalid_reason is None
    assert environment.enabled


def test_an_invalid_environment_is_never_placed_into() -> None:
    invalid, valid = record(nodeSelector={"bad key": "cpu"}), record()
    valid.name = "good"
    job = Runnable("ns/j", "q", 0.0, Resources(1000, 0, 0))
    snapshot = Snapshot({"ce": invalid.to_core(), "good": valid.to_core()},
                        {"q": Queue("q", 1, ("ce", "good"))}, {}, [job])
    assert [(p.key, p.environment) for p in schedule(snapshot, 10.0).placements] == [("ns/j", "good")]

    alone = Snapshot({"ce": invalid.to_core()}, {"q": Queue("q", 1, ("ce",))}, {}, [job])
    decisions = schedule(alone, 10.0)
    assert decisions.placements == [] and "ns/j" in decisions.waiting


def test_a_managed_environment_is_invalid_only_where_karpenters_api_is_not_served() -> None:
    environment = EnvironmentRecord.from_body({"metadata": {"name": "ce", "uid": "u1"},
                                               "spec": {"type": "MANAGED", "computeResources": {"maxvCpus": 8}}})
    store = Store()
    unmanaged = EnvironmentRecord.from_body({"metadata": {"name": "un", "uid": "u2"},
                                             "spec": {"type": "UNMANAGED", "computeResources": {"maxvCpus": 8}}})
    store.capture({"computeenvironments": {"ce": [environment], "un": [unmanaged]}})
    served = store.environment("ce")
    assert served is not None and served.invalid_reason is None and served.to_core().enabled
    store.nodepools_unserved = UNSERVED
    unserved = store.environment("ce")
    assert unserved is not None and unserved.invalid_reason == UNSERVED and not unserved.to_core().enabled
    assert "Karpenter" in UNSERVED and "UNMANAGED" in UNSERVED
    assert [e.name for e in store.environments() if e.invalid_reason is None] == ["un"]  # UNMANAGED unaffected


def test_a_job_waiting_on_an_invalid_environment_is_told_it_is_invalid() -> None:
    invalid = record(nodeSelector={"bad key": "cpu"})
    job = Runnable("ns/j", "q", 0.0, Resources(1000, 0, 0))
    decisions = schedule(Snapshot({"ce": invalid.to_core()}, {"q": Queue("q", 1, ("ce",))}, {}, [job]), 10.0)
    assert decisions.waiting["ns/j"].reason.endswith("compute environment 'ce' is INVALID")


@pytest.mark.parametrize(("resources", "reason"), [
    ({"desiredvCpus": 4}, "spec.computeResources.desiredvCpus: 4 is above minvCpus 0"),
    ({"desiredvCpus": 6, "minvCpus": 4}, "spec.computeResources.desiredvCpus: 6 is above minvCpus 4"),
    ({"desiredvCpus": 4, "minvCpus": 4}, None),  # AWS's starting size, and what Barge keeps warm
    ({"desiredvCpus": 0}, None),
    ({"minvCpus": 8}, None),
    ({"type": "SPOT", "allocationStrategy": "SPOT_CAPACITY_OPTIMIZED", "instanceTypes": ["c5.large"]}, None),
])
def test_a_managed_environment_is_invalid_only_for_what_karpenter_cannot_do(
        resources: dict[str, Any], reason: str | None) -> None:
    environment = EnvironmentRecord.from_body({"metadata": {"name": "ce", "uid": "u1"}, "spec": {
        "type": "MANAGED", "computeResources": {"maxvCpus": 8, **resources}}})
    if reason is None:
        assert environment.invalid_reason is None
    else:
        assert environment.invalid_reason is not None and environment.invalid_reason.startswith(reason)
