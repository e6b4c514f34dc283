"""The fault tier (`-m faults`): tests that break things on purpose (the operator killed at random
moments, the control plane restarted) and prove nothing is lost or done twice. Every random choice
comes from one seed, BARGE_FAULT_SEED, printed in the output and in every assertion message, so a
failing run replays with the same workload and the same schedule of faults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import OperatorProcess

HERE = Path(__file__).parent
DEFAULT_SEED = 17  # issue 17


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests in this folder are `faults` (and `e2e`, as everything under tests/e2e)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


def fault_seed() -> int:
    return int(os.environ.get("BARGE_FAULT_SEED") or DEFAULT_SEED)


def full_scale() -> bool:
    """BARGE_FAULT_SCALE=full: the long version (not run in CI)."""
    return os.environ.get("BARGE_FAULT_SCALE", "").lower() == "full"


@pytest.fixture
def process(operator_process: OperatorProcess | None) -> OperatorProcess:
    """The local operator process, to kill and start again."""
    if operator_process is None:
        pytest.skip("the operator is installed externally; the fault tests kill a local one")
    return operator_process
