"""A corpus of bad input drawn from the generated CRD schemas, seeded so a failing run replays.

Two halves, per kind:
- objects the schema allows, drawn by hypothesis-jsonschema from the kind's spec schema (every
  field, enum, bound and pattern exercised; most name queues and definitions that do not exist,
  ask for absurd resources or depend on jobs that will never come);
- each of those broken at one field in a way the schema forbids (wrong type, out of range, too
  long, not in the enum, not matching its pattern, an unknown field, a required field missing),
  confirmed invalid by the same schema checked locally, and remembered with the field broken so
  the test can require the API server's refusal to name it.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis_jsonschema import from_schema
from jsonschema import Draft4Validator

from barge.api import crdgen
from barge.core.states import API_VERSION

UNKNOWN_FIELD = "notAField"


@dataclass(frozen=True)
class Entry:
    kind: str
    body: dict[str, Any]
    broken_at: str | None  # the field broken on purpose, as the API server names it; None: schema-valid


def object_schema(kind: str) -> dict[str, Any]:
    return dict(crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _plain(schema: Any) -> Any:
    """The schema without Kubernetes' extensions (hypothesis-jsonschema knows JSON Schema only):
    int-or-string fields become strings, and objects with declared fields take no others."""
    if isinstance(schema, list):
        return [_plain(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("x-kubernetes-int-or-string"):
        return {"type": "string", "maxLength": 20}
    plain = {k: _plain(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        plain["additionalProperties"] = False  # a structural schema knows no other fields
    return plain


def draw_specs(kind: str, count: int, seed_value: int) -> list[dict[str, Any]]:
    """`count` specs the schema allows, the same ones for the same seed."""
    found: list[dict[str, Any]] = []
    spec_schema = _plain(object_schema(kind)["properties"]["spec"])

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(seed_value)
    @given(from_schema(spec_schema))
    def collect(spec: dict[str, Any]) -> None:
        found.append(spec)

    collect()
    return found[:count]


def _violations(schema: dict[str, Any], value: Any) -> Iterator[tuple[Any, str]]:
    """Values at one field that its schema forbids, each with what is wrong (for the message)."""
    kind = schema.get("type")
    if kind in ("integer", "number"):
        if "maximum" in schema:
            yield schema["maximum"] + 1, "above the maximum"
        if "minimum" in schema:
            yield schema["minimum"] - 1, "below the minimum"
        yield "not-a-number", "a string for a number"
    elif kind == "string":
        if "enum" in schema:
            yield "NOT_IN_ENUM", "not in the enum"
        if "maxLength" in schema:
            yield "x" * (schema["maxLength"] + 1), "too long"
        if "pattern" in schema and not re.search(schema["pattern"], "Bad Value!\n"):
            yield "Bad Value!\n", "not matching the pattern"
        yield 12345, "a number for a string"
    elif kind == "array":
        if "maxItems" in schema and isinstance(value, list) and value:
            yield value * (schema["maxItems"] // len(value) + 1), "too many items"
        yield "not-a-list", "a string for a list"
    elif kind == "object" and schema.get("properties"):
        yield "not-an-object", "a string for an object"


def _fields(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(API path, schema, value) of every field present in `value`, depth first."""
    if isinstance(value, dict) and schema.get("properties"):
        for name, child in schema["properties"].items():
            if name in value:
                child_path = f"{path}.{name}"
                yield child_path, child, value[name]
                yield from _fields(child, value[name], child_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _fields(schema["items"], item, f"{path}[{i}]")


def _set(body: dict[str, Any], path: str, new: Any, delete: bool = False) -> None:
    parts = re.findall(r"\.([^.\[]+)|\[(\d+)\]", "." + path)
    target: Any = body
    keys: list[Any] = [name or int(index) for name, index in parts]
    for key in keys[:-1]:
        target = target[key]
    if delete:
        del target[keys[-1]]
    else:
        target[keys[-1]] = new


def _breakages(kind: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every one-field breakage of `body`: (the field as the API server names it, the broken body)."""
    schema = object_schema(kind)
    out: list[tuple[str, dict[str, Any]]] = []
    spec_schema = schema["properties"]["spec"]
    fields = [("spec", spec_schema, body["spec"]), *_fields(spec_schema, body["spec"], "spec")]
    for path, field_schema, value in fields:
        if field_schema.get("x-kubernetes-preserve-unknown-fields") or field_schema.get("x-kubernetes-int-or-string"):
            continue
        if path != "spec":
            for bad, _ in _violations(field_schema, value):
                broken = copy.deepcopy(body)
                _set(broken, path, bad)
                out.append((path, broken))
        if isinstance(value, dict) and field_schema.get("properties"):
            broken = copy.deepcopy(body)
            _set(broken, f"{path}.{UNKNOWN_FIELD}", 1)
            out.append((f"{path}.{UNKNOWN_FIELD}", broken))
            for required in field_schema.get("required") or []:
                if required in value:
                    broken = copy.deepcopy(body)
                    _set(broken, f"{path}.{required}", None, delete=True)
                    out.append((f"{path}.{required}", broken))
    return out


def corpus(kind: str, count: int, seed_value: int, name_prefix: str,
           fix: Any = None) -> list[Entry]:
    """`count` schema-valid objects of `kind` and `count` broken ones (one field each), named
    `<prefix>-v<i>` and `<prefix>-b<i>`. `fix(rng, spec)` may adjust a drawn spec (e.g. point
    some at real queues) before it is used."""
    rng = random.Random(seed_value)
    validator = Draft4Validator(object_schema(kind))
    entries: list[Entry] = []
    for i, spec in enumerate(draw_specs(kind, count, seed_value)):
        if fix is not None:
            fix(rng, spec)
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": f"{name_prefix}-v{i}"}, "spec": spec}
        entries.append(Entry(kind, body, None))
        breakages = [(path, broken) for path, broken in _breakages(kind, body)
                     if any(True for _ in validator.iter_errors(broken))]
        if breakages:
            path, broken = rng.choice(breakages)
            broken["metadata"] = {"name": f"{name_prefix}-b{i}"}
            entries.append(Entry(kind, broken, path))
    return entries
