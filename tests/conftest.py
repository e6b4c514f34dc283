"""Markers by folder: tests/unit are `unit` (no cluster), tests/e2e are `e2e` (a real API server)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(HERE).parts
        if parts[0] == "unit":
            item.add_marker(pytest.mark.unit)
        elif parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)
            if parts[1] == "realnode":
                item.add_marker(pytest.mark.realnode)
