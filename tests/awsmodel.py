"""Checks of requests and responses against botocore's own `batch` service model (shipped in botocore).

botocore's ParamValidator checks types, required members and unknown members; enums are checked here
too. One allowance, as AWS itself answers: JobDetail's `startedAt` (required in the model) is absent
for a job that never started (queued, cancelled, failed on a dependency); AWS omits it the same way."""

from __future__ import annotations

import re
from typing import Any

from botocore.model import Shape
from botocore.session import get_session
from botocore.validate import ParamValidator

MODEL = get_session().get_service_model("batch")
_UNSTARTED = re.compile(r'^Missing required parameter in jobs\[(\d+)\]: "startedAt"$')


def _enum_problems(shape: Shape, value: Any, where: str) -> list[str]:
    if shape.type_name == "structure" and isinstance(value, dict):
        return [p for name, member in shape.members.items() if name in value
                for p in _enum_problems(member, value[name], f"{where}.{name}")]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _enum_problems(shape.member, item, f"{where}[{i}]")]
    if shape.type_name == "map" and isinstance(value, dict):
        return [p for k, v in value.items() for p in _enum_problems(shape.value, v, f"{where}.{k}")]
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        return [f"{where}: {value!r} is not one of {enum}"]
    return []


def _never_started(job: dict[str, Any]) -> bool:
    if job.get("status") in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING"):
        return True
    return job.get("status") in ("SUCCEEDED", "FAILED") and not any(
        a.get("startedAt") for a in job.get("attempts") or [])


def problems(operation: str, body: dict[str, Any], direction: str = "output") -> list[str]:
    model = MODEL.operation_model(operation)
    shape = model.output_shape if direction == "output" else model.input_shape
    if shape is None:
        return [] if not body else [f"{operation} has no {direction}, got {body}"]
    found = []
    for line in ParamValidator().validate(body, shape).generate_report().splitlines()[1:]:
        unstarted = _UNSTARTED.match(line.strip())
        if unstarted and _never_started(body["jobs"][int(unstarted.group(1))]):
            continue
        found.append(line.strip())
    return found + _enum_problems(shape, body, operation)


def assert_valid(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` with botocore's ResponseMetadata removed, after checking it against the model."""
    body = {k: v for k, v in body.items() if k != "ResponseMetadata"}
    found = problems(operation, body)
    assert not found, f"{operation}'s response does not match botocore's model: {found}\n{body}"
    return body
