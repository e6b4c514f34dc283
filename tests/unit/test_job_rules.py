"""The per-job rules of core/job.py: what a reconcile does next, admission, dependencies, the end of
a job (fail, cancel, terminate, timeout), an attempt in flight, scheduling and the status stamp.
Pure code with a fixed clock: every rule takes `now` explicitly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from barge.core import job as rules
from barge.core.dependencies import Verdict
from barge.core.jobstatus import JobStatusPatch
from barge.core.lifecycle import Outcome, PodObservation
from barge.core.manifests import kubernetes_job_name
from barge.core.resources import Resources
from barge.core.scheduler import Waiting
from barge.core.states import (
    ACTIVE,
    CANCELLED_BY_USER,
    DEPENDENT_FAILED,
    FAILED,
    JOB_STATES,
    PENDING,
    RUNNABLE,
    RUNNING,
    STARTING,
    SUBMITTED,
    SUCCEEDED,
    TERMINAL,
    TERMINATED_BY_USER,
    TIMEOUT_REASON,
)
from barge.core.times import iso

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
NOW_ISO = "2027-01-15T08:00:00.000000Z"
OLD = iso(NOW - 3600)  # created an hour ago: a missing reference is final
YOUNG = iso(NOW - 5)  # created within REFERENCE_GRACE_SECONDS: a missing reference is looked at again
MiB = 2**20


@dataclass(frozen=True)
class Job:
    """A BatchJob as the rules read it (rules.JobView); the derived properties follow controller.records.JobRecord."""
    name: str = "job-a"
    namespace: str = "team"
    created: str = OLD
    generation: int = 1
    uid: str = "uid-1"
    spec: dict[str, Any] = field(default_factory=lambda: {"jobDefinition": "def", "jobQueue": "q"})
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str | None:
        return self.status.get("state")

    @property
    def queue(self) -> str:
        return str(self.spec.get("jobQueue", ""))

    @property
    def attempt(self) -> int:
        return int(self.status.get("currentAttempt") or 1)

    @property
    def request(self) -> Resources:
        raw = (self.status.get("resolved") or {}).get("request") or {}
        return Resources(int(raw.get("cpuMilli", 0)), int(raw.get("memory", 0)), int(raw.get("gpus", 0)))


@dataclass(frozen=True)
class Queue:
    name: str
    enabled: bool = True
    namespace_selector: dict[str, Any] | None = None
    scheduling_policy: str | None = None


def make(state: str | None = None, *, spec: dict[str, Any] | None = None, **status: Any) -> Job:
    """A job in `state` with `spec` merged over a plain submission and `status` fields."""
    full_status = dict(status)
    if state is not None:
        full_status["state"] = state
    return Job(spec={"jobDefinition": "def", "jobQueue": "q", **(spec or {})}, status=full_status)


def pod(name: str = "job-a-1-xyz", attempt: int = 1, phase: str = "Running", node: str | None = "node-1",
        running_since: str | None = "2027-01-15T07:59:00Z", exit_code: int | None = None,
        unschedulable: str | None = None) -> PodObservation:
    return PodObservation(name=name, attempt=attempt, phase=phase, node=node, running_since=running_since,
                          exit_code=exit_code, unschedulable=unschedulable)


CANCEL = {"cancel": {"reason": "no longer needed"}}
TERMINATE = {"terminate": {"reason": "stop it"}}
ARRAY = {"arrayProperties": {"size": 4}}
DEFINITION: dict[str, Any] = {"template": {"spec": {"containers": [
    {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}}}


# --- next_steps ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "spec", "held", "expected"), [
    pytest.param(SUCCEEDED, {}, False, (), id="succeeded-is-done"),
    pytest.param(FAILED, TERMINATE, False, (), id="failed-ignores-terminate"),
    pytest.param(FAILED, {**ARRAY, **CANCEL}, True, (), id="terminal-array-with-cancel-and-held"),
    # A held admission: the store shows the job RUNNABLE (Store.effective) before the admission is written.
    pytest.param(RUNNABLE, {}, True, (rules.NOTHING,), id="held-admission-written-by-the-scheduling-pass"),
    pytest.param(None, {}, True, (rules.NOTHING,), id="held-admission-unwritten-state"),
    pytest.param(RUNNABLE, CANCEL, True, (rules.FORGET_ADMISSION, rules.CANCEL), id="held-admission-cancelled"),
    pytest.param(RUNNABLE, TERMINATE, True, (rules.FORGET_ADMISSION, rules.TERMINATE), id="held-admission-terminated"),
    pytest.param(None, {**CANCEL, **TERMINATE}, True, (rules.FORGET_ADMISSION, rules.TERMINATE),
                 id="held-unwritten-terminate-wins"),
    pytest.param(RUNNING, {**ARRAY, **TERMINATE}, False, (rules.TERMINATE_ARRAY,), id="terminate-admitted-array"),
    pytest.param(PENDING, {**ARRAY, **TERMINATE}, False, (rules.TERMINATE_ARRAY,), id="terminate-pending-array"),
    pytest.param(None, {**ARRAY, **TERMINATE}, False, (rules.TERMINATE,), id="terminate-unadmitted-array"),
    pytest.param(SUBMITTED, {**ARRAY, **TERMINATE}, False, (rules.TERMINATE,), id="terminate-submitted-array"),
    pytest.param(RUNNING, TERMINATE, False, (rules.TERMINATE,), id="terminate-running-job"),
    pytest.param(RUNNING, {**TERMINATE, **CANCEL}, False, (rules.TERMINATE,), id="terminate-wins-over-cancel"),
    pytest.param(RUNNING, CANCEL, False, (rules.FOLLOW_ATTEMPT,), id="cancel-does-not-stop-running"),
    pytest.param(STARTING, CANCEL, False, (rules.FOLLOW_ATTEMPT,), id="cancel-does-not-stop-starting"),
    pytest.param(RUNNABLE, CANCEL, False, (rules.CANCEL,), id="cancel-runnable"),
    pytest.param(PENDING, CANCEL, False, (rules.CANCEL,), id="cancel-pending-one-pod-job"),
    pytest.param(None, CANCEL, False, (rules.CANCEL,), id="cancel-before-admission"),
    pytest.param(None, {**ARRAY, **CANCEL}, False, (rules.CANCEL,), id="cancel-unadmitted-array"),
    pytest.param(PENDING, {**ARRAY, **CANCEL}, False, (rules.ARRAY,), id="cancel-pending-array-goes-child-by-child"),
    pytest.param(None, {}, False, (rules.ADMIT,), id="no-state-admit"),
    pytest.param(SUBMITTED, {}, False, (rules.ADMIT,), id="submitted-admit"),
    pytest.param(SUBMITTED, ARRAY, False, (rules.ADMIT,), id="submitted-array-admit"),
    pytest.param(PENDING, ARRAY, False, (rules.ARRAY,), id="pending-array"),
    pytest.param(RUNNING, ARRAY, False, (rules.ARRAY,), id="running-array"),
    pytest.param(PENDING, {}, False, (rules.WAIT_FOR_DEPENDENCIES,), id="pending-one-pod-job"),
    pytest.param(STARTING, {}, False, (rules.FOLLOW_ATTEMPT,), id="starting"),
    pytest.param(RUNNING, {}, False, (rules.FOLLOW_ATTEMPT,), id="running"),
    pytest.param(RUNNABLE, {}, False, (rules.NOTHING,), id="runnable-written"),
])
def test_next_steps(state: str | None, spec: dict[str, Any], held: bool, expected: tuple[str, ...]) -> None:
    assert rules.next_steps(make(state, spec=spec), held) == expected


STEPS = {rules.NOTHING, rules.TERMINATE, rules.TERMINATE_ARRAY, rules.CANCEL, rules.ADMIT,
         rules.FORGET_ADMISSION, rules.ARRAY, rules.WAIT_FOR_DEPENDENCIES, rules.FOLLOW_ATTEMPT}


@settings(database=None, max_examples=200)
@given(state=st.sampled_from((None, *JOB_STATES)), array=st.booleans(), cancel=st.booleans(),
       terminate=st.booleans(), held=st.booleans())
def test_next_steps_properties(state: str | None, array: bool, cancel: bool, terminate: bool, held: bool) -> None:
    # Only a one-pod job admitted RUNNABLE is held, and only until it is written or placed.
    assume(not held or (state in (None, RUNNABLE) and not array))
    spec = {**(ARRAY if array else {}), **(CANCEL if cancel else {}), **(TERMINATE if terminate else {})}
    steps = rules.next_steps(make(state, spec=spec), held)
    assert set(steps) <= STEPS
    if state in TERMINAL:
        assert steps == ()
        return
    assert 1 <= len(steps) <= 2
    assert (rules.FORGET_ADMISSION in steps) == (held and (cancel or terminate)), "only a held admission is forgotten"
    if rules.FORGET_ADMISSION in steps:
        assert steps[0] == rules.FORGET_ADMISSION and steps[1] in (rules.CANCEL, rules.TERMINATE)
    if terminate:
        assert steps[-1] in (rules.TERMINATE, rules.TERMINATE_ARRAY), "terminate always stops the job"
    if rules.ADMIT in steps:
        assert state in (None, SUBMITTED) and not held
    if state in ACTIVE and not terminate and not array:
        assert steps == (rules.FOLLOW_ATTEMPT,), "an attempt in flight is followed, even when cancelled"


# --- admit --------------------------------------------------------------------------------------

QUEUES = [Queue("q"), Queue("other")]


def test_missing_queue_while_young_is_looked_at_again_and_says_submitted() -> None:
    admission = rules.admit(replace(make(), created=YOUNG), None, ["other"], DEFINITION, NOW)
    assert admission.look_again and not admission.held and admission.patch is not None
    assert admission.patch["state"] == SUBMITTED and admission.patch["jobId"] == "uid-1"
    assert admission.patch["statusReason"] == "Job queue 'q' does not exist (job queues: other); looking again"


def test_missing_definition_while_young_is_looked_at_again() -> None:
    admission = rules.admit(replace(make(), created=YOUNG), Queue("q"), ["q"], None, NOW)
    assert admission.look_again and admission.patch is not None
    assert admission.patch["statusReason"].startswith("Job definition 'def' does not exist")


def test_submitted_is_written_once_while_looking_again() -> None:
    first = rules.admit(replace(make(), created=YOUNG), None, ["other"], DEFINITION, NOW)
    assert first.patch is not None
    written = replace(make(), created=YOUNG, status={**first.patch})
    again = rules.admit(written, None, ["other"], DEFINITION, NOW + 1)
    assert again == rules.Admission(None, look_again=True)


@pytest.mark.parametrize(("created", "queue", "queue_names", "definition", "reason"), [
    pytest.param(OLD, None, ["zeta", "alpha"], DEFINITION,
                 "Job queue 'q' does not exist (job queues: alpha, zeta)", id="missing-queue-lists-known-queues"),
    pytest.param(OLD, None, [], DEFINITION, "Job queue 'q' does not exist (job queues: none)", id="no-queues-at-all"),
    pytest.param(iso(NOW - 10), None, [], DEFINITION, "Job queue 'q' does not exist (job queues: none)",
                 id="grace-ends-at-exactly-ten-seconds"),
    pytest.param("", None, ["other"], DEFINITION, "Job queue 'q' does not exist (job queues: other)",
                 id="no-creation-time-is-not-young"),
    pytest.param(OLD, Queue("q", enabled=False), ["q"], DEFINITION,
                 "Job queue 'q' is DISABLED and accepts no new jobs", id="disabled-queue"),
    pytest.param(YOUNG, Queue("q", enabled=False), ["q"], DEFINITION,
                 "Job queue 'q' is DISABLED and accepts no new jobs", id="disabled-queue-fails-even-when-young"),
    pytest.param(OLD, Queue("q"), ["q"], None, "Job definition 'def' does not exist in namespace 'team'",
                 id="missing-definition"),
    pytest.param(OLD, Queue("q"), ["q"],
                 {"template": {"spec": {"containers": [{"name": "m", "resources": {"requests": {"cpu": "lots"}}}]}}},
                 "Invalid job: resources of the main container: invalid quantity 'lots'", id="invalid-resources"),
    pytest.param(YOUNG, Queue("q"), ["q"], {"template": {"spec": {"containers": []}}},
                 "Invalid job: JobDefinition spec.template.spec.containers must have at least one container",
                 id="no-containers-fails-even-when-young"),
])
def test_admission_failures(created: str, queue: Queue | None, queue_names: list[str],
                            definition: dict[str, Any] | None, reason: str) -> None:
    admission = rules.admit(replace(make(), created=created), queue, queue_names, definition, NOW)
    assert admission == rules.Admission({
        "jobId": "uid-1", "createdAt": NOW_ISO, "jobQueue": "q", "attemptCount": 0, "currentAttempt": 1,
        "state": FAILED, "statusReason": reason, "stoppedAt": NOW_ISO}, held=False)


def test_plain_job_is_admitted_runnable_and_held_for_the_scheduling_pass() -> None:
    admission = rules.admit(make(), Queue("q"), ["q"], DEFINITION, NOW)
    assert admission.held is True
    assert admission.patch == {
        "jobId": "uid-1", "createdAt": NOW_ISO, "jobQueue": "q", "attemptCount": 0, "currentAttempt": 1,
        "state": RUNNABLE, "queuedAt": NOW,
        "statusReason": "Waiting in job queue 'q' for a scheduling pass",
        "resolved": {"template": DEFINITION["template"], "retryStrategy": {"attempts": 1, "evaluateOnExit": []},
                     "timeoutSeconds": None, "labels": {},
                     "request": {"cpuMilli": 500, "memory": 256 * MiB, "gpus": 0}, "schedulingPriority": 0},
    }


def test_admission_resolves_overrides_retry_and_timeout() -> None:
    job = make(spec={"overrides": {"vcpus": 2, "memory": 1024}, "retryStrategy": {"attempts": 3},
                     "timeout": {"attemptDurationSeconds": 120}})
    patch = rules.admit(job, Queue("q"), ["q"], DEFINITION, NOW).patch
    assert patch is not None
    resolved = patch["resolved"]
    assert resolved["request"] == {"cpuMilli": 2000, "memory": 1024 * MiB, "gpus": 0}
    assert resolved["retryStrategy"] == {"attempts": 3, "evaluateOnExit": []}
    assert resolved["timeoutSeconds"] == 120


def test_job_with_dependencies_is_admitted_pending() -> None:
    job = make(spec={"dependsOn": [{"jobName": "first"}]})
    admission = rules.admit(job, Queue("q"), ["q"], DEFINITION, NOW)
    assert admission.patch is not None and admission.held is False
    assert admission.patch["state"] == PENDING
    assert admission.patch["statusReason"] == "Checking dependencies"
    assert admission.patch["queuedAt"] == NOW
    assert "arrayProperties" not in admission.patch


def test_array_is_admitted_pending_with_every_child_pending() -> None:
    admission = rules.admit(make(spec=ARRAY), Queue("q"), ["q"], DEFINITION, NOW)
    assert admission.patch is not None and admission.held is False
    assert admission.patch["state"] == PENDING
    assert admission.patch["arrayProgress"] == "0/4"
    assert admission.patch["arrayProperties"] == {"size": 4, "statusSummary": {
        SUBMITTED: 0, PENDING: 4, RUNNABLE: 0, STARTING: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0}}


def test_admission_keeps_an_existing_creation_time() -> None:
    job = make(createdAt="2027-01-01T00:00:00.000000Z")
    ok = rules.admit(job, Queue("q"), ["q"], DEFINITION, NOW).patch
    failed = rules.admit(job, None, [], DEFINITION, NOW).patch
    assert ok is not None and failed is not None
    assert ok["createdAt"] == failed["createdAt"] == "2027-01-01T00:00:00.000000Z"



TEAM_A = {"matchLabels": {"team": "a"}}


def test_a_young_job_from_a_namespace_not_indexed_yet_is_looked_at_again() -> None:
    admission = rules.admit(replace(make(), created=YOUNG), Queue("q", namespace_selector=TEAM_A), ["q"],
                            DEFINITION, NOW, None)
    assert admission.look_again and admission.patch is not None and admission.patch["state"] == SUBMITTED


@pytest.mark.parametrize(("selector", "labels", "reason"), [
    (None, None, None),
    (TEAM_A, {"team": "a"}, None),
    ({}, {}, None),
    (TEAM_A, {"team": "b"},
     "Job queue 'q' does not accept jobs from namespace 'team' (its namespaceSelector selects team=a)"),
    (TEAM_A, None, "Job queue 'q' does not accept jobs from namespace 'team' (its namespaceSelector selects team=a)"),
])
def test_a_queue_accepts_only_the_namespaces_its_selector_selects(
        selector: dict[str, Any] | None, labels: dict[str, str] | None, reason: str | None) -> None:
    admission = rules.admit(make(), Queue("q", namespace_selector=selector), ["q"], DEFINITION, NOW, labels)
    assert admission.patch is not None
    if reason is None:
        assert admission.patch["state"] == RUNNABLE
    else:
        assert (admission.patch["state"], admission.patch["statusReason"]) == (FAILED, reason)

# --- dependencies_patch -------------------------------------------------------------------------

@pytest.mark.parametrize(("verdict", "current_reason", "expected"), [
    pytest.param(Verdict(False, failure=DEPENDENT_FAILED), None,
                 {"state": FAILED, "statusReason": DEPENDENT_FAILED, "stoppedAt": NOW_ISO}, id="failed"),
    pytest.param(Verdict(True), "Waiting for BatchJob 'a' (RUNNING, waiting for Succeeded)",
                 # no queuedAt: a released job keeps its place in the queue by submission time
                 {"state": RUNNABLE, "statusReason": "Dependencies met; waiting in job queue 'q'"},
                 id="released"),
    pytest.param(Verdict(False, waiting_on="BatchJob 'a' (RUNNING, waiting for Succeeded)"), "Checking dependencies",
                 {"statusReason": "Waiting for BatchJob 'a' (RUNNING, waiting for Succeeded)"},
                 id="waiting-new-reason"),
    pytest.param(Verdict(False, waiting_on="BatchJob 'a' (RUNNING, waiting for Succeeded)"),
                 "Waiting for BatchJob 'a' (RUNNING, waiting for Succeeded)", None, id="waiting-same-reason-no-write"),
])
def test_dependencies_patch(verdict: Verdict, current_reason: str | None, expected: JobStatusPatch | None) -> None:
    job = make(PENDING, statusReason=current_reason)
    assert rules.dependencies_patch(job, verdict, NOW) == expected


# --- fail, cancel, terminate --------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "expected_flags"), [
    (None, {}),
    ("isCancelled", {"isCancelled": True}),
    ("isTerminated", {"isTerminated": True}),
    ("somethingElse", {}),
])
def test_fail_sets_only_the_named_flag(flag: str | None, expected_flags: dict[str, bool]) -> None:
    assert rules.fail("boom", NOW, flag) == {"state": FAILED, "statusReason": "boom", "stoppedAt": NOW_ISO,
                                             **expected_flags}


@pytest.mark.parametrize(("cancel", "reason"), [
    ({"reason": "no longer needed"}, "no longer needed"),
    ({"reason": ""}, CANCELLED_BY_USER),
    ({}, CANCELLED_BY_USER),
])
def test_cancel(cancel: dict[str, str], reason: str) -> None:
    assert rules.cancel(make(RUNNABLE, spec={"cancel": cancel}), NOW) == {
        "state": FAILED, "statusReason": reason, "stoppedAt": NOW_ISO, "isCancelled": True}


def test_terminate_a_runnable_job_records_no_attempt() -> None:
    patch = rules.terminate(make(RUNNABLE, spec={"terminate": {}}), None, NOW)
    assert patch == {"state": FAILED, "statusReason": TERMINATED_BY_USER, "stoppedAt": NOW_ISO, "isTerminated": True}


def test_terminate_a_running_job_records_the_attempt_of_its_pod() -> None:
    earlier = {"statusReason": "Essential container in task exited", "exitCode": 1}
    job = make(RUNNING, spec={"terminate": {"reason": "stop it"}}, attempts=[earlier], attemptCount=1,
               currentAttempt=2)
    patch = rules.terminate(job, pod(name="job-a-2-abc", attempt=2, node="node-7"), NOW)
    assert patch == {
        "state": FAILED, "statusReason": "stop it", "stoppedAt": NOW_ISO, "isTerminated": True, "attemptCount": 2,
        "attempts": [earlier, {"statusReason": "stop it", "stoppedAt": NOW_ISO, "podName": "job-a-2-abc",
                               "nodeName": "node-7", "startedAt": "2027-01-15T07:59:00Z"}],
    }
    assert job.status["attempts"] == [earlier], "the job's status is not modified"


def test_terminate_a_starting_job_without_a_pod_records_a_bare_attempt() -> None:
    patch = rules.terminate(make(STARTING, spec={"terminate": {"reason": ""}}), None, NOW)
    assert patch["statusReason"] == TERMINATED_BY_USER
    assert patch["attempts"] == [{"statusReason": TERMINATED_BY_USER, "stoppedAt": NOW_ISO}]
    assert patch["attemptCount"] == 1


def test_terminate_leaves_out_what_the_pod_does_not_show() -> None:
    patch = rules.terminate(make(STARTING, spec=TERMINATE), pod(node=None, running_since=None), NOW)
    assert patch["attempts"] == [{"statusReason": "stop it", "stoppedAt": NOW_ISO, "podName": "job-a-1-xyz"}]


# --- timeout ------------------------------------------------------------------------------------

STARTED = NOW - 600


@pytest.mark.parametrize(("state", "timeout", "started", "now", "expected"), [
    pytest.param(RUNNING, 600, iso(STARTED), NOW, True, id="exactly-at-the-boundary"),
    pytest.param(RUNNING, 600, iso(STARTED), NOW - 0.001, False, id="a-millisecond-before"),
    pytest.param(RUNNING, 600, iso(STARTED), NOW + 3600, True, id="long-past"),
    pytest.param(RUNNING, 601, iso(STARTED), NOW, False, id="one-second-left"),
    pytest.param(STARTING, 600, iso(STARTED), NOW + 3600, False, id="starting-never-times-out"),
    pytest.param(RUNNABLE, 600, iso(STARTED), NOW + 3600, False, id="runnable-after-retry-keeps-old-start"),
    pytest.param(SUCCEEDED, 600, iso(STARTED), NOW + 3600, False, id="terminal"),
    pytest.param(RUNNING, None, iso(STARTED), NOW + 3600, False, id="no-timeout"),
    pytest.param(RUNNING, 0, iso(STARTED), NOW + 3600, False, id="zero-timeout-means-none"),
    pytest.param(RUNNING, 600, None, NOW + 3600, False, id="no-attempt-start"),
])
def test_timed_out(state: str, timeout: int | None, started: str | None, now: float, expected: bool) -> None:
    job = make(state, resolved={"timeoutSeconds": timeout}, attemptStartedAt=started)
    assert rules.timed_out(job, now) is expected


@settings(database=None)
@given(started=st.integers(min_value=1_000_000_000, max_value=3_000_000_000),
       seconds=st.integers(min_value=1, max_value=86_400 * 14), elapsed=st.integers(min_value=0, max_value=86_400 * 30))
def test_timed_out_exactly_when_the_timeout_is_used(started: int, seconds: int, elapsed: int) -> None:
    job = make(RUNNING, resolved={"timeoutSeconds": seconds}, attemptStartedAt=iso(started))
    assert rules.timed_out(job, float(started + elapsed)) is (elapsed >= seconds)


def test_time_out_fails_the_job_and_records_the_attempt() -> None:
    job = make(RUNNING, attempts=[], currentAttempt=1)
    patch = rules.time_out(job, pod(), NOW)
    assert patch == {
        "state": FAILED, "statusReason": TIMEOUT_REASON, "stoppedAt": NOW_ISO, "attemptCount": 1,
        "attempts": [{"statusReason": TIMEOUT_REASON, "stoppedAt": NOW_ISO, "podName": "job-a-1-xyz",
                      "nodeName": "node-1", "startedAt": "2027-01-15T07:59:00Z"}],
    }
    assert "isTerminated" not in patch and "isCancelled" not in patch


# --- an attempt in flight -----------------------------------------------------------------------

RUN_1 = pod("p-1-run", attempt=1)
DONE_1 = pod("p-1-done", attempt=1, phase="Failed", exit_code=1)
RUN_2 = pod("p-2-run", attempt=2)
DONE_2 = pod("p-2-done", attempt=2, phase="Succeeded", exit_code=0)
RUN_2_LATER = pod("p-2-later", attempt=2)


@pytest.mark.parametrize(("attempt", "pods", "expected"), [
    pytest.param(1, [], None, id="no-pods"),
    pytest.param(2, [RUN_1, DONE_1], None, id="only-other-attempts"),
    pytest.param(1, [RUN_1], RUN_1, id="running"),
    pytest.param(2, [DONE_2, RUN_2], DONE_2, id="terminated-wins-over-running-before-it"),
    pytest.param(2, [RUN_2, DONE_2], DONE_2, id="terminated-wins-over-running-after-it"),
    pytest.param(2, [DONE_1, RUN_1, RUN_2], RUN_2, id="other-attempts-ignored-even-if-terminated"),
    pytest.param(2, [RUN_2, RUN_2_LATER], RUN_2_LATER, id="last-of-several-running"),
])
def test_current_pod(attempt: int, pods: Sequence[PodObservation], expected: PodObservation | None) -> None:
    assert rules.current_pod(make(RUNNING, currentAttempt=attempt), pods) == expected


@pytest.mark.parametrize(("name", "status", "expected"), [
    pytest.param("job-a", {}, "job-a-1", id="first-attempt"),
    pytest.param("job-a", {"currentAttempt": 3}, "job-a-3", id="third-attempt"),
    pytest.param("job-a", {"kubernetesJob": "placed-name", "currentAttempt": 3}, "placed-name", id="recorded-wins"),
    pytest.param("x" * 70, {"currentAttempt": 2}, kubernetes_job_name("x" * 70, 2), id="long-name-hashed"),
])
def test_kube_job_name(name: str, status: dict[str, Any], expected: str) -> None:
    assert rules.kube_job_name(replace(make(), name=name, status=status)) == expected
    assert len(rules.kube_job_name(replace(make(), name=name, status=status))) <= 63


def test_outcome_running_sets_attempt_start_and_first_start() -> None:
    patch = rules.outcome_patch(make(STARTING), Outcome(RUNNING, "Container running on node n",
                                                         started_at="2027-01-15T07:59:30Z"), NOW)
    assert patch == {"state": RUNNING, "statusReason": "Container running on node n",
                     "attemptStartedAt": "2027-01-15T07:59:30Z", "startedAt": "2027-01-15T07:59:30Z"}


def test_outcome_running_keeps_the_first_start_of_the_job() -> None:
    job = make(STARTING, startedAt="2027-01-15T07:00:00Z", currentAttempt=2)
    patch = rules.outcome_patch(job, Outcome(RUNNING, "Container running on node n"), NOW)
    assert patch == {"state": RUNNING, "statusReason": "Container running on node n", "attemptStartedAt": NOW_ISO}


@pytest.mark.parametrize(("record", "reason", "expected_reason"), [
    pytest.param({"exitCode": 3, "statusReason": "Essential container in task exited"},
                 "Essential container in task exited",
                 "Attempt 1 failed (Essential container in task exited, exit code 3); waiting to retry",
                 id="with-exit-code"),
    pytest.param({"exitCode": 0, "statusReason": "Essential container in task exited"},
                 "Essential container in task exited",
                 "Attempt 1 failed (Essential container in task exited, exit code 0); waiting to retry",
                 id="exit-code-zero-is-shown"),
    pytest.param({"statusReason": "Kubernetes Job failed: DeadlineExceeded"}, "Kubernetes Job failed: DeadlineExceeded",
                 "Attempt 1 failed (Kubernetes Job failed: DeadlineExceeded); waiting to retry", id="no-exit-code"),
])
def test_outcome_retry(record: dict[str, Any], reason: str, expected_reason: str) -> None:
    job = make(RUNNING, currentAttempt=1, computeEnvironment="ce", startedAt="2027-01-15T07:00:00Z")
    patch = rules.outcome_patch(job, Outcome(RUNNABLE, reason, attempt=record, retry=True,
                                             started_at="2027-01-15T07:00:00Z"), NOW)
    assert patch == {"state": RUNNABLE, "statusReason": expected_reason, "currentAttempt": 2,
                     "computeEnvironment": None, "attempts": [record], "attemptCount": 1}


def test_outcome_retry_of_a_later_attempt_counts_on() -> None:
    earlier = {"exitCode": 3}
    job = make(RUNNING, currentAttempt=2, attempts=[earlier], attemptCount=1)
    patch = rules.outcome_patch(job, Outcome(RUNNABLE, "Essential container in task exited",
                                             attempt={"exitCode": 4}, retry=True), NOW)
    assert patch["currentAttempt"] == 3
    assert patch["attempts"] == [earlier, {"exitCode": 4}] and patch["attemptCount"] == 2
    assert patch["statusReason"].startswith("Attempt 2 failed (")


@pytest.mark.parametrize(("status", "outcome", "expected"), [
    pytest.param({"startedAt": "2027-01-15T07:00:00Z"},
                 Outcome(SUCCEEDED, "Essential container in task exited", attempt={"exitCode": 0},
                         started_at="2027-01-15T07:30:00Z", stopped_at="2027-01-15T07:59:59Z"),
                 {"state": SUCCEEDED, "statusReason": "Essential container in task exited",
                  "attempts": [{"exitCode": 0}], "attemptCount": 1, "stoppedAt": "2027-01-15T07:59:59Z"},
                 id="succeeded-keeps-start"),
    pytest.param({},
                 Outcome(FAILED, "Essential container in task exited", attempt={"exitCode": 1},
                         started_at="2027-01-15T07:30:00Z"),
                 {"state": FAILED, "statusReason": "Essential container in task exited",
                  "attempts": [{"exitCode": 1}], "attemptCount": 1, "stoppedAt": NOW_ISO,
                  "startedAt": "2027-01-15T07:30:00Z"},
                 id="failed-fast-sets-start-and-now-as-stop"),
    pytest.param({}, Outcome(FAILED, "Kubernetes Job failed: BackoffLimitExceeded"),
                 {"state": FAILED, "statusReason": "Kubernetes Job failed: BackoffLimitExceeded",
                  "stoppedAt": NOW_ISO}, id="failed-without-start"),
])
def test_outcome_terminal(status: dict[str, Any], outcome: Outcome, expected: JobStatusPatch) -> None:
    assert rules.outcome_patch(make(RUNNING, **status), outcome, NOW) == expected


@pytest.mark.parametrize(("state", "unschedulable", "current_reason", "expected"), [
    pytest.param(STARTING, "0/3 nodes are available", None,
                 {"statusReason": "Pod cannot be scheduled: 0/3 nodes are available"}, id="starting"),
    pytest.param(STARTING, "0/3 nodes are available", "Pod cannot be scheduled: 0/3 nodes are available", None,
                 id="same-reason-no-write"),
    pytest.param(RUNNING, "0/3 nodes are available", None, None, id="running"),
    pytest.param(STARTING, None, None, None, id="schedulable"),
    pytest.param(STARTING, "x" * 2000, None, {"statusReason": ("Pod cannot be scheduled: " + "x" * 2000)[:1024]},
                 id="truncated"),
])
def test_unschedulable_patch(state: str, unschedulable: str | None, current_reason: str | None,
                             expected: JobStatusPatch | None) -> None:
    job = make(state, statusReason=current_reason)
    patch = rules.unschedulable_patch(job, pod(unschedulable=unschedulable))
    assert patch == expected
    if patch is not None:
        assert len(patch["statusReason"]) <= 1024


def test_unschedulable_patch_without_a_pod() -> None:
    assert rules.unschedulable_patch(make(STARTING), None) is None


# --- scheduling ---------------------------------------------------------------------------------

def test_placement_patch() -> None:
    assert rules.placement_patch("ce-a", "job-a-1") == {
        "state": STARTING, "computeEnvironment": "ce-a", "kubernetesJob": "job-a-1",
        "statusReason": "Placed on compute environment 'ce-a'; waiting for the container to start",
        "waiting": None}


def test_waiting_patch() -> None:
    wait = Waiting(key="k", category="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", reason="no room", since=NOW - 5)
    assert rules.waiting_patch(wait) == {
        "statusReason": "no room", "waiting": {"category": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                                               "since": NOW - 5}}


REQUEST = {"cpuMilli": 1500, "memory": 512 * MiB, "gpus": 1}


@pytest.mark.parametrize(("state", "environment", "expected"), [
    pytest.param(STARTING, "ce-a", ("ce-a", Resources(1500, 512 * MiB, 1)), id="starting"),
    pytest.param(RUNNING, "ce-a", ("ce-a", Resources(1500, 512 * MiB, 1)), id="running"),
    pytest.param(RUNNING, None, None, id="active-without-environment"),
    pytest.param(RUNNABLE, "ce-a", None, id="runnable"),
    pytest.param(PENDING, "ce-a", None, id="pending"),
    pytest.param(SUCCEEDED, "ce-a", None, id="succeeded"),
    pytest.param(FAILED, "ce-a", None, id="failed"),
])
def test_charge(state: str, environment: str | None, expected: tuple[str, Resources] | None) -> None:
    assert rules.charge(make(state, computeEnvironment=environment, resolved={"request": REQUEST})) == expected


@pytest.mark.parametrize(("state", "spec", "expected"), [
    (RUNNABLE, {}, True),
    (RUNNABLE, CANCEL, False),
    (RUNNABLE, TERMINATE, False),
    (PENDING, {}, False),
    (STARTING, {}, False),
    (None, {}, False),
    (FAILED, {}, False),
])
def test_schedulable(state: str | None, spec: dict[str, Any], expected: bool) -> None:
    assert rules.schedulable(make(state, spec=spec)) is expected


# --- stamp --------------------------------------------------------------------------------------

def test_stamp_without_a_state_change_returns_the_patch_unchanged() -> None:
    patch: JobStatusPatch = {"statusReason": "Waiting for BatchJob 'a'"}
    stamped = rules.stamp(make(PENDING), patch, NOW)
    assert stamped is patch and stamped == {"statusReason": "Waiting for BatchJob 'a'"}


def test_stamp_running_sets_generation_and_an_unfinished_condition() -> None:
    job = replace(make(STARTING), generation=4)
    stamped = rules.stamp(job, {"state": RUNNING, "statusReason": "Container running on node n"}, NOW)
    assert stamped == {"observedGeneration": 4, "state": RUNNING, "statusReason": "Container running on node n",
                       "conditions": [{"type": "Finished", "status": "False", "reason": "Running",
                                       "message": "Container running on node n", "lastTransitionTime": NOW_ISO,
                                       "observedGeneration": 4}]}


@pytest.mark.parametrize(("state", "status", "reason"), [
    (SUCCEEDED, "True", "Succeeded"),
    (FAILED, "True", "Failed"),
    (RUNNABLE, "False", "Runnable"),
    (PENDING, "False", "Pending"),
    (STARTING, "False", "Starting"),
    (SUBMITTED, "False", "Submitted"),
    ("MYSTERY", "False", "Unknown"),
])
def test_stamp_finished_condition_per_state(state: str, status: str, reason: str) -> None:
    stamped = rules.stamp(make(RUNNING), {"state": state, "statusReason": "why"}, NOW)
    [condition] = stamped["conditions"]
    assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
        "Finished", status, reason, "why")


def test_stamp_keeps_the_transition_time_while_the_status_holds_and_moves_it_when_it_flips() -> None:
    earlier = iso(NOW - 100)
    other = {"type": "Other", "status": "True", "reason": "X", "message": "", "lastTransitionTime": earlier,
             "observedGeneration": 1}
    job = make(RUNNABLE)
    first = rules.stamp(job, {"state": RUNNING, "statusReason": "running"}, NOW - 100)
    job = make(RUNNING, conditions=[other, *first["conditions"]])
    still = rules.stamp(job, {"state": RUNNABLE, "statusReason": "retrying"}, NOW - 50)
    finished = rules.stamp(make(RUNNABLE, conditions=still["conditions"]), {"state": SUCCEEDED}, NOW)
    assert [c["lastTransitionTime"] for c in still["conditions"]] == [earlier, earlier]
    assert [c["reason"] for c in still["conditions"]] == ["X", "Runnable"]
    assert [(c["status"], c["reason"], c["message"], c["lastTransitionTime"]) for c in finished["conditions"]] == [
        ("True", "X", "", earlier), ("True", "Succeeded", "", NOW_ISO)]


@settings(database=None)
@given(states=st.lists(st.sampled_from(JOB_STATES), min_size=1, max_size=8))
def test_stamp_keeps_one_finished_condition_that_follows_the_state(states: list[str]) -> None:
    conditions: list[dict[str, Any]] = []
    flipped_at = None
    previous = None
    for step, state in enumerate(states):
        now = NOW + step
        stamped = rules.stamp(make(RUNNING, conditions=conditions), {"state": state, "statusReason": state}, now)
        conditions = stamped["conditions"]
        [condition] = conditions
        status = "True" if state in TERMINAL else "False"
        if status != previous:
            flipped_at, previous = iso(now), status
        assert condition["status"] == status
        assert condition["lastTransitionTime"] == flipped_at


@pytest.mark.parametrize(("env_bytes", "admitted"),
                         [(1000, True), (200 * 1024, True), (300 * 1024, False), (1024 * 1024, False)])
def test_a_job_too_large_to_keep_its_status_fails_at_admission_in_words(env_bytes: int, admitted: bool) -> None:
    env = [{"name": f"BIG_{i}", "value": "x" * (env_bytes // 200)} for i in range(200)]
    job = make(spec={"overrides": {"env": env}})
    patch = rules.admit(job, Queue("q"), ["q"], DEFINITION, NOW).patch
    assert patch is not None
    if admitted:
        assert patch["state"] == "RUNNABLE"
    else:
        assert patch["state"] == "FAILED" and patch["statusReason"].startswith("Job too large: its spec (")
        assert "\n" not in patch["statusReason"] and "overrides.env" in patch["statusReason"]


# --- when STARTING is written on its own ---------------------------------------------------------

ON_NODE = PodObservation(name="p", attempt=1, phase="Pending", node="n1")


@pytest.mark.parametrize(("pod", "due"), [
    (None, 101.0),  # no pod seen yet: STARTING tells the user the job is placed and waits
    (replace(ON_NODE, node=None), 101.0),  # waiting for a node
    (replace(ON_NODE, node=None, unschedulable="0/3 nodes are available"), 101.0),
    (replace(ON_NODE, waiting_reason="ErrImagePull", waiting_message="not found"), 101.0),  # it may never start
    (replace(ON_NODE, deleting=True), 101.0),
    (ON_NODE, 105.0),  # on a node, starting normally: RUNNING follows within moments, in the same write
    (replace(ON_NODE, phase="Running", running_since="2026-01-01T00:00:00Z"), math.inf),  # RUNNING's report now
    (replace(ON_NODE, phase="Succeeded", started_at="2026-01-01T00:00:00Z"), 101.0),  # ended: its end is due
])
def test_starting_is_written_on_its_own_when_the_container_is_not_about_to_run(
        pod: PodObservation | None, due: float) -> None:
    assert rules.starting_report_due(100.0, pod, report_seconds=1.0, starting_pod_seconds=5.0) == due


def test_a_starting_pod_is_never_reported_sooner_than_any_pod() -> None:
    assert rules.starting_report_due(100.0, ON_NODE, report_seconds=3.0, starting_pod_seconds=2.0) == 103.0


# --- when RUNNING is written ---------------------------------------------------------------------

RAN = "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(("state", "outcome", "due"), [
    (STARTING, Outcome(RUNNING, "Container running on node n1", started_at=RAN), 102.0),  # waits for its end
    (RUNNING, Outcome(RUNNING, "Container running on node n1", started_at=RAN), None),
    (STARTING, Outcome(SUCCEEDED, "Essential container in task exited", started_at=RAN), None),  # the end: now
    (STARTING, Outcome(FAILED, "CannotPullContainerError: not found"), None),
    (STARTING, Outcome(RUNNABLE, "Essential container in task exited", started_at=RAN, retry=True), None),
])
def test_a_started_container_has_running_written_once_it_has_run_a_while(
        state: str, outcome: Outcome, due: float | None) -> None:
    assert rules.running_report_due(make(state), outcome, 100.0, hold_seconds=2.0) == due


@pytest.mark.parametrize(("recent_starts", "hold"), [
    (0, 0.0),  # a quiet time: RUNNING as soon as it is seen
    (19, 0.0),
    (20, 2.0),  # containers start busily: a short job's start and end are one write
    (500, 2.0),
])
def test_running_waits_for_the_end_only_while_containers_start_busily(recent_starts: int, hold: float) -> None:
    assert rules.running_report_hold(recent_starts, report_seconds=2.0, busy_starts=20) == hold


@pytest.mark.parametrize(("state", "outcome", "announced"), [
    (STARTING, Outcome(SUCCEEDED, "Essential container in task exited", started_at=RAN), True),
    (STARTING, Outcome(RUNNABLE, "Essential container in task exited", started_at=RAN, retry=True), True),
    (RUNNING, Outcome(SUCCEEDED, "Essential container in task exited", started_at=RAN), False),  # it was written
    (STARTING, Outcome(FAILED, "CannotPullContainerError: not found"), False),  # never ran
    (STARTING, Outcome(RUNNING, "Container running on node n1", started_at=RAN), False),  # written itself
])
def test_an_attempt_that_ran_without_running_written_still_tells_it(state: str, outcome: Outcome,
                                                                     announced: bool) -> None:
    assert rules.ran_unannounced(make(state), outcome) is announced


def test_the_running_event_of_an_unwritten_running_names_the_node() -> None:
    assert rules.running_announcement(replace(ON_NODE, phase="Succeeded")) == {
        "state": RUNNING, "statusReason": "Container running on node n1"}
