"""Label selectors as the API server matches them: a queue's namespaceSelector."""

from __future__ import annotations

from typing import Any

import pytest

from barge.core.selectors import describe, matches

TEAM_A = {"team": "a", "tier": "batch"}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    (None, TEAM_A, True),
    ({}, {}, True),
    ({"matchLabels": {"team": "a"}}, TEAM_A, True),
    ({"matchLabels": {"team": "b"}}, TEAM_A, False),
    ({"matchLabels": {"team": "a", "tier": "gpu"}}, TEAM_A, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch", "gpu"]}]}, TEAM_A, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]}, TEAM_A, False),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]}, TEAM_A, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]}, TEAM_A, True),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, TEAM_A, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, TEAM_A, True),
    ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, TEAM_A, False),
    ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, TEAM_A, True),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, TEAM_A, False),
    ({"matchLabels": {"team": "a"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]},
     TEAM_A, False),
])
def test_a_selector_selects_when_every_requirement_holds(
        selector: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert matches(selector, labels) is expected


def test_an_unknown_operator_is_an_error_not_a_match() -> None:
    with pytest.raises(ValueError, match="Near"):
        matches({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {"a": "1"})


def test_a_selector_is_described_as_kubectl_writes_it() -> None:
    selector = {"matchLabels": {"team": "a"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["gpu", "batch"]}, {"key": "legacy", "operator": "DoesNotExist"}]}
    assert describe(selector) == "team=a,tier in (batch,gpu),!legacy"
    assert describe({}) == "everything"
