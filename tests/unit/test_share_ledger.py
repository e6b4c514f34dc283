"""The operator's fair-share ledger (controller/shares.py): usage continues from the policy's status
after a restart, each pass charges the interval with what ran at the pass before, and the status it
writes lists each share's weight in effect, usage, running vCPUs and waiting jobs, busiest first."""

from __future__ import annotations

import math
from typing import Any

import pytest

from barge.controller.records import PolicyRecord
from barge.controller.shares import ShareCounts, Shares, policy_status
from barge.core.times import iso

T0 = 1_800_000_000.0


def record(status: dict[str, Any] | None = None) -> PolicyRecord:
    return PolicyRecord.from_body({
        "metadata": {"name": "sp", "uid": "u", "generation": 2},
        "spec": {"fairsharePolicy": {"shareDecaySeconds": 600,
                                     "shareDistribution": [{"shareIdentifier": "team-*", "weightFactor": 0.5}]}},
        "status": status or {}})


def test_a_restarted_ledger_continues_from_the_status() -> None:
    written = record({"shares": [{"shareIdentifier": "a", "weightFactor": 1, "usage": 600.0}], "usageAt": iso(T0)})
    shares = Shares(None, None, lambda: T0)  # type: ignore[arg-type]
    usage = shares.usage(written, {}, T0 + 600)
    assert usage == pytest.approx({"a": 600.0 / math.e})


def test_each_pass_charges_what_ran_at_the_pass_before() -> None:
    shares = Shares(None, None, lambda: T0)  # type: ignore[arg-type]
    assert shares.usage(record(), {"a": 2000}, T0) == {"a": 0.0}
    # b started just now: it is charged from the next pass on; a ran 2 vCPUs for the 10 s
    usage = shares.usage(record(), {"a": 2000, "b": 1000}, T0 + 10)
    assert usage["a"] == pytest.approx(600 * 2 * (1 - math.exp(-10 / 600)))
    assert usage.get("b", 0.0) == 0.0
    assert shares.usage(record(), {}, T0 + 20)["b"] == pytest.approx(600 * (1 - math.exp(-10 / 600)))


def test_policy_status_lists_shares_busiest_first_with_their_weight_in_effect() -> None:
    status = policy_status(record(), {"team-x": 50.0, "team-y": 10.0, "old": 3.0},
                           ShareCounts({"team-x": 2000}, {"team-y": 4}), T0, T0 + 1)
    assert [s["shareIdentifier"] for s in status["shares"]] == ["team-x", "team-y", "old"]
    assert status["shares"][0] == {"shareIdentifier": "team-x", "weightFactor": 1.0, "usage": 50.0,
                                   "runningvCpus": 2.0, "runnableJobs": 0}
    assert status["activeShares"] == 2 and status["busiest"] == "team-x=50.0, team-y=10.0, old=3.0"
    assert status["usageAt"] == iso(T0) and status["observedGeneration"] == 2

