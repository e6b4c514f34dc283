"""The Helm chart ships copies of files the project keeps elsewhere; they must not drift."""

from __future__ import annotations

from pathlib import Path

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
