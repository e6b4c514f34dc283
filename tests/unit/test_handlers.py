"""kopf's registrations: Barge skips kopf's diff-base, which is only safe while nothing reads it."""

from __future__ import annotations

import kopf

import barge.controller.handlers  # noqa: F401 - registers the handlers


def test_no_handler_needs_a_diff_base() -> None:
    registry = kopf.get_default_registry()
    changing = list(registry._changing.get_all_handlers())
    assert not changing, f"{changing}: on.create/update/delete/field handlers need kopf's diff-base; " \
        "remove NoDiffBase from handlers.startup first"
    assert len(list(registry._watching.get_all_handlers())) == 6
