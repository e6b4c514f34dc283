"""AWS names, ARNs and revisions, and the Kubernetes names Barge keeps them under. Pure.

AWS job and job-definition names allow upper case and '_' (up to 128 characters), Kubernetes names
do not: the Kubernetes name is the AWS name lowered, '_' made '-', cut, and followed by a short hash
of the AWS name when it had to change; the AWS name itself is kept in an annotation."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from barge.awsapi.errors import client_error
from barge.core.states import GROUP

AWS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_ANNOTATION = f"{GROUP}/aws-name"
DEFINITION_ARN_ANNOTATION = f"{GROUP}/aws-job-definition"
TAGS_ANNOTATION = f"{GROUP}/aws-tags"
FAMILY_LABEL = f"{GROUP}/job-definition-family"
REVISION_LABEL = f"{GROUP}/job-definition-revision"
STATUS_LABEL = f"{GROUP}/job-definition-status"
ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"
BASE_MAX = 40  # leaves room for "-<hash>-<revision>" and generateName's suffix within 63


def check_aws_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not AWS_NAME.match(value):
        raise client_error(f"{field}: {value!r} is not a valid name: up to 128 letters (uppercase and lowercase), "
                           "numbers, hyphens and underscores, starting with a letter or number")
    return value


def kube_base(name: str) -> str:
    """A Kubernetes-safe stem for an AWS name; distinct AWS names give distinct stems."""
    base = name.lower().replace("_", "-").strip("-")[:BASE_MAX].strip("-")
    if base == name:
        return base
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{base}-{digest}" if base else digest


def definition_object_name(name: str, revision: int) -> str:
    return f"{kube_base(name)}-{revision}"


def check_kube_name(value: object, field: str) -> str:
    """Queues and compute environments are cluster objects named as given: a Kubernetes name."""
    if not isinstance(value, str) or len(value) > 63 or not K8S_NAME.match(value):
        raise client_error(f"{field}: {value!r} must be a Kubernetes name here: up to 63 lowercase letters, "
                           "numbers and hyphens, starting and ending with a letter or number")
    return value


@dataclass(frozen=True)
class Arns:
    region: str
    account: str

    def _arn(self, resource: str) -> str:
        return f"arn:aws:batch:{self.region}:{self.account}:{resource}"

    def job(self, job_id: str) -> str:
        return self._arn(f"job/{job_id}")

    def queue(self, name: str) -> str:
        return self._arn(f"job-queue/{name}")

    def environment(self, name: str) -> str:
        return self._arn(f"compute-environment/{name}")

    def definition(self, name: str, revision: int) -> str:
        return self._arn(f"job-definition/{name}:{revision}")

    def scheduling_policy(self, name: str) -> str:
        return self._arn(f"scheduling-policy/{name}")


ARN = re.compile(r"^arn:aws[a-z-]*:batch:[^:]*:[^:]*:(job|job-queue|compute-environment|job-definition|"
                 r"scheduling-policy)/(.+)$")


def parse_arn(value: str) -> tuple[str, str] | None:
    """(resource type, rest) of a Batch ARN, or None when `value` is not one."""
    match = ARN.match(value)
    return (match.group(1), match.group(2)) if match else None


def name_of(value: object, kind: str, field: str) -> str:
    """A queue's or environment's name, given as a name or its ARN."""
    if not isinstance(value, str) or not value:
        raise client_error(f"{field}: required, a name or an ARN")
    parsed = parse_arn(value)
    if parsed is None:
        return value
    if parsed[0] != kind:
        raise client_error(f"{field}: {value!r} is not a {kind} ARN")
    return parsed[1]


@dataclass(frozen=True)
class DefinitionRef:
    name: str
    revision: int | None  # None: the latest ACTIVE revision


def parse_definition_ref(value: object, field: str = "jobDefinition") -> DefinitionRef:
    """`name`, `name:revision` or the ARN (whose revision is required)."""
    if not isinstance(value, str) or not value:
        raise client_error(f"{field}: required, a name, name:revision or ARN")
    parsed = parse_arn(value)
    text = value
    if parsed is not None:
        if parsed[0] != "job-definition":
            raise client_error(f"{field}: {value!r} is not a job-definition ARN")
        text = parsed[1]
    name, sep, revision = text.partition(":")
    check_aws_name(name, field)
    if not sep:
        if parsed is not None:
            raise client_error(f"{field}: an ARN must end with ':<revision>'")
        return DefinitionRef(name, None)
    if not revision.isdigit() or int(revision) < 1:
        raise client_error(f"{field}: revision {revision!r} is not a positive integer")
    return DefinitionRef(name, int(revision))


JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class JobRef:
    job_id: str
    index: int | None  # an array child's index


def parse_job_id(value: object, field: str = "jobId") -> JobRef:
    """`<jobId>` or an array child's `<jobId>:<index>`; a job ARN is taken as well."""
    if not isinstance(value, str) or not value:
        raise client_error(f"{field}: required")
    parsed = parse_arn(value)
    if parsed is not None:
        if parsed[0] != "job":
            raise client_error(f"{field}: {value!r} is not a job ARN")
        value = parsed[1]
    job_id, sep, index = value.partition(":")
    if not JOB_ID.match(job_id) or (sep and not index.isdigit()):
        raise client_error(f"{field}: {value!r} is not a job id (<jobId> or <jobId>:<array index>)")
    return JobRef(job_id, int(index) if sep else None)
