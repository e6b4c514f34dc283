"""What the generated CRD schemas refuse at `kubectl apply`, checked as the API server checks the
OpenAPI part (patterns, lengths, minimums, required fields): each bad object is refused at the field
it names, each good one passes. The CEL rules are proven on a real API server in
tests/e2e/test_validation.py; their label-key regex is checked here through the toleration key,
whose OpenAPI pattern is the same text."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from barge.api import crdgen, models

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@cache
def validator(kind: str) -> Draft4Validator:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return Draft4Validator(schema)


def refused(obj: dict[str, Any]) -> list[str]:
    """The fields the schema refuses, spelled as the API server spells them
    (`spec.template.spec.containers[0].image`)."""
    fields = []
    for error in validator(obj["kind"]).iter_errors(obj):
        path = ""
        for part in error.absolute_path:
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
        if error.validator == "required":
            missing = re.match(r"'([^']*)' is a required property", error.message)
            assert missing, error.message
            path = f"{path}.{missing[1]}" if path else missing[1]
        fields.append(path)
    return fields


def environment(**resources: Any) -> dict[str, Any]:
    return {"apiVersion": models.API_VERSION, "kind": "ComputeEnvironment", "metadata": {"name": "ce"},
            "spec": {"type": "UNMANAGED", "computeResources": {
                "maxvCpus": 4, "nodeSelector": {"barge.dev/pool": "cpu"}, **resources}}}


def definition(**container: Any) -> dict[str, Any]:
    main = {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1"}}, **container}
    return {"apiVersion": models.API_VERSION, "kind": "JobDefinition", "metadata": {"name": "def"},
            "spec": {"template": {"spec": {"containers": [{k: v for k, v in main.items() if v is not None}]}}}}


def batch_job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": models.API_VERSION, "kind": "BatchJob", "metadata": {"name": "job"},
            "spec": {"jobDefinition": "def", "jobQueue": "queue", **spec}}


def changed(obj: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    copied = copy.deepcopy(obj)
    change(copied)
    return copied


def cpu(value: Any, where: str = "requests") -> dict[str, Any]:
    return {"resources": {where: {"cpu": value}}}


MAIN = "spec.template.spec.containers[0]"
SELECTOR = "spec.computeResources.nodeSelector"
TOLERATION = "spec.computeResources.tolerations[0]"

BAD = [
    pytest.param(environment(nodeSelector={"pool": "bad value"}), f"{SELECTOR}.pool", id="selector-value-space"),
    pytest.param(environment(nodeSelector={"pool": "-cpu"}), f"{SELECTOR}.pool", id="selector-value-leading-dash"),
    pytest.param(environment(nodeSelector={"pool": "a" * 64}), f"{SELECTOR}.pool", id="selector-value-64-chars"),
    pytest.param(environment(tolerations=[{"key": "a b", "operator": "Exists"}]), f"{TOLERATION}.key",
                 id="toleration-key-space"),
    pytest.param(environment(tolerations=[{"key": "k", "value": "x y"}]), f"{TOLERATION}.value",
                 id="toleration-value-space"),
    pytest.param(environment(tolerations=[{"key": "k", "operator": "Maybe"}]), f"{TOLERATION}.operator",
                 id="toleration-operator"),
    pytest.param(environment(tolerations=[{"key": "k", "effect": "NoRun"}]), f"{TOLERATION}.effect",
                 id="toleration-effect"),
    pytest.param(environment(maxMemory="-1Gi"), "spec.computeResources.maxMemory", id="max-memory-negative"),
    pytest.param(environment(maxMemory=-1), "spec.computeResources.maxMemory", id="max-memory-negative-integer"),
    pytest.param(definition(**cpu("abc")), f"{MAIN}.resources.requests.cpu", id="cpu-abc"),
    pytest.param(definition(**cpu("-1")), f"{MAIN}.resources.requests.cpu", id="cpu-minus-one"),
    pytest.param(definition(**cpu(-1)), f"{MAIN}.resources.requests.cpu", id="cpu-minus-one-integer"),
    pytest.param(definition(**cpu(-0.5, "limits")), f"{MAIN}.resources.limits.cpu", id="cpu-negative-limit"),
    pytest.param(definition(**cpu("1.2.3")), f"{MAIN}.resources.requests.cpu", id="cpu-two-dots"),
    pytest.param(definition(**cpu("5 m")), f"{MAIN}.resources.requests.cpu", id="cpu-space"),
    pytest.param(definition(**cpu("1e")), f"{MAIN}.resources.requests.cpu", id="cpu-bare-e"),
    pytest.param(definition(resources={"limits": {"memory": "1GB"}}), f"{MAIN}.resources.limits.memory",
                 id="memory-GB"),
    pytest.param(definition(image=None), f"{MAIN}.image", id="image-missing"),
    pytest.param(definition(image=""), f"{MAIN}.image", id="image-empty"),
    pytest.param(definition(image=" busybox"), f"{MAIN}.image", id="image-leading-space"),
    pytest.param(definition(env=[{"name": "A=B", "value": "x"}]), f"{MAIN}.env[0].name", id="env-name-equals"),
    pytest.param(definition(env=[{"name": "", "value": "x"}]), f"{MAIN}.env[0].name", id="env-name-empty"),
    pytest.param(definition(env=[{"name": "caf\u00e9"}]), f"{MAIN}.env[0].name", id="env-name-not-ascii"),
    pytest.param(definition(env=[{"name": "A\tB"}]), f"{MAIN}.env[0].name", id="env-name-tab"),
    pytest.param(definition(name="Main"), f"{MAIN}.name", id="container-name-upper"),
    pytest.param(definition(name="main_1"), f"{MAIN}.name", id="container-name-underscore"),
    pytest.param(definition(name="a.b"), f"{MAIN}.name", id="container-name-dot"),
    pytest.param(changed(definition(), lambda d: d["spec"]["template"]["spec"].update(
        initContainers=[{"name": "init"}])), "spec.template.spec.initContainers[0].image", id="init-image-missing"),
    pytest.param(changed(definition(), lambda d: d["spec"]["template"]["spec"].update(
        initContainers=[{"name": "init", "image": "busybox", "resources": {"limits": {"memory": "lots"}}}])),
        "spec.template.spec.initContainers[0].resources.limits.memory", id="init-memory-lots"),
    pytest.param(changed(definition(), lambda d: d["spec"].update(tags={"team": "x" * 257})), "spec.tags.team",
                 id="definition-tag-value-257"),
    pytest.param(batch_job(overrides={"env": [{"name": "A=B", "value": "x"}]}), "spec.overrides.env[0].name",
                 id="overrides-env-name-equals"),
    pytest.param(batch_job(overrides={"resources": {"requests": {"cpu": "abc"}}}),
                 "spec.overrides.resources.requests.cpu", id="overrides-cpu-abc"),
    pytest.param(batch_job(overrides={"resources": {"limits": {"cpu": "-1"}}}),
                 "spec.overrides.resources.limits.cpu", id="overrides-cpu-minus-one"),
    pytest.param(batch_job(overrides={"resources": {"requests": {"memory": -5}}}),
                 "spec.overrides.resources.requests.memory", id="overrides-memory-negative-integer"),
    pytest.param(batch_job(tags={"team": "x" * 257}), "spec.tags.team", id="job-tag-value-257"),
]


@pytest.mark.parametrize(("obj", "field"), BAD)
def test_bad_object_is_refused_at_the_field(obj: dict[str, Any], field: str) -> None:
    assert set(refused(obj)) == {field}  # a value may break two rules of its field (length, pattern)


GOOD = [
    pytest.param(environment(), id="selector"),
    pytest.param(environment(nodeSelector={"pool": "", "example.com/x_y.z-1": "A_b.c-9", "k": "a" * 63}),
                 id="selector-empty-and-long-values"),
    pytest.param(environment(tolerations=[
        {"operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoExecute", "tolerationSeconds": 30},
        {"key": "dedicated", "value": ""}]), id="tolerations"),
    pytest.param(environment(maxMemory="64Gi"), id="max-memory"),
    pytest.param(definition(resources={"requests": {"cpu": "500m", "memory": "1.5Gi", "nvidia.com/gpu": 1},
                                       "limits": {"cpu": 0.5, "memory": "1e9", "ephemeral-storage": "+1G"},
                                       "claims": [{"name": "gpu"}]}), id="quantities-of-every-form"),
    pytest.param(definition(resources={"requests": {"cpu": ".5", "memory": "0"}}), id="fraction-and-zero"),
    pytest.param(definition(image="registry.local:5000/team/render@sha256:" + "a" * 64), id="image-by-digest"),
    pytest.param(definition(env=[{"name": "my var.1-x", "value": "x"}, {"name": "X", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]), id="env-names-printable-ascii"),
    pytest.param(definition(resources=None, workingDir="/tmp"), id="no-resources-other-fields-pass"),
    pytest.param(changed(definition(), lambda d: d["spec"].update(tags={"k" * 128: "v" * 256}, propagateTags=True)),
                 id="definition-tags-at-aws-limits"),
    pytest.param(batch_job(overrides={"env": [{"name": "X", "value": "1"}], "vcpus": 0.5,
                                      "resources": {"requests": {"cpu": "250m", "memory": 1024}}},
                           tags={"team": "a"}), id="job-overrides"),
]


@pytest.mark.parametrize("obj", GOOD)
def test_good_object_passes(obj: dict[str, Any]) -> None:
    assert refused(obj) == []


def test_the_examples_pass() -> None:
    objects = [o for path in sorted(EXAMPLES.glob("*.yaml")) for o in yaml.safe_load_all(path.read_text())
               if o and o.get("kind") in crdgen.KINDS]
    assert len(objects) >= 4
    for obj in objects:
        assert refused(obj) == [], obj["metadata"]["name"]


PREFIX_253 = ".".join(["a" * 63] * 3 + ["a" * 61])
LABEL_KEYS = [
    ("k", True), ("barge.dev/pool", True), ("nvidia.com/gpu", True), ("A_b.c-D", True), ("a" * 63, True),
    ("example.com/" + "a" * 63, True), (f"{PREFIX_253}/x", True),
    ("", False), ("bad key", False), ("-a", False), ("a-", False), ("a" * 64, False), ("Example.com/x", False),
    ("/x", False), ("a/", False), ("a/b/c", False), (f"a{PREFIX_253}/x", False), ("caf\u00e9", False),
]


@pytest.mark.parametrize(("key", "good"), LABEL_KEYS)
def test_label_keys_as_the_schema_and_the_operator_judge_them(key: str, good: bool) -> None:
    # The toleration key's OpenAPI pattern is LABEL_KEY_PATTERN, the regex of the nodeSelector's CEL
    # rule; the prefix's 253-character bound is CEL only (tested at apply in e2e).
    toleration = environment(tolerations=[{"key": key, "operator": "Exists"}])
    if len(key.split("/")[0]) <= models.LABEL_PREFIX_MAX:
        assert (refused(toleration) == []) == good, refused(toleration)
    assert (models.label_key_problem(key) is None) == good


def test_the_selector_key_rule_uses_the_label_key_pattern() -> None:
    schema = crdgen.crd("ComputeEnvironment")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    selector = schema["properties"]["spec"]["properties"]["computeResources"]["properties"]["nodeSelector"]
    [rule] = selector["x-kubernetes-validations"]
    assert f"k.matches('{models.LABEL_KEY_PATTERN}')" in rule["rule"]
    assert f"k.indexOf('/') <= {models.LABEL_PREFIX_MAX}" in rule["rule"]
    assert "self.filter(k, !(" in rule["messageExpression"]  # names the bad key


@pytest.mark.parametrize(("value", "good"), [
    ("", True), ("cpu", True), ("a" * 63, True), ("A_b.c-9", True),
    ("a" * 64, False), ("bad value", False), ("-cpu", False), ("cpu.", False), (7, False),
])
def test_label_values_as_the_schema_and_the_operator_judge_them(value: Any, good: bool) -> None:
    assert (refused(environment(nodeSelector={"pool": value})) == []) == good
    assert (models.label_value_problem(value) is None) == good


def policy(*shares: dict[str, Any], **fairshare: Any) -> dict[str, Any]:
    return {"apiVersion": models.API_VERSION, "kind": "SchedulingPolicy", "metadata": {"name": "sp"},
            "spec": {"fairsharePolicy": {"shareDistribution": list(shares), **fairshare}}}


SHARES = "spec.fairsharePolicy.shareDistribution[0]"


@pytest.mark.parametrize(("obj", "field"), [
    pytest.param(policy(shareDecaySeconds=-1), "spec.fairsharePolicy.shareDecaySeconds", id="decay-negative"),
    pytest.param(policy(shareDecaySeconds=604801), "spec.fairsharePolicy.shareDecaySeconds", id="decay-over-a-week"),
    pytest.param(policy(computeReservation=100), "spec.fairsharePolicy.computeReservation", id="reservation-100"),
    pytest.param(policy({"shareIdentifier": "a", "weightFactor": 0}), f"{SHARES}.weightFactor", id="weight-zero"),
    pytest.param(policy({"shareIdentifier": "a", "weightFactor": 1000}), f"{SHARES}.weightFactor",
                 id="weight-1000"),
    pytest.param(policy({"shareIdentifier": "a*b"}), f"{SHARES}.shareIdentifier", id="star-inside"),
    pytest.param(policy({"weightFactor": 1}), f"{SHARES}.shareIdentifier", id="identifier-missing"),
    pytest.param(batch_job(shareIdentifier="team-*"), "spec.shareIdentifier", id="job-share-with-star"),
    pytest.param(batch_job(schedulingPriorityOverride=10000), "spec.schedulingPriorityOverride",
                 id="priority-over-9999"),
    pytest.param(batch_job(arrayProperties={"size": 10, "maxParallel": 0}), "spec.arrayProperties.maxParallel",
                 id="max-parallel-zero"),
])
def test_bad_fair_share_input_is_refused_at_the_field(obj: dict[str, Any], field: str) -> None:
    assert set(refused(obj)) == {field}


def test_good_fair_share_input_passes() -> None:
    assert refused(policy({"shareIdentifier": "team-a*", "weightFactor": 0.0001}, {"shareIdentifier": "b"},
                          shareDecaySeconds=604800, computeReservation=99)) == []
    assert refused(batch_job(shareIdentifier="team-a1", schedulingPriorityOverride=9999,
                             arrayProperties={"size": 10, "maxParallel": 3})) == []
    queue = {"apiVersion": models.API_VERSION, "kind": "JobQueue", "metadata": {"name": "q"},
             "spec": {"computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
                      "schedulingPolicy": "sp", "maxRunningJobs": 1}}
    assert refused(queue) == []
    assert refused(changed(queue, lambda q: q["spec"].update(maxRunningJobs=0))) == ["spec.maxRunningJobs"]
