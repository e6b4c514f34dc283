"""Fair share, scheduling priority and concurrency caps: the pure rules (core.fairshare, the
scheduler's order, core.job's admission of share identifiers), case by case."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from barge.core import fairshare
from barge.core import job as rules
from barge.core.fairshare import Policy, ShareEntry
from barge.core.resources import Capacity, Resources
from barge.core.scheduler import Decisions, Environment, Queue, Runnable, Snapshot, schedule
from barge.core.states import (
    ARRAY_MAX_PARALLEL,
    CAPACITY,
    FAILED,
    POLICY_NOT_FOUND,
    QUEUE_MAX_RUNNING,
    RUNNABLE,
    SUBMITTED,
)
from barge.core.times import iso

NOW = 10_000.0
CPU = Resources(1000, 0, 0)


def env(cpu: int = 3) -> Environment:
    return Environment("ce", True, Capacity(cpu * 1000, None, 0))


def job(key: str, at: float, share: str | None = None, priority: int = 0, queue: str = "q", count: int = 1,
        **extra: Any) -> Runnable:
    return Runnable(key, queue, at, CPU, count=count, share=share, priority=priority, **extra)


def run(jobs: Sequence[Runnable], *, cpu: int = 3, policy: Policy | None = None, max_running: int | None = None,
        share_running: Mapping[str, int] | None = None, running_jobs: int = 0, used: int = 0,
        queue_policy: str | None = None) -> Decisions:
    name = queue_policy or (policy.name if policy else None)
    queues = {"q": Queue("q", 1, ("ce",), policy=name, max_running=max_running)}
    snapshot = Snapshot({"ce": env(cpu)}, queues, {"ce": Resources(used * 1000, 0, 0)}, list(jobs),
                        policies={policy.name: policy} if policy else {}, running_jobs={"q": running_jobs},
                        share_running={policy.name: dict(share_running or {})} if policy else {})
    return schedule(snapshot, NOW)


def placed(decisions: Decisions) -> list[str]:
    return [p.key for p in decisions.placements]


# --- weights, usage, reservation -------------------------------------------------------------

@pytest.mark.parametrize(("distribution", "active", "expected"), [
    pytest.param((), {"a"}, {"a": 1.0}, id="no-entry-weighs-one"),
    pytest.param((ShareEntry("a", 0.5),), {"a", "b"}, {"a": 0.5, "b": 1.0}, id="exact-entry"),
    pytest.param((ShareEntry("team-a*", 1.0),), {"team-a1", "team-a2", "team-a3"},
                 {"team-a1": 3.0, "team-a2": 3.0, "team-a3": 3.0}, id="prefix-n-active-get-n-times-w"),
    pytest.param((ShareEntry("team-a*", 2.0), ShareEntry("team-a1", 0.5)), {"team-a1", "team-a2"},
                 {"team-a1": 0.5, "team-a2": 2.0}, id="exact-entry-wins-over-prefix"),
    pytest.param((ShareEntry("t*", 1.0), ShareEntry("team*", 4.0)), {"team-x", "tx"},
                 {"team-x": 4.0, "tx": 1.0}, id="longest-prefix-wins"),
    pytest.param((ShareEntry("*", 0.5),), {"x", "y"}, {"x": 1.0, "y": 1.0}, id="star-matches-everything"),
])
def test_weights_in_effect(distribution: tuple[ShareEntry, ...], active: set[str],
                           expected: dict[str, float]) -> None:
    assert fairshare.weights(distribution, active) == expected


def test_usage_decays_with_the_window_and_accumulates_what_runs() -> None:
    assert fairshare.decayed(600.0, 0.0, 600.0, 600.0) == pytest.approx(600.0 / math.e)
    # two vCPUs held for ever: usage tends to 2 x window
    assert fairshare.decayed(0.0, 2.0, 60_000.0, 600.0) == pytest.approx(1200.0)
    # computed in one step or sixty, the same
    stepped = 0.0
    for _ in range(60):
        stepped = fairshare.decayed(stepped, 1.5, 1.0, 600.0)
    assert stepped == pytest.approx(fairshare.decayed(0.0, 1.5, 60.0, 600.0))


def test_idle_shares_with_no_usage_left_are_dropped() -> None:
    assert fairshare.advance({"a": 0.011, "b": 100.0}, {}, 600.0, 600.0) == pytest.approx({"b": 100.0 / math.e})


@pytest.mark.parametrize(("reservation", "active", "fraction"), [
    (0, 3, 0.0), (50, 1, 0.5), (50, 2, 0.25), (50, 3, 0.125), (99, 0, 0.0),
])
def test_compute_reservation_fraction(reservation: int, active: int, fraction: float) -> None:
    assert fairshare.reserve_fraction(reservation, active) == pytest.approx(fraction)


def test_decay_zero_is_awss_600_seconds() -> None:
    assert Policy("p", decay_seconds=0).window == 600.0
    assert Policy("p", decay_seconds=3600).window == 3600.0


# --- order -------------------------------------------------------------------------------------

def test_fifo_queue_higher_priority_first_then_submission() -> None:
    jobs = [job("early-p0", 1), job("late-p9", 2, priority=9), job("middle-p0", 1.5), job("late-p5", 3, priority=5)]
    assert placed(run(jobs, cpu=4)) == ["late-p9", "late-p5", "early-p0", "middle-p0"]


def test_fifo_queue_priority_zero_is_plain_fifo() -> None:
    jobs = [job(f"j{i}", float(10 - i)) for i in range(5)]
    assert placed(run(jobs, cpu=5)) == ["j4", "j3", "j2", "j1", "j0"]


def test_lower_weight_gets_twice_the_slots() -> None:
    policy = Policy("p", distribution=(ShareEntry("A", 1.0), ShareEntry("B", 0.5)))
    jobs = [job(f"a{i}", i, "A") for i in range(10)] + [job(f"b{i}", 100 + i, "B") for i in range(10)]
    decisions = run(jobs, cpu=6, policy=policy)
    assert sorted(placed(decisions)) == ["a0", "a1", "b0", "b1", "b2", "b3"]


def test_a_free_slot_goes_to_the_share_below_its_weight() -> None:
    policy = Policy("p", distribution=(ShareEntry("A", 1.0), ShareEntry("B", 0.5)))
    jobs = [job("a", 1, "A"), job("b", 2, "B")]
    # A runs 1, B runs 1: B (0.5 x 1) stands below A (1 x 1) although A's job is older
    assert placed(run(jobs, cpu=3, used=2, policy=policy, share_running={"A": 1000, "B": 1000})) == ["b"]
    # A runs 0, B runs 2: A stands at 0
    assert placed(run(jobs, cpu=3, used=2, policy=policy, share_running={"B": 2000})) == ["a"]


def test_a_share_that_ran_a_lot_yields_to_one_that_did_not() -> None:
    policy = Policy("p", usage={"busy": 3 * 600.0})
    jobs = [job("busy-1", 1, "busy"), job("quiet-1", 50, "quiet")]
    assert placed(run(jobs, cpu=1, policy=policy)) == ["quiet-1"]


def test_inside_a_share_priority_then_submission() -> None:
    policy = Policy("p")
    jobs = [job("a-p0", 1, "A"), job("a-p9", 2, "A", priority=9), job("a-p0-late", 3, "A")]
    assert placed(run(jobs, cpu=1, policy=policy)) == ["a-p9"]
    assert placed(run(jobs, cpu=3, policy=policy)) == ["a-p9", "a-p0", "a-p0-late"]


def test_prefix_entry_members_together_count_as_one_share() -> None:
    policy = Policy("p", distribution=(ShareEntry("team-a*", 1.0), ShareEntry("b", 1.0)))
    jobs = ([job(f"a1-{i}", i, "team-a1") for i in range(5)] + [job(f"a2-{i}", i, "team-a2") for i in range(5)]
            + [job(f"b-{i}", i, "b") for i in range(5)])
    keys = placed(run(jobs, cpu=4, policy=policy))
    assert sum(k.startswith("b-") for k in keys) == 2
    assert sum(k.startswith("a1-") for k in keys) == 1 and sum(k.startswith("a2-") for k in keys) == 1


def test_compute_reservation_keeps_room_for_a_share_not_yet_running() -> None:
    policy = Policy("p", compute_reservation=50)
    alone = [job(f"a{i}", i, "A") for i in range(4)]
    decisions = run(alone, cpu=4, policy=policy)
    assert placed(decisions) == ["a0", "a1"]  # 50% of 4 vCPUs kept free while A is the one active share
    assert decisions.waiting["a2"].category == CAPACITY
    assert "computeReservation 50" in decisions.waiting["a2"].reason
    # B arrives: it has no running job, so it may use the reserved room at once
    both = [*alone[2:], job("b0", 100, "B"), job("b1", 101, "B")]
    decisions = run(both, cpu=4, used=2, policy=policy, share_running={"A": 2000})
    assert placed(decisions) == ["b0"]  # then 2 active shares keep 25%: 1 vCPU stays free


def test_missing_policy_holds_the_queue_with_a_reason() -> None:
    decisions = run([job("a", 1, "A")], queue_policy="gone")
    assert placed(decisions) == []
    assert decisions.waiting["a"].category == POLICY_NOT_FOUND
    assert "'gone'" in decisions.waiting["a"].reason


# --- caps ---------------------------------------------------------------------------------------

def test_max_running_jobs_holds_the_rest_back_with_a_reason() -> None:
    jobs = [job(f"j{i}", i) for i in range(3)]
    decisions = run(jobs, cpu=8, max_running=1)
    assert placed(decisions) == ["j0"]
    assert {decisions.waiting[k].category for k in ("j1", "j2")} == {QUEUE_MAX_RUNNING}
    assert "at most 1 jobs at a time (maxRunningJobs)" in decisions.waiting["j1"].reason
    assert placed(run(jobs[1:], cpu=8, max_running=1, running_jobs=1)) == []


def test_max_running_jobs_counts_array_children() -> None:
    decisions = run([job("array", 1, count=10)], cpu=8, max_running=4, running_jobs=1)
    assert [(p.key, p.count) for p in decisions.placements] == [("array", 3)]
    assert decisions.waiting["array"].category == QUEUE_MAX_RUNNING


def test_max_parallel_caps_an_arrays_children() -> None:
    decisions = run([job("array", 1, count=95, max_parallel=5, in_flight=3)], cpu=50)
    assert [(p.key, p.count) for p in decisions.placements] == [("array", 2)]
    assert decisions.waiting["array"].category == ARRAY_MAX_PARALLEL
    assert run([job("array", 1, count=95, max_parallel=5, in_flight=5)], cpu=50).placements == []


def test_capacity_still_explains_when_a_cap_is_not_what_binds() -> None:
    decisions = run([job("array", 1, count=10, max_parallel=5)], cpu=2)
    assert [(p.key, p.count) for p in decisions.placements] == [("array", 2)]
    assert decisions.waiting["array"].category == CAPACITY


# --- admission ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FakeJob:
    spec: dict[str, Any]
    status: dict[str, Any]
    name: str = "j"
    namespace: str = "team"
    created: str = iso(NOW - 3600)
    generation: int = 1
    uid: str = "uid-1"

    @property
    def state(self) -> str | None:
        return self.status.get("state")

    @property
    def queue(self) -> str:
        return str(self.spec.get("jobQueue", ""))

    @property
    def attempt(self) -> int:
        return 1

    @property
    def request(self) -> Resources:
        return Resources()


@dataclass(frozen=True)
class FakeQueue:
    name: str = "q"
    enabled: bool = True
    namespace_selector: dict[str, Any] | None = None
    scheduling_policy: str | None = None


DEFINITION = {"template": {"spec": {"containers": [{"name": "m", "image": "busybox"}]}}, "schedulingPriority": 7}


def admit(spec: dict[str, Any], queue: FakeQueue, policies: set[str], created: str | None = None) -> Any:
    job = FakeJob({"jobDefinition": "d", "jobQueue": "q", **spec}, {})
    if created:
        job = replace(job, created=created)
    return rules.admit(job, queue, ["q"], DEFINITION, NOW, {}, policies)


@pytest.mark.parametrize(("spec", "queue", "policies", "reason"), [
    pytest.param({}, FakeQueue(scheduling_policy="fair"), {"fair"},
                 "spec.shareIdentifier is required: job queue 'q' is a fair-share queue (schedulingPolicy 'fair')",
                 id="no-share-on-fair-share-queue"),
    pytest.param({"shareIdentifier": "A"}, FakeQueue(), set(),
                 "spec.shareIdentifier 'A' is set, but job queue 'q' is a FIFO queue (it names no schedulingPolicy); "
                 "remove spec.shareIdentifier or use a fair-share queue", id="share-on-fifo-queue"),
    pytest.param({"shareIdentifier": "A"}, FakeQueue(scheduling_policy="gone"), {"other"},
                 "Job queue 'q' names schedulingPolicy 'gone', which does not exist, so spec.shareIdentifier 'A' "
                 "has no fair share to count against", id="queue-names-a-missing-policy"),
])
def test_share_mistakes_fail_the_job_naming_the_field_and_queue(spec: dict[str, Any], queue: FakeQueue,
                                                               policies: set[str], reason: str) -> None:
    admission = admit(spec, queue, policies)
    assert admission.patch is not None
    assert (admission.patch["state"], admission.patch["statusReason"]) == (FAILED, reason)


def test_a_missing_policy_is_looked_at_again_while_the_job_is_young() -> None:
    admission = admit({"shareIdentifier": "A"}, FakeQueue(scheduling_policy="later"), set(), created=iso(NOW - 1))
    assert admission.look_again and admission.patch is not None and admission.patch["state"] == SUBMITTED


def test_priority_is_resolved_at_submission_and_the_override_wins() -> None:
    admission = admit({"shareIdentifier": "A"}, FakeQueue(scheduling_policy="fair"), {"fair"})
    assert admission.patch is not None and admission.patch["state"] == RUNNABLE
    status = dict(admission.patch)
    assert rules.priority(FakeJob({}, status)) == 7
    assert rules.priority(FakeJob({"schedulingPriorityOverride": 2}, status)) == 2
    assert rules.priority(FakeJob({}, {})) == 0
