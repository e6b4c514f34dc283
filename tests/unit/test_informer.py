"""The informer's error paths, with the API answered in memory: an expired watch (410 Gone) is listed
again and followed from the new list's version; a failed watch is resumed from where it was."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from barge.controller.informer import Informer


class ScriptedKube:
    """Watches answer from a script of (events, version returned); lists return one fixed page."""

    def __init__(self, watches: list[Any]) -> None:
        self.watches = watches
        self.watched_from: list[str] = []
        self.lists = 0

    def list_all_blocking(self, what: str, namespace: str | None) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return [{"metadata": {"name": "listed"}}], "200"

    def watch_blocking(self, what: str, namespace: str | None, version: str, deliver: Any, stopped: Any) -> str:
        self.watched_from.append(version)
        if not self.watches:
            time.sleep(0.05)
            return version
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        events, reached = step
        deliver(events, reached)
        return reached


def run(kube: ScriptedKube, until: Any) -> tuple[list[Any], list[Any]]:
    events: list[Any] = []
    relists: list[Any] = []

    async def scenario() -> None:
        informer = Informer(kube, ("ns",), lambda *e: events.append(e), lambda *r: relists.append(r))  # type: ignore[arg-type]
        informer.follow("pods", {"ns": "100"})
        deadline = time.monotonic() + 10
        while not until() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        informer.stop()

    asyncio.run(scenario())
    return events, relists


def test_an_expired_watch_is_listed_again_and_followed_from_the_list() -> None:
    added = {"type": "ADDED", "object": {"metadata": {"name": "p"}}}
    kube = ScriptedKube([([added], "150"), ([], "")])  # the second watch expires (410 Gone)
    events, relists = run(kube, lambda: len(kube.watched_from) >= 3)
    assert events[0] == ("pods", "ADDED", {"metadata": {"name": "p"}})
    assert relists == [("pods", "ns", [{"metadata": {"name": "listed"}}])]
    assert kube.watched_from[:3] == ["100", "150", "200"]


def test_a_failed_watch_resumes_from_the_last_version_it_reached(monkeypatch: Any) -> None:
    monkeypatch.setattr("barge.controller.informer.RETRY_SECONDS", (0,))
    kube = ScriptedKube([([], "120"), ConnectionResetError("reset by peer")])
    run(kube, lambda: len(kube.watched_from) >= 3)
    assert kube.lists == 0
    assert kube.watched_from[:3] == ["100", "120", "120"]
