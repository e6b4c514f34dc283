"""`barge import-job-definition FILE`: an AWS job definition (RegisterJobDefinition's JSON, or what
describe-job-definitions prints) as a JobDefinition manifest, for kubectl apply or GitOps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from barge.awsapi import mapping
from barge.awsapi.errors import AwsError
from barge.awsapi.names import K8S_NAME, NAME_ANNOTATION, check_aws_name

# What describe-job-definitions adds to a registration: not part of the definition itself.
DESCRIBED_ONLY = ("jobDefinitionArn", "revision", "status", "containerOrchestrationType")


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "import-job-definition", help="turn an AWS job definition (JSON) into a JobDefinition manifest",
        description="Reads RegisterJobDefinition's JSON (as `aws batch register-job-definition "
        "--cli-input-json` takes it) or the output of `aws batch describe-job-definitions`, and prints one "
        "JobDefinition manifest per definition. What has no Kubernetes equivalent is refused, naming the field.",
        epilog="example: barge import-job-definition render.json | kubectl apply -f -")
    parser.add_argument("file", type=Path, help="the JSON file ('-' for standard input)")
    parser.add_argument("--name", help="the JobDefinition's name (default: the AWS name, lowercased, '_' as '-')")
    parser.add_argument("-n", "--namespace", help="namespace written into the manifests (default: none)")


def definitions_in(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("jobDefinitions"), list):
        return [{k: v for k, v in d.items() if k not in DESCRIBED_ONLY} for d in data["jobDefinitions"]]
    if isinstance(data, dict):
        return [data]
    raise ValueError("expected a JSON object: a job definition, or describe-job-definitions' output")


def manifest(definition: dict[str, Any], namespace: str | None, name: str | None = None) -> dict[str, Any]:
    """The definition as a JobDefinition named as a person would name it (render_frames: render-frames);
    through `barge aws-api` it is then revision 1 of that name."""
    aws_name = check_aws_name(definition.get("jobDefinitionName"), "jobDefinitionName")
    body = mapping.register_to_definition(definition, 1)
    metadata = body["metadata"]
    metadata["name"] = name or aws_name.lower().replace("_", "-")
    if not K8S_NAME.match(metadata["name"]) or len(metadata["name"]) > 253:
        raise ValueError(f"{metadata['name']!r} is not a Kubernetes name: give one with --name")
    del metadata["labels"]
    metadata["annotations"].pop(NAME_ANNOTATION)
    if namespace:
        metadata["namespace"] = namespace
    return body


def run(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        found = definitions_in(json.loads(text))
        if args.name and len(found) != 1:
            raise ValueError("--name needs a file with exactly one definition")
        manifests = [manifest(d, args.namespace, args.name) for d in found]
    except (OSError, ValueError) as exc:
        print(f"barge import-job-definition: {args.file}: {exc}", file=sys.stderr)
        return 2
    except AwsError as exc:
        print(f"barge import-job-definition: {args.file}: {exc.message}", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
    return 0
