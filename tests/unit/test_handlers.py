"""kopf's registrations: Barge skips kopf's diff-base, which is only safe while nothing reads it, and
leaves the kinds that number in the hundred thousand to its own informer."""

from __future__ import annotations

import kopf

import barge.controller.handlers  # noqa: F401 - registers the handlers


def test_no_handler_needs_a_diff_base() -> None:
    registry = kopf.get_default_registry()
    changing = list(registry._changing.get_all_handlers())
    assert not changing, f"{changing}: on.create/update/delete/field handlers need kopf's diff-base; " \
        "remove NoDiffBase from handlers.startup first"


def test_kopf_watches_only_the_small_kinds() -> None:
    """kopf keeps about 2 KB per watched object for its lifetime: BatchJobs, pods and Jobs go through
    barge.controller.informer instead. Namespaces are few; their labels serve queues' namespaceSelector.
    Nodes are few too (the room on compute environments' nodes); the pods on them come through the informer."""
    registry = kopf.get_default_registry()
    watched = {handler.selector.any_name for handler in [*registry._watching.get_all_handlers(),
                                                        *registry._indexing.get_all_handlers()]}
    assert watched == {"computeenvironments", "jobqueues", "jobdefinitions", "schedulingpolicies", "namespaces",
                       "nodes"}
