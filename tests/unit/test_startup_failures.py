"""A one-pod job whose container cannot start: its attempt ends after the grace period in AWS's
words, its quota is freed, the retry strategy decides; and the operator setting that sets the period."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import pytest

from barge.config import add_operator_arguments, settings_from_args
from barge.core import job as rules
from barge.core.lifecycle import PodObservation
from barge.core.resources import Resources
from barge.core.times import iso

NOW = 1_800_000_000.0
STUCK_SINCE = iso(NOW - 90)


@dataclass(frozen=True)
class Job:
    """A BatchJob as the rules read it (rules.JobView)."""
    status: dict[str, Any]
    spec: dict[str, Any] = field(default_factory=lambda: {"jobDefinition": "def", "jobQueue": "q"})
    name: str = "job-a"
    namespace: str = "team"
    created: str = iso(NOW - 3600)
    generation: int = 1
    uid: str = "uid-1"

    @property
    def state(self) -> str | None:
        return self.status.get("state")

    @property
    def queue(self) -> str:
        return "q"

    @property
    def attempt(self) -> int:
        return int(self.status.get("currentAttempt") or 1)

    @property
    def request(self) -> Resources:
        return Resources(1000, 0, 0)


def starting(attempts: int, cancel: bool = False) -> Job:
    spec = {"jobDefinition": "def", "jobQueue": "q", **({"cancel": {"reason": "enough"}} if cancel else {})}
    return Job(status={"state": "STARTING", "currentAttempt": 1, "computeEnvironment": "ce",
                       "kubernetesJob": "job-a-1", "resolved": {"retryStrategy": {"attempts": attempts}}}, spec=spec)


def pulling(since: str = STUCK_SINCE) -> PodObservation:
    return PodObservation(name="job-a-1-xyz", attempt=1, phase="Pending", node="kwok-cpu-0",
                          waiting_reason="ImagePullBackOff", waiting_message='Back-off pulling image "nosuch:1"',
                          waiting_since=since)


def after(job: Job, patch: dict[str, Any]) -> Job:
    return Job(status={**job.status, **{k: v for k, v in patch.items() if v is not None}}, spec=job.spec)


def test_the_last_attempt_fails_the_job_and_frees_its_quota() -> None:
    job = starting(attempts=1)
    assert rules.charge(job) == ("ce", Resources(1000, 0, 0))
    outcome = rules.advance(job, pulling(), None, NOW, startup_grace_seconds=60)
    assert outcome is not None and outcome.stop_pod
    patch = dict(rules.outcome_patch(job, outcome, NOW))
    assert patch["state"] == "FAILED" and patch["stoppedAt"] == iso(NOW)
    assert patch["statusReason"] == 'CannotPullContainerError: Back-off pulling image "nosuch:1"'
    assert patch["attempts"] == [{"stoppedAt": iso(NOW), "statusReason": patch["statusReason"],
                                  "reason": "ImagePullBackOff", "podName": "job-a-1-xyz", "nodeName": "kwok-cpu-0"}]
    assert rules.charge(after(job, patch)) is None


def test_an_attempt_left_sends_the_job_back_to_its_queue_for_the_next_attempt() -> None:
    job = starting(attempts=2)
    outcome = rules.advance(job, pulling(), None, NOW, startup_grace_seconds=60)
    assert outcome is not None
    patch = dict(rules.outcome_patch(job, outcome, NOW))
    assert (patch["state"], patch["currentAttempt"], patch["attemptCount"]) == ("RUNNABLE", 2, 1)
    assert patch["statusReason"] == (
        'Attempt 1 failed (CannotPullContainerError: Back-off pulling image "nosuch:1"); waiting to retry')
    assert rules.charge(after(job, patch)) is None


def test_cancel_during_starting_ends_the_job_at_its_startup_failure() -> None:
    outcome = rules.advance(starting(attempts=3, cancel=True), pulling(), None, NOW, startup_grace_seconds=60)
    assert outcome is not None and outcome.state == "FAILED"


@pytest.mark.parametrize("grace", [None, 120.0])
def test_the_job_keeps_starting_while_the_pod_may_still_start(grace: float | None) -> None:
    assert rules.advance(starting(attempts=1), pulling(), None, NOW, startup_grace_seconds=grace) is None


@pytest.mark.parametrize(("argv", "env", "expected"), [
    pytest.param([], {}, 60.0, id="default-a-minute"),
    pytest.param([], {"BARGE_STARTUP_FAILURE_SECONDS": "5"}, 5.0, id="environment"),
    pytest.param(["--startup-failure-seconds", "2.5"], {"BARGE_STARTUP_FAILURE_SECONDS": "5"}, 2.5,
                 id="flag-wins"),
])
def test_the_grace_period_is_an_operator_setting(argv: list[str], env: dict[str, str], expected: float,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BARGE_STARTUP_FAILURE_SECONDS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_operator_arguments(parser)
    assert settings_from_args(parser.parse_args(argv)).startup_failure_seconds == expected
