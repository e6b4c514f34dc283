"""Every field a user can set under spec is either read by the operator or refused at apply: a field
the schema accepts and the operator ignores is a silent lie to the user.

"Read" is judged from the operator's source (barge/core, barge/controller, barge/kube.py): the
field's name is used there as a key that is read (`x["name"]`, `x.get("name")`, `"name" in x`, or a
literal tuple of names a loop reads). Subtrees the operator hands whole to Kubernetes (the pod
template, the node pool's selector, tolerations and affinity, env overrides) count as read when
their root is. A field that may hold only one value (a one-value enum), or that a CEL rule refuses
outright (`!has(self.field)`), is accounted for without being read. The judgement is by name, so a
name read for one field also covers another field of the same name.

Fields accepted and ignored today are listed in KNOWN_UNREAD with the issue that will implement
them. The list can only shrink: a new unread field fails, and so does an entry whose field is now
read (or gone).
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from barge.api import crdgen

OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "barge"
SOURCES = sorted([*(OPERATOR / "core").rglob("*.py"), *(OPERATOR / "controller").rglob("*.py"),
                  OPERATOR / "kube.py"])

# Fields accepted and not read yet, each with the issue that implements it (none today).
KNOWN_UNREAD: dict[tuple[str, str], str] = {}

# Read whole and handed to Kubernetes, which reads the fields inside.
PASSED_THROUGH: dict[tuple[str, str], str] = {
    ("ComputeEnvironment", "spec.computeResources.nodeSelector"): "the pods' nodeSelector",
    ("ComputeEnvironment", "spec.computeResources.tolerations"): "the pods' tolerations",
    ("ComputeEnvironment", "spec.computeResources.affinity"): "the pods' affinity",
    ("JobDefinition", "spec.template"): "the Kubernetes Job's pod template",
    ("JobDefinition", "spec.nodeProperties.nodeRangeProperties.template"): "the pod template of the range's nodes",
    ("BatchJob", "spec.overrides.env"): "merged into the main container's env",
}


@cache
def read_names() -> frozenset[str]:
    """Names the operator's source reads as keys."""
    names: set[str] = set()

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [s for element in node.elts for s in strings(element)]
        return []

    for source in SOURCES:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                names.update(strings(node.slice))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("get", "pop", "setdefault") and node.args):
                names.update(strings(node.args[0]))
            elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                names.update(strings(node.left))
            elif isinstance(node, (ast.For, ast.comprehension)):
                names.update(strings(node.iter))
    return frozenset(names)


def leaves(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """(path, schema, parent object's schema) of every leaf field: objects with declared properties
    and lists of such objects are walked into; everything else (scalars, lists of scalars, maps,
    preserved objects) is a leaf."""
    for name, child in (schema.get("properties") or {}).items():
        child_path = f"{path}.{name}"
        items = child.get("items") if child.get("type") == "array" else None
        if child.get("properties"):
            yield from leaves(child, child_path)
        elif isinstance(items, Mapping) and items.get("properties"):
            yield from leaves(items, f"{child_path}[]")
        else:
            yield child_path, child, schema


def spec_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load(crdgen.render(kind))
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def name_of(path: str) -> str:
    return path.split(".")[-1].removesuffix("[]")


def refused_outright(name: str, schema: Mapping[str, Any], parent: Mapping[str, Any]) -> bool:
    if len(schema.get("enum") or []) == 1:
        return True
    return any(rule.get("rule", "").replace(" ", "") == f"!has(self.{name})"
               for rule in parent.get("x-kubernetes-validations") or [])


def unaccounted(kind: str, spec: Mapping[str, Any], reads: frozenset[str]) -> list[str]:
    """Leaf fields under spec that are neither read, passed through, refused, nor known unread."""
    passed = [path for k, path in PASSED_THROUGH if k == kind]
    missing = []
    for path, schema, parent in leaves(spec, "spec"):
        clean = path.replace("[]", "")
        if ((kind, clean) in KNOWN_UNREAD or name_of(path) in reads or refused_outright(name_of(path), schema, parent)
                or any(clean == root or clean.startswith(root + ".") for root in passed)):
            continue
        missing.append(clean)
    return missing


@pytest.mark.parametrize("kind", list(crdgen.KINDS))
def test_every_spec_field_is_read_or_refused(kind: str) -> None:
    missing = unaccounted(kind, spec_schema(kind), read_names())
    assert missing == [], (
        f"{kind}: {missing} accepted at apply but read nowhere in the operator. Implement them, refuse them "
        "with a CEL rule, or (only with an issue that will implement them) list them in KNOWN_UNREAD")


@cache
def all_leaf_paths() -> dict[tuple[str, str], str]:
    return {(kind, path.replace("[]", "")): name_of(path)
            for kind in crdgen.KINDS for path, _, _ in leaves(spec_schema(kind), "spec")}


def stale_known_unread(reads: frozenset[str],
                       known: dict[tuple[str, str], str] | None = None) -> list[str]:
    """KNOWN_UNREAD entries that are gone from the schema, or read now."""
    fields = all_leaf_paths()
    stale = []
    for kind, path in KNOWN_UNREAD if known is None else known:
        if (kind, path) not in fields:
            stale.append(f"{kind} {path} is gone")
            continue
        name = fields[(kind, path)]
        shared = [other for other, other_name in fields.items() if other_name == name and other != (kind, path)]
        if not shared and name in reads:  # a name other fields share (`type`) cannot tell which is read
            stale.append(f"{kind} {path} is read now")
    return stale


def test_known_unread_fields_are_still_unread_and_have_an_issue() -> None:
    assert stale_known_unread(read_names()) == [], "remove these from KNOWN_UNREAD"
    assert all("issue" in why for why in KNOWN_UNREAD.values())


def test_the_known_unread_list_can_only_shrink() -> None:
    pretend = {("BatchJob", "spec.schedulingPriorityOverride"): "issue 18", ("BatchJob", "spec.gone"): "issue 99"}
    assert stale_known_unread(read_names(), pretend) == [
        "BatchJob spec.schedulingPriorityOverride is read now", "BatchJob spec.gone is gone"]


@pytest.mark.parametrize(("kind", "path"), list(PASSED_THROUGH))
def test_passed_through_roots_are_read(kind: str, path: str) -> None:
    assert (kind, path) in all_leaf_paths() or any(
        k == kind and p.startswith(path + ".") for k, p in all_leaf_paths()), f"{kind} {path} is not a field"
    assert name_of(path) in read_names()


def test_a_new_unread_field_fails() -> None:
    spec = copy.deepcopy(spec_schema("ComputeEnvironment"))
    resources = spec["properties"]["computeResources"]
    resources["properties"]["spotBidPercentage"] = {"type": "integer"}
    resources["properties"]["tolerations"]["items"]["properties"]["weight"] = {"type": "integer"}
    assert unaccounted("ComputeEnvironment", spec, read_names()) == ["spec.computeResources.spotBidPercentage"]
    # A field refused outright is accounted for: nothing can be set that the operator ignores.
    resources["x-kubernetes-validations"].append({"rule": "!has(self.spotBidPercentage)", "message": "not yet"})
    assert unaccounted("ComputeEnvironment", spec, read_names()) == []


def test_reads_are_found_in_the_operator_source() -> None:
    reads = read_names()
    # subscripts and get() (maxvCpus), a loop over a literal tuple (overrides' command and args)
    assert {"maxvCpus", "jobQueue", "command", "args", "attemptDurationSeconds"} <= reads
    # names only written (the environment's status.vcpuUsage) are not reads
    assert "vcpuUsage" not in reads
