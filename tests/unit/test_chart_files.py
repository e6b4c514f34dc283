"""The Helm chart ships copies of files the project keeps elsewhere; they must not drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from barge import __version__

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "barge"


def test_the_chart_ships_the_projects_dashboard() -> None:
    shipped = (CHART / "files" / "dashboards" / "barge.json").read_text()
    assert shipped == (ROOT / "dashboards" / "barge.json").read_text(), "copy dashboards/barge.json into the chart"


def test_the_chart_version_follows_the_operator() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def render(*values: str) -> list[dict[str, Any]]:
    import subprocess

    import pytest

    from barge.dev import build

    helm = build.binary("helm")
    if not helm.is_file():
        pytest.skip("helm is not installed (barge dev cluster up installs it)")
    args = [str(helm), "template", "t", str(CHART)] + [a for v in values for a in ("--set", v)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_the_aws_api_is_off_by_default_and_may_only_impersonate_the_listed_users() -> None:
    assert not [d for d in render() if "aws-api" in str(d["metadata"]["name"])]
    objects = {(d["kind"], d["metadata"]["name"]): d for d in render(
        "awsApi.enabled=true", "awsApi.credentialsSecret=creds", "awsApi.impersonate.users={alice}",
        "awsApi.impersonate.groups={batch}")}
    role = objects[("ClusterRole", "t-barge-aws-api")]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["alice"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"], "resourceNames": ["batch"]}]
    operator = objects[("Deployment", "t-barge")]["spec"]["selector"]["matchLabels"]
    pod_labels = objects[("Deployment", "t-barge-aws-api")]["spec"]["template"]["metadata"]["labels"]
    assert not all(pod_labels.get(k) == v for k, v in operator.items()), "the operator's selector picks the aws-api"
    assert objects[("Service", "t-barge-aws-api")]["spec"]["selector"] == pod_labels
