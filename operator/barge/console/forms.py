"""The submit form: its fields (labels as the contract names them), and turning what was entered into
a BatchJob, with every problem named next to its field. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from barge.core.states import API_VERSION

RESERVED_PREFIX = "AWS_BATCH"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[ -<>-~]+$")  # printable ASCII other than "=", as the schema says

# field id -> label; the first seven are the contract's.
LABELS = {
    "job-name": "Job name",
    "job-definition": "Job definition",
    "job-queue": "Job queue",
    "array-size": "Array size",
    "sequential": "Run children sequentially",
    "parameters": "Parameters",
    "environment": "Environment variables",
    "namespace": "Namespace",
    "vcpus": "vCPUs",
    "memory": "Memory (MiB)",
    "depends-on": "Dependencies",
    "attempts": "Retry attempts",
    "timeout": "Timeout (seconds per attempt)",
}


@dataclass
class Submission:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    body: dict[str, Any] | None = None


def _pairs(text: str, what: str) -> tuple[list[tuple[str, str]], str | None]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            return [], f"line {number}: expected NAME=VALUE, got '{line.strip()}' ({what})"
        pairs.append((name.strip(), value))
    return pairs, None


def env_problem(name: str) -> str | None:
    if name.upper().startswith(RESERVED_PREFIX):
        return f"'{name}': names starting with {RESERVED_PREFIX} are reserved for Barge (AWS Batch refuses them too)"
    if not ENV_NAME.match(name):
        return f"'{name}': an environment variable name is printable ASCII without '='"
    return None


def _integer(values: dict[str, str], errors: dict[str, str], name: str, low: int, high: int) -> int | None:
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        errors[name] = f"'{text}' is not a whole number"
        return None
    if not low <= number <= high:
        errors[name] = f"must be between {low} and {high}"
        return None
    return number


def _dependency(text: str) -> dict[str, str] | str:
    """name[:N_TO_N][:Succeeded|Failed|Finished]; a string is the problem."""
    parts = text.split(":")
    dependency = {"jobName": parts[0].strip()}
    if not NAME.match(dependency["jobName"]):
        return f"'{parts[0]}' is not a BatchJob name"
    for part in (p.strip() for p in parts[1:]):
        if part.upper() == "N_TO_N":
            dependency["type"] = "N_TO_N"
        elif part.capitalize() in ("Succeeded", "Failed", "Finished"):
            dependency["condition"] = part.capitalize()
        else:
            return f"'{text}': '{part}' is neither N_TO_N nor a condition (Succeeded, Failed, Finished)"
    return dependency


def submission(values: dict[str, str]) -> Submission:
    """The BatchJob the form describes, or the problems, keyed by field id."""
    result = Submission(values)
    errors = result.errors
    name = values.get("job-name", "").strip()
    if not name:
        errors["job-name"] = "a name is required"
    elif not NAME.match(name) or len(name) > 253:
        errors["job-name"] = "lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
    result.namespace = values.get("namespace", "").strip() or "default"
    for required in ("job-definition", "job-queue"):
        if not values.get(required, "").strip():
            errors[required] = f"choose a {LABELS[required].lower()}"
    spec: dict[str, Any] = {"jobDefinition": values.get("job-definition", "").strip(),
                            "jobQueue": values.get("job-queue", "").strip()}
    parameters, problem = _pairs(values.get("parameters", ""), "parameters")
    if problem:
        errors["parameters"] = problem
    elif parameters:
        spec["parameters"] = dict(parameters)
    overrides: dict[str, Any] = {}
    env, problem = _pairs(values.get("environment", ""), "environment variables")
    problem = problem or next((p for n, _ in env if (p := env_problem(n))), None)
    if problem:
        errors["environment"] = problem
    elif env:
        overrides["env"] = [{"name": n, "value": v} for n, v in env]
    vcpus = values.get("vcpus", "").strip()
    if vcpus:
        try:
            if not 0 < float(vcpus) <= 10000:
                raise ValueError
            overrides["vcpus"] = float(vcpus)
        except ValueError:
            errors["vcpus"] = f"'{vcpus}' is not a number of vCPUs above 0"
    memory = _integer(values, errors, "memory", 1, 10**9)
    if memory:
        overrides["memory"] = memory
    if overrides:
        spec["overrides"] = overrides
    size = _integer(values, errors, "array-size", 2, 100000)
    if size:
        spec["arrayProperties"] = {"size": size}
    dependencies: list[dict[str, str]] = []
    if values.get("sequential"):
        if size:
            dependencies.append({"type": "SEQUENTIAL"})
        elif "array-size" not in errors:
            errors["sequential"] = "running children sequentially needs an array size of 2 or more"
    for line in filter(None, (s.strip() for s in values.get("depends-on", "").splitlines())):
        parsed = _dependency(line)
        if isinstance(parsed, str):
            errors["depends-on"] = parsed
            break
        if parsed.get("type") == "N_TO_N" and not size:
            errors["depends-on"] = f"'{line}': N_TO_N needs an array size"
            break
        dependencies.append(parsed)
    if len(dependencies) > 20:
        errors["depends-on"] = "at most 20 dependencies"
    if dependencies:
        spec["dependsOn"] = dependencies
    attempts = _integer(values, errors, "attempts", 1, 10)
    if attempts:
        spec["retryStrategy"] = {"attempts": attempts}
    timeout = _integer(values, errors, "timeout", 60, 10**8)
    if timeout:
        spec["timeout"] = {"attemptDurationSeconds": timeout}
    if not errors:
        result.body = {"apiVersion": API_VERSION, "kind": "BatchJob",
                       "metadata": {"name": name, "namespace": result.namespace}, "spec": spec}
    return result


def yaml_submission(text: str, default_namespace: str) -> Submission:
    """A BatchJob pasted as YAML; the API server's schema checks the rest."""
    result = Submission({"yaml": text, "namespace": default_namespace})
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        result.errors["yaml"] = f"not YAML: {exc}"
        return result
    if not isinstance(body, dict) or body.get("kind") != "BatchJob":
        result.errors["yaml"] = "expected one object of kind BatchJob"
        return result
    body.setdefault("apiVersion", API_VERSION)
    metadata = body.setdefault("metadata", {})
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        result.errors["yaml"] = "metadata.name is required"
        return result
    for item in ((body.get("spec") or {}).get("overrides") or {}).get("env") or []:
        if isinstance(item, dict) and (problem := env_problem(str(item.get("name", "")))):
            result.errors["yaml"] = f"spec.overrides.env: {problem}"
            return result
    result.namespace = metadata.get("namespace") or default_namespace or "default"
    metadata["namespace"] = result.namespace
    result.body = body
    return result


def reference_problems(body: dict[str, Any], definitions: set[str], queues: set[str]) -> dict[str, str]:
    """What the job names that does not exist, by field id (definitions: those of the job's namespace).
    The operator would end such a job FAILED; the form says so before submitting."""
    spec, namespace = body["spec"], body["metadata"]["namespace"]
    problems = {}
    if spec.get("jobDefinition") not in definitions:
        known = ", ".join(sorted(definitions)[:10]) or "none"
        problems["job-definition"] = (f"no job definition '{spec.get('jobDefinition')}' in namespace '{namespace}' "
                                      f"(there: {known})")
    if spec.get("jobQueue") not in queues:
        problems["job-queue"] = f"no job queue '{spec.get('jobQueue')}'"
    return problems
