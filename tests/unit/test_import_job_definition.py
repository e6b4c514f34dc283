"""`barge import-job-definition`: AWS job-definition JSON to a JobDefinition manifest the schema accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from barge.api.models import JobDefinition
from barge.awsapi import mapping
from barge.awsapi.names import Arns
from barge.cli.main import main

pytestmark = pytest.mark.unit
AWS = {"jobDefinitionName": "render_frames", "type": "container", "parameters": {"frame": "0"},
       "containerProperties": {"image": "busybox", "command": ["render", "Ref::frame"],
                               "resourceRequirements": [{"type": "VCPU", "value": "2"},
                                                        {"type": "MEMORY", "value": "2048"}]},
       "retryStrategy": {"attempts": 3}, "timeout": {"attemptDurationSeconds": 600}, "tags": {"team": "a"}}


def run(tmp_path: Path, data: object, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "def.json"
    path.write_text(json.dumps(data))
    code = main(["import-job-definition", str(path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_registration_becomes_a_manifest_the_schema_accepts(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(tmp_path, AWS, "-n", "team-a", capsys=capsys)
    assert code == 0
    (manifest,) = yaml.safe_load_all(out)
    JobDefinition.model_validate(manifest)
    assert manifest["metadata"]["name"] == "render-frames" and manifest["metadata"]["namespace"] == "team-a"
    main_container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert main_container["args"] == ["render", "Ref::frame"]
    assert main_container["resources"]["requests"] == {"cpu": "2", "memory": "2048Mi"}
    assert manifest["spec"]["retryStrategy"] == {"attempts": 3} and manifest["spec"]["tags"] == {"team": "a"}


def test_describe_job_definitions_output_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    described = mapping.definition_to_aws(mapping.register_to_definition(AWS, 4), Arns("eu-west-1", "1" * 12))
    code, out, _ = run(tmp_path, {"jobDefinitions": [described]}, capsys=capsys)
    assert code == 0
    (manifest,) = yaml.safe_load_all(out)
    assert manifest["spec"]["template"] == mapping.register_to_definition(AWS, 1)["spec"]["template"]


def test_what_cannot_map_is_refused_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**AWS, "containerProperties": {**AWS["containerProperties"], "executionRoleArn": "arn:aws:iam::1:role/x"}}
    code, out, err = run(tmp_path, bad, capsys=capsys)
    assert (code, out) == (2, "")
    assert "containerProperties.executionRoleArn" in err
