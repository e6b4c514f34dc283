"""Leader election: when a replica may take the lease, and what it does when the API refuses."""

from __future__ import annotations

import argparse
import copy
from typing import Any
from unittest import mock

import pytest
from kubernetes.client.rest import ApiException

from barge.controller.leader import LeaderElector, Record, may_take


def test_free_released_or_own_lease_may_be_taken_at_once() -> None:
    assert may_take(None, "me", 0, 15)
    assert may_take(Record(None, None, 0), "me", 0, 15)
    assert may_take(Record("me", "t1", 0), "me", 0, 15)


def test_someone_elses_lease_only_after_it_stood_still_for_the_lease_duration() -> None:
    held = Record("other", "t1", 3)
    assert not may_take(held, "me", 14.9, 15)
    assert may_take(held, "me", 15, 15)


class FakeLeases:
    """An in-memory Lease API with the apiserver's optimistic concurrency."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.version = 0

    def read_namespaced_lease(self, name: str, namespace: str) -> Any:
        if self.lease is None:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(self.lease)

    def create_namespaced_lease(self, namespace: str, body: Any) -> Any:
        if self.lease is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.lease = copy.deepcopy(body)
        return body

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any:
        if body.metadata.resource_version != self.lease.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.version += 1
        body.metadata.resource_version = str(self.version)
        self.lease = copy.deepcopy(body)
        return body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def electors(api: FakeLeases, clock: Clock) -> tuple[LeaderElector, LeaderElector]:
    return (LeaderElector(api, "ns", "lease", "a", lease_seconds=15, clock=clock),
            LeaderElector(api, "ns", "lease", "b", lease_seconds=15, clock=clock))


def test_standby_takes_over_only_after_the_leader_stops_renewing() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = electors(api, clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.now += 10
    assert a.try_acquire_or_renew()  # renewed: b's wait starts again when it sees the new record
    clock.now += 10
    assert not b.try_acquire_or_renew()
    clock.now += 14
    assert not b.try_acquire_or_renew()
    clock.now += 1.5
    assert b.try_acquire_or_renew()
    assert api.lease.spec.holder_identity == "b" and api.lease.spec.lease_transitions == 1
    assert not a.try_acquire_or_renew(), "the old leader must not take it back"


def test_released_lease_is_taken_at_once_and_a_stale_write_loses() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = electors(api, clock)
    assert a.try_acquire_or_renew()
    a.release()
    assert api.lease.spec.holder_identity is None
    stale = copy.deepcopy(api.lease)
    assert b.try_acquire_or_renew()
    stale.spec.holder_identity = "a"
    try:
        api.replace_namespaced_lease("lease", "ns", stale)
        raise AssertionError("a write from an old resourceVersion must conflict")
    except ApiException as exc:
        assert exc.status == 409


def test_api_errors_mean_not_leading_rather_than_a_crash() -> None:
    class Broken(FakeLeases):
        def read_namespaced_lease(self, name: str, namespace: str) -> Any:
            raise ApiException(status=500, reason="InternalError")

    elector = LeaderElector(Broken(), "ns", "lease", "a", clock=Clock())
    assert not elector.try_acquire_or_renew()


@pytest.mark.parametrize(("flags", "order"), [
    (["--leader-elect", "--metrics-when-leading"], ["lead", "metrics"]),
    (["--leader-elect"], ["metrics", "lead"]),
    (["--metrics-when-leading"], ["metrics"]),  # no election: this replica always leads
])
def test_metrics_wait_for_leadership_only_when_asked(monkeypatch: pytest.MonkeyPatch, flags: list[str],
                                                     order: list[str]) -> None:
    """Replicas sharing the host's network share its ports: the chart asks for /metrics from the leader only."""
    from barge.config import add_operator_arguments
    from barge.controller import main

    happened: list[str] = []
    monkeypatch.setattr(main, "serve_metrics", lambda *args: happened.append("metrics"))
    monkeypatch.setattr(main, "lead", lambda settings: happened.append("lead") or mock.Mock())
    monkeypatch.setattr(main.kopf, "run", lambda **kwargs: None)
    monkeypatch.setattr(main.handlers, "configure", lambda settings: None)
    parser = argparse.ArgumentParser()
    add_operator_arguments(parser)
    assert main.run_operator(parser.parse_args(flags)) == 0
    assert happened == order
