"""docs/api-reference.md is generated from the models; this fails when it is stale or a field has no meaning."""

from __future__ import annotations

from barge.api import crdgen, docgen


def test_committed_api_reference_matches_the_models() -> None:
    assert docgen.OUT.read_text() == docgen.render(), (
        f"{docgen.OUT} is stale: run `python -m barge.api.docgen` and commit the result")


def test_every_field_of_every_kind_has_a_meaning() -> None:
    assert docgen.missing_meanings() == [], "add a description in models.py or a line in docgen.MEANINGS"


def test_every_field_is_listed_with_its_type_and_default() -> None:
    text = docgen.render()
    for kind in crdgen.KINDS:
        assert f"## {kind}" in text
        for path, _node, _required in docgen.kind_fields(kind):
            assert f"| `{path}` |" in text
    assert "| `spec.overrides.vcpus` | number | - | > 0; <= 10000.0 |" in text
    assert "| `spec.retryStrategy.attempts` | integer | `1` | >= 1; <= 10 |" in text
    assert "| `spec.jobQueue` | string | required |" in text
