"""The Grafana dashboard is valid JSON and every panel queries metrics the operator exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import barge.metrics  # noqa: F401 - registers the operator's metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "barge.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported() -> set[str]:
    names = set()
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
    return {n for n in names if n.startswith("barge_")}


def test_every_panel_queries_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = exported()
    assert dashboard["panels"], "a dashboard with panels"
    for panel in dashboard["panels"]:
        expressions = [t["expr"] for t in panel["targets"]]
        used = {m for e in expressions for m in re.findall(r"barge_[a-z_]+", e)}
        assert used, f"panel {panel['title']!r} queries no Barge metric"
        for metric in used:
            base = metric
            for suffix in SUFFIXES:
                base = base.removesuffix(suffix)
            assert metric in names or base in names, f"panel {panel['title']!r}: {metric} is not exported"


def test_dashboard_shows_depth_throughput_wait_and_quota() -> None:
    text = DASHBOARD.read_text()
    for metric in ("barge_jobs{", "barge_jobs_succeeded_total", "barge_job_wait_seconds_bucket", "barge_quota_used"):
        assert metric in text
