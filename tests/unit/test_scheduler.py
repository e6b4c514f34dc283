"""The scheduling rules: order, placement, quotas, reasons and time-limit actions."""

import random
from collections.abc import Mapping, Sequence

import pytest

from barge.core.resources import Capacity, Resources
from barge.core.scheduler import (
    CAPACITY,
    ENVIRONMENT_UNAVAILABLE,
    JOB_RESOURCE_REQUIREMENT,
    MAX_RESOURCE,
    QUEUE_NOT_FOUND,
    Cancellation,
    Decisions,
    Environment,
    Placement,
    Queue,
    Runnable,
    Snapshot,
    TimeLimitAction,
    Waiting,
    schedule,
)

Gi = 2**30
NOW = 1000.0


def env(
    name: str, cpu: float = 8, memory: int | None = None, gpus: int = 0, enabled: bool = True
) -> Environment:
    return Environment(name, enabled, Capacity(int(cpu * 1000), memory, gpus))


def queue(
    name: str,
    environments: Sequence[str],
    priority: int = 1,
    time_limits: Sequence[TimeLimitAction] = (),
) -> Queue:
    return Queue(name, priority, tuple(environments), tuple(time_limits))


def job(
    key: str,
    queue_name: str = "q",
    at: float = 0.0,
    cpu: float = 1,
    memory: int = 0,
    gpus: int = 0,
    **extra: object,
) -> Runnable:
    return Runnable(key, queue_name, at, Resources(int(cpu * 1000), memory, gpus), **extra)  # type: ignore[arg-type]


def run(
    environments: Sequence[Environment],
    queues: Sequence[Queue],
    jobs: Sequence[Runnable],
    usage: Mapping[str, Resources] | None = None,
    now: float = NOW,
) -> Decisions:
    snapshot = Snapshot(
        environments={e.name: e for e in environments},
        queues={q.name: q for q in queues},
        usage=dict(usage or {}),
        jobs=list(jobs),
    )
    return schedule(snapshot, now)


def placed_keys(decisions: Decisions) -> list[str]:
    return [p.key for p in decisions.placements]


def placed_in(decisions: Decisions) -> dict[str, str]:
    return {p.key: p.environment for p in decisions.placements}


# --- Order ---------------------------------------------------------------------


def test_higher_priority_queue_wins_a_shared_environment() -> None:
    decisions = run(
        [env("ce", cpu=1)],
        [queue("low", ["ce"], priority=1), queue("high", ["ce"], priority=10)],
        [job("ns/early-low", "low", at=1), job("ns/late-high", "high", at=50)],
    )
    assert placed_keys(decisions) == ["ns/late-high"]
    assert decisions.waiting["ns/early-low"].category == CAPACITY


def test_jobs_in_a_queue_start_in_submission_order() -> None:
    decisions = run(
        [env("ce", cpu=2)],
        [queue("q", ["ce"])],
        [job("ns/c", at=3), job("ns/a", at=1), job("ns/d", at=4), job("ns/b", at=2)],
    )
    assert placed_keys(decisions) == ["ns/a", "ns/b"]
    assert set(decisions.waiting) == {"ns/c", "ns/d"}


def test_same_submission_time_is_broken_by_key() -> None:
    decisions = run(
        [env("ce", cpu=1)],
        [queue("q", ["ce"])],
        [job("ns/zeta", at=5), job("ns/alpha", at=5)],
    )
    assert placed_keys(decisions) == ["ns/alpha"]


def test_placements_are_listed_in_scheduling_order() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("low", ["ce"], priority=1), queue("high", ["ce"], priority=5)],
        [job("ns/l1", "low", at=1), job("ns/h2", "high", at=3), job("ns/h1", "high", at=2)],
    )
    assert placed_keys(decisions) == ["ns/h1", "ns/h2", "ns/l1"]


# --- Environments --------------------------------------------------------------


def test_first_environment_of_the_queue_is_preferred() -> None:
    decisions = run(
        [env("a"), env("b")],
        [queue("q", ["b", "a"])],
        [job("ns/j")],
    )
    assert decisions.placements == [Placement("ns/j", "b", 1)]


def test_a_full_first_environment_is_skipped_for_the_second() -> None:
    decisions = run(
        [env("first", cpu=2), env("second", cpu=4)],
        [queue("q", ["first", "second"])],
        [job(f"ns/j{i}", at=i, cpu=1) for i in range(5)],
    )
    assert placed_in(decisions) == {
        "ns/j0": "first",
        "ns/j1": "first",
        "ns/j2": "second",
        "ns/j3": "second",
        "ns/j4": "second",
    }


def test_a_disabled_environment_is_skipped() -> None:
    decisions = run(
        [env("off", enabled=False), env("on")],
        [queue("q", ["off", "on"])],
        [job("ns/j")],
    )
    assert decisions.placements == [Placement("ns/j", "on", 1)]


def test_a_missing_environment_is_skipped() -> None:
    decisions = run([env("on")], [queue("q", ["gone", "on"])], [job("ns/j")])
    assert decisions.placements == [Placement("ns/j", "on", 1)]


# --- Quotas --------------------------------------------------------------------


def test_cpu_quota_of_8_vcpu_admits_exactly_four_2_vcpu_jobs() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("q", ["ce"])],
        [job(f"ns/j{i:02}", at=i, cpu=2) for i in range(20)],
    )
    assert placed_keys(decisions) == ["ns/j00", "ns/j01", "ns/j02", "ns/j03"]
    assert len(decisions.waiting) == 16
    assert decisions.usage["ce"] == Resources(cpu_milli=8000)


def test_memory_quota_is_enforced() -> None:
    decisions = run(
        [env("ce", cpu=100, memory=10 * Gi)],
        [queue("q", ["ce"])],
        [job(f"ns/j{i}", at=i, cpu=1, memory=4 * Gi) for i in range(3)],
    )
    assert placed_keys(decisions) == ["ns/j0", "ns/j1"]
    assert decisions.usage["ce"].memory == 8 * Gi


def test_no_memory_quota_means_memory_never_limits() -> None:
    decisions = run(
        [env("ce", cpu=3, memory=None)],
        [queue("q", ["ce"])],
        [job(f"ns/j{i}", at=i, cpu=1, memory=1000 * Gi) for i in range(4)],
    )
    assert placed_keys(decisions) == ["ns/j0", "ns/j1", "ns/j2"]


def test_gpu_quota_is_enforced() -> None:
    decisions = run(
        [env("gpu", cpu=100, gpus=4)],
        [queue("q", ["gpu"])],
        [job(f"ns/j{i}", at=i, cpu=1, gpus=1) for i in range(6)] + [job("ns/two", at=9, gpus=2)],
    )
    assert placed_keys(decisions) == ["ns/j0", "ns/j1", "ns/j2", "ns/j3"]
    assert decisions.usage["gpu"].gpus == 4


def test_gpus_are_placed_only_where_declared() -> None:
    decisions = run(
        [env("cpu-ce", cpu=64), env("gpu-ce", cpu=8, gpus=1)],
        [queue("q", ["cpu-ce", "gpu-ce"])],
        [job("ns/train", gpus=1)],
    )
    assert decisions.placements == [Placement("ns/train", "gpu-ce", 1)]


def test_usage_already_admitted_counts_against_the_quota() -> None:
    decisions = run(
        [env("ce", cpu=8, memory=16 * Gi)],
        [queue("q", ["ce"])],
        [job("ns/a", at=1, cpu=2), job("ns/b", at=2, cpu=2), job("ns/c", at=3, cpu=1, memory=Gi)],
        usage={"ce": Resources(cpu_milli=6000, memory=15 * Gi + 1)},
    )
    assert placed_keys(decisions) == ["ns/a"]
    assert decisions.usage["ce"] == Resources(8000, 15 * Gi + 1)


def test_over_admitted_environment_takes_nothing_more() -> None:
    decisions = run(
        [env("ce", cpu=4)],
        [queue("q", ["ce"])],
        [job("ns/a", cpu=0.001)],
        usage={"ce": Resources(cpu_milli=6000)},
    )
    assert decisions.placements == []
    assert "free: ce 0 of 4 vCPU" in decisions.waiting["ns/a"].reason


def test_jobs_requesting_nothing_always_start() -> None:
    decisions = run([env("ce", cpu=0)], [queue("q", ["ce"])], [job(f"ns/j{i}", cpu=0) for i in range(3)])
    assert len(decisions.placements) == 3


# --- No head-of-line blocking ----------------------------------------------------


def test_a_job_that_does_not_fit_does_not_block_smaller_jobs_behind_it() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("high", ["ce"], priority=9), queue("low", ["ce"], priority=1)],
        [
            job("ns/small-first", "high", at=1, cpu=4),
            job("ns/big", "high", at=2, cpu=6),
            job("ns/small-same-queue", "high", at=3, cpu=2),
            job("ns/small-lower-queue", "low", at=0, cpu=2),
        ],
    )
    assert placed_keys(decisions) == ["ns/small-first", "ns/small-same-queue", "ns/small-lower-queue"]
    assert decisions.waiting["ns/big"].category == CAPACITY


def test_a_job_too_big_for_any_environment_does_not_block_the_queue() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("q", ["ce"])],
        [job("ns/huge", at=1, cpu=64), job("ns/small", at=2, cpu=1)],
    )
    assert placed_keys(decisions) == ["ns/small"]


# --- Reasons -------------------------------------------------------------------


def test_insufficient_capacity_says_what_is_needed_and_free_where() -> None:
    decisions = run(
        [env("cpu-ce", cpu=8, memory=16 * Gi), env("gpu-ce", cpu=8, gpus=2, enabled=False)],
        [queue("q", ["cpu-ce", "gpu-ce"])],
        [job("ns/j", cpu=2, memory=Gi)],
        usage={"cpu-ce": Resources(7000, 13 * Gi)},
    )
    assert decisions.waiting["ns/j"] == Waiting(
        key="ns/j",
        category=CAPACITY,
        reason=(
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 2 vCPU, 1Gi memory; "
            "free: cpu-ce 1 of 8 vCPU, 3Gi of 16Gi memory; gpu-ce DISABLED"
        ),
        since=NOW,
    )


def test_insufficient_capacity_names_missing_environments_and_unlimited_memory_and_gpus() -> None:
    decisions = run(
        [env("gpu-ce", cpu=8, gpus=1)],
        [queue("q", ["gpu-ce", "gone"])],
        [job("ns/a", at=1, gpus=1), job("ns/b", at=2, memory=Gi, gpus=1)],
    )
    assert decisions.waiting["ns/b"].reason == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU, 1Gi memory, 1 GPU; "
        "free: gpu-ce 7 of 8 vCPU, unlimited memory, 0 of 1 GPU; gone does not exist"
    )


def test_insufficient_capacity_reports_free_amounts_after_the_pass() -> None:
    decisions = run(
        [env("ce", cpu=4)],
        [queue("q", ["ce"])],
        [job("ns/big", at=1, cpu=3), job("ns/small", at=2, cpu=2), job("ns/small2", at=3, cpu=2)],
        usage={"ce": Resources(cpu_milli=2000)},
    )
    assert placed_keys(decisions) == ["ns/small"]
    assert decisions.waiting["ns/big"].reason.endswith("free: ce 0 of 4 vCPU")


def test_a_job_that_can_never_fit_gets_max_resource_even_while_the_environment_is_busy() -> None:
    decisions = run(
        [env("cpu-ce", cpu=16), env("big-ce", cpu=24)],
        [queue("q", ["cpu-ce", "big-ce"])],
        [job("ns/huge", cpu=32)],
        usage={"cpu-ce": Resources(16000), "big-ce": Resources(24000)},
    )
    assert decisions.waiting["ns/huge"] == Waiting(
        key="ns/huge",
        category=MAX_RESOURCE,
        reason=(
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - needs 32 vCPU; "
            "cpu-ce holds at most 16 vCPU; big-ce holds at most 24 vCPU"
        ),
        since=NOW,
    )


def test_max_resource_names_each_dimension_too_big_somewhere_and_missing_environments() -> None:
    decisions = run(
        [env("wide", cpu=64, memory=8 * Gi), env("tall", cpu=4, memory=None, enabled=False)],
        [queue("q", ["wide", "tall", "gone"])],
        [job("ns/j", cpu=16, memory=32 * Gi)],
    )
    assert decisions.waiting["ns/j"].reason == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - needs 16 vCPU, 32Gi memory; "
        "wide holds at most 64 vCPU, 8Gi memory; tall (DISABLED) holds at most 4 vCPU, unlimited memory; "
        "gone does not exist"
    )


def test_max_resource_counts_too_few_gpus() -> None:
    decisions = run(
        [env("gpu-ce", cpu=64, gpus=4)],
        [queue("q", ["gpu-ce"])],
        [job("ns/j", gpus=8)],
    )
    assert decisions.waiting["ns/j"].reason == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - needs 8 GPUs; gpu-ce holds at most 4 GPUs"
    )


def test_fitting_only_a_disabled_environment_is_a_capacity_wait_not_max_resource() -> None:
    decisions = run(
        [env("small", cpu=2), env("big", cpu=32, enabled=False)],
        [queue("q", ["small", "big"])],
        [job("ns/j", cpu=16)],
    )
    assert decisions.waiting["ns/j"].category == CAPACITY
    assert decisions.waiting["ns/j"].reason.endswith("free: small 2 of 2 vCPU; big DISABLED")


def test_too_big_for_every_environment_is_max_resource_even_when_all_are_disabled() -> None:
    decisions = run([env("ce", cpu=2, enabled=False)], [queue("q", ["ce"])], [job("ns/j", cpu=4)])
    assert decisions.waiting["ns/j"].category == MAX_RESOURCE


def test_gpu_job_on_a_cpu_only_queue_is_a_job_resource_requirement() -> None:
    decisions = run(
        [env("cpu-ce", cpu=4)],
        [queue("q", ["cpu-ce"])],
        [job("ns/train", cpu=64, gpus=1)],  # too big too: the missing GPU kind is reported first
    )
    assert decisions.waiting["ns/train"] == Waiting(
        key="ns/train",
        category=JOB_RESOURCE_REQUIREMENT,
        reason=(
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - needs 1 GPU; "
            "no compute environment of queue 'q' provides GPUs (cpu-ce: 0 GPUs)"
        ),
        since=NOW,
    )


def test_job_resource_requirement_names_every_environment() -> None:
    decisions = run(
        [env("a"), env("b", enabled=False)],
        [queue("q", ["a", "b", "gone"])],
        [job("ns/j", gpus=2)],
    )
    assert decisions.waiting["ns/j"].reason == (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - needs 2 GPUs; no compute environment of queue 'q' "
        "provides GPUs (a: 0 GPUs, b (DISABLED): 0 GPUs; gone does not exist)"
    )


def test_gpu_job_waits_for_capacity_when_some_environment_has_gpus() -> None:
    decisions = run(
        [env("cpu-ce"), env("gpu-ce", gpus=1)],
        [queue("q", ["cpu-ce", "gpu-ce"])],
        [job("ns/a", at=1, gpus=1), job("ns/b", at=2, gpus=1)],
    )
    assert placed_in(decisions) == {"ns/a": "gpu-ce"}
    assert decisions.waiting["ns/b"].category == CAPACITY


def test_queue_whose_environments_are_all_disabled_is_unavailable() -> None:
    decisions = run(
        [env("a", enabled=False)],
        [queue("q", ["a", "b"])],
        [job("ns/j")],
    )
    assert decisions.placements == []
    assert decisions.waiting["ns/j"] == Waiting(
        key="ns/j",
        category=ENVIRONMENT_UNAVAILABLE,
        reason="MISCONFIGURATION:COMPUTE_ENVIRONMENT_UNAVAILABLE - compute environment 'a' is DISABLED; "
        "'b' does not exist",
        since=NOW,
    )


def test_queue_whose_environments_do_not_exist_is_unavailable() -> None:
    decisions = run([], [queue("q", ["gone"])], [job("ns/j")])
    assert decisions.waiting["ns/j"].reason == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_UNAVAILABLE - compute environment 'gone' does not exist"
    )


def test_queue_without_environments_is_unavailable() -> None:
    decisions = run([env("ce")], [queue("q", [])], [job("ns/j")])
    assert decisions.waiting["ns/j"].reason == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_UNAVAILABLE - job queue 'q' has no compute environments"
    )


def test_job_of_a_missing_queue_waits_and_does_not_disturb_others() -> None:
    decisions = run(
        [env("ce", cpu=1)], [queue("q", ["ce"])], [job("ns/lost", "nope", at=0), job("ns/ok", at=1)]
    )
    assert placed_keys(decisions) == ["ns/ok"]
    assert decisions.waiting["ns/lost"] == Waiting(
        "ns/lost",
        QUEUE_NOT_FOUND,
        "MISCONFIGURATION:JOB_QUEUE_NOT_FOUND - job queue 'nope' does not exist",
        NOW,
    )


def test_every_job_is_either_placed_waiting_or_cancelled() -> None:
    jobs = [job(f"ns/j{i}", at=i, cpu=1 + i % 3) for i in range(30)]
    decisions = run([env("a", cpu=10), env("b", cpu=5)], [queue("q", ["a", "b"])], jobs)
    placed = set(placed_keys(decisions))
    assert placed.isdisjoint(decisions.waiting)
    assert placed | set(decisions.waiting) == {j.key for j in jobs}


# --- Arrays ----------------------------------------------------------------------


def test_array_places_as_many_children_as_fit_and_waits_for_the_rest() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("q", ["ce"])],
        [job("ns/array", cpu=2, count=5)],
        usage={"ce": Resources(2000)},
    )
    assert decisions.placements == [Placement("ns/array", "ce", 3)]
    assert decisions.usage["ce"] == Resources(8000)
    assert decisions.waiting["ns/array"].reason == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - 2 of 5 children wait, each needs 2 vCPU; "
        "free: ce 0 of 8 vCPU"
    )


def test_array_lives_in_one_environment() -> None:
    decisions = run(
        [env("full", cpu=1), env("a", cpu=4), env("b", cpu=100)],
        [queue("q", ["full", "a", "b"])],
        [job("ns/array", cpu=2, count=10)],
        usage={"full": Resources(1000)},
    )
    assert decisions.placements == [Placement("ns/array", "a", 2)]
    assert decisions.usage["b"].is_zero()


def test_array_is_limited_by_every_dimension() -> None:
    decisions = run(
        [env("ce", cpu=100, memory=10 * Gi, gpus=3)],
        [queue("q", ["ce"])],
        [job("ns/mem", at=1, cpu=1, memory=3 * Gi, count=10), job("ns/gpu", at=2, cpu=1, gpus=1, count=10)],
    )
    assert decisions.placements == [Placement("ns/mem", "ce", 3), Placement("ns/gpu", "ce", 3)]


def test_array_that_fits_entirely_does_not_wait() -> None:
    decisions = run([env("ce", cpu=8)], [queue("q", ["ce"])], [job("ns/array", cpu=1, count=8)])
    assert decisions.placements == [Placement("ns/array", "ce", 8)]
    assert decisions.waiting == {}


def test_array_without_room_says_how_many_children_wait() -> None:
    decisions = run(
        [env("ce", cpu=8)],
        [queue("q", ["ce"])],
        [job("ns/array", cpu=2, count=5)],
        usage={"ce": Resources(8000)},
    )
    assert decisions.placements == []
    assert decisions.waiting["ns/array"].reason == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - 5 children wait, each needs 2 vCPU; free: ce 0 of 8 vCPU"
    )


def test_pinned_array_places_only_in_its_environment() -> None:
    decisions = run(
        [env("first", cpu=100), env("bound", cpu=4)],
        [queue("q", ["first", "bound"])],
        [job("ns/array", cpu=1, count=6, pinned_environment="bound")],
        usage={"bound": Resources(1000)},
    )
    assert decisions.placements == [Placement("ns/array", "bound", 3)]
    assert decisions.waiting["ns/array"].reason.endswith("free: bound 0 of 4 vCPU")


def test_pinned_array_whose_environment_is_disabled_is_unavailable() -> None:
    decisions = run(
        [env("first"), env("bound", enabled=False)],
        [queue("q", ["first", "bound"])],
        [job("ns/array", count=2, pinned_environment="bound")],
    )
    assert decisions.placements == []
    assert decisions.waiting["ns/array"].reason == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_UNAVAILABLE - compute environment 'bound' is DISABLED"
    )


def test_arrays_and_jobs_together_never_exceed_the_quota() -> None:
    rng = random.Random(7)
    jobs = [
        job(
            f"ns/j{i}",
            at=rng.random(),
            cpu=rng.choice([0.5, 1, 2, 3]),
            memory=rng.choice([0, Gi]),
            count=rng.randint(1, 6),
        )
        for i in range(200)
    ]
    environments = [env("a", cpu=16, memory=8 * Gi), env("b", cpu=7, memory=None)]
    decisions = run(environments, [queue("q", ["a", "b"])], jobs, usage={"a": Resources(3000, Gi)})
    by_key = {j.key: j for j in jobs}
    totals = {"a": Resources(3000, Gi), "b": Resources()}
    for placement in decisions.placements:
        assert 1 <= placement.count <= by_key[placement.key].count
        totals[placement.environment] += by_key[placement.key].request.times(placement.count)
    assert totals == decisions.usage
    for environment in environments:
        assert Resources().fits_within(environment.capacity, decisions.usage[environment.name])


def test_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="count must be at least 1"):
        job("ns/j", count=0)


# --- Waiting since -----------------------------------------------------------------


def test_waiting_since_is_kept_while_the_reason_category_is_unchanged() -> None:
    decisions = run(
        [env("ce", cpu=1)],
        [queue("q", ["ce"])],
        [job("ns/j", cpu=2, blocked_category=MAX_RESOURCE, blocked_since=10.0)],
    )
    assert decisions.waiting["ns/j"].since == 10.0


def test_waiting_since_resets_when_the_reason_category_changes() -> None:
    decisions = run(
        [env("ce", cpu=1)],
        [queue("q", ["ce"])],
        [job("ns/j", cpu=1, blocked_category=MAX_RESOURCE, blocked_since=10.0)],
        usage={"ce": Resources(1000)},
    )
    assert decisions.waiting["ns/j"].category == CAPACITY
    assert decisions.waiting["ns/j"].since == NOW


def test_waiting_since_starts_now_for_a_job_that_never_waited() -> None:
    decisions = run([env("ce", cpu=1)], [queue("q", ["ce"])], [job("ns/j", cpu=2)])
    assert decisions.waiting["ns/j"].since == NOW


# --- Time-limit actions ------------------------------------------------------------


def _limited_queue(*rules: TimeLimitAction) -> Queue:
    return queue("q", ["ce"], time_limits=rules)


def test_job_is_cancelled_once_it_waited_exactly_max_seconds_with_the_reason() -> None:
    rule = TimeLimitAction(reason=MAX_RESOURCE, max_seconds=600)
    decisions = run(
        [env("ce", cpu=1)],
        [_limited_queue(rule)],
        [job("ns/j", cpu=2, blocked_category=MAX_RESOURCE, blocked_since=NOW - 600)],
    )
    assert decisions.cancellations == [
        Cancellation(
            "ns/j",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - cancelled by a "
            "jobStateTimeLimitActions rule of job queue 'q' after 600 seconds RUNNABLE",
        )
    ]
    assert decisions.waiting == {}
    assert decisions.placements == []


def test_job_is_not_cancelled_before_max_seconds() -> None:
    rule = TimeLimitAction(reason=MAX_RESOURCE, max_seconds=600)
    decisions = run(
        [env("ce", cpu=1)],
        [_limited_queue(rule)],
        [job("ns/j", cpu=2, blocked_category=MAX_RESOURCE, blocked_since=NOW - 599.5)],
    )
    assert decisions.cancellations == []
    assert decisions.waiting["ns/j"].since == NOW - 599.5


def test_zero_second_limit_cancels_at_once() -> None:
    rule = TimeLimitAction(reason=CAPACITY, max_seconds=0)
    decisions = run([env("ce", cpu=1)], [_limited_queue(rule)], [job("ns/j")], usage={"ce": Resources(1000)})
    assert [c.key for c in decisions.cancellations] == ["ns/j"]
    assert decisions.cancellations[0].reason.startswith(CAPACITY + " - ")


def test_only_a_rule_for_the_current_category_cancels() -> None:
    rule = TimeLimitAction(reason=CAPACITY, max_seconds=60)
    decisions = run(
        [env("ce", cpu=1)],
        [_limited_queue(rule)],
        [job("ns/j", cpu=2, blocked_category=MAX_RESOURCE, blocked_since=0.0)],
    )
    assert decisions.cancellations == []
    assert decisions.waiting["ns/j"].category == MAX_RESOURCE


def test_a_changed_category_restarts_the_time_limit_clock() -> None:
    rule = TimeLimitAction(reason=CAPACITY, max_seconds=60)
    decisions = run(
        [env("ce", cpu=1)],
        [_limited_queue(rule)],
        [job("ns/j", blocked_category=ENVIRONMENT_UNAVAILABLE, blocked_since=0.0)],
        usage={"ce": Resources(1000)},
    )
    assert decisions.cancellations == []
    assert decisions.waiting["ns/j"].since == NOW


def test_matching_rule_is_found_among_several() -> None:
    rules = (TimeLimitAction(CAPACITY, 3600), TimeLimitAction(JOB_RESOURCE_REQUIREMENT, 10))
    decisions = run(
        [env("ce", cpu=1)],
        [_limited_queue(*rules)],
        [job("ns/j", gpus=1, blocked_category=JOB_RESOURCE_REQUIREMENT, blocked_since=NOW - 10)],
    )
    assert [c.key for c in decisions.cancellations] == ["ns/j"]
    assert decisions.cancellations[0].reason.startswith(JOB_RESOURCE_REQUIREMENT + " - ")


def test_partially_placed_array_is_never_cancelled() -> None:
    rule = TimeLimitAction(reason=CAPACITY, max_seconds=1)
    decisions = run(
        [env("ce", cpu=2)],
        [_limited_queue(rule)],
        [job("ns/array", cpu=1, count=5, blocked_category=CAPACITY, blocked_since=0.0)],
    )
    assert decisions.cancellations == []
    assert decisions.placements == [Placement("ns/array", "ce", 2)]
    assert decisions.waiting["ns/array"].since == 0.0


def test_waiting_array_without_placements_can_be_cancelled() -> None:
    rule = TimeLimitAction(reason=CAPACITY, max_seconds=1)
    decisions = run(
        [env("ce", cpu=2)],
        [_limited_queue(rule)],
        [job("ns/array", cpu=1, count=5, blocked_category=CAPACITY, blocked_since=0.0)],
        usage={"ce": Resources(2000)},
    )
    assert [c.key for c in decisions.cancellations] == ["ns/array"]


def test_cancelled_jobs_free_nothing_and_others_still_place() -> None:
    rule = TimeLimitAction(reason=MAX_RESOURCE, max_seconds=5)
    decisions = run(
        [env("ce", cpu=2)],
        [_limited_queue(rule)],
        [job("ns/huge", at=1, cpu=4, blocked_category=MAX_RESOURCE, blocked_since=0.0), job("ns/ok", at=2)],
    )
    assert [c.key for c in decisions.cancellations] == ["ns/huge"]
    assert placed_keys(decisions) == ["ns/ok"]
    assert decisions.usage["ce"] == Resources(1000)


# --- Usage and determinism ---------------------------------------------------------


def test_decisions_usage_adds_placements_to_admitted_usage_for_every_environment() -> None:
    admitted = {"a": Resources(1000, Gi)}
    decisions = run(
        [env("a", cpu=4), env("b", cpu=4), env("idle")],
        [queue("q", ["a", "b"])],
        [job("ns/x", at=1, cpu=3, memory=Gi), job("ns/y", at=2, cpu=2, gpus=0, count=2)],
        usage=admitted,
    )
    assert decisions.usage == {
        "a": Resources(4000, 2 * Gi),
        "b": Resources(4000),
        "idle": Resources(),
    }
    assert admitted == {"a": Resources(1000, Gi)}


def test_same_snapshot_and_clock_give_the_same_decisions_whatever_the_job_order() -> None:
    rng = random.Random(42)
    jobs = [
        job(f"ns/j{i}", rng.choice(["hi", "lo"]), at=float(rng.randint(0, 20)), cpu=rng.choice([1, 2, 5, 40]))
        for i in range(300)
    ]
    environments = [env("a", cpu=20), env("b", cpu=10, enabled=False), env("c", cpu=30)]
    queues = [queue("hi", ["a", "b"], priority=5), queue("lo", ["c", "a", "gone"], priority=1)]
    first = run(environments, queues, jobs)
    assert run(environments, queues, jobs) == first
    shuffled = list(jobs)
    rng.shuffle(shuffled)
    assert run(environments, queues, shuffled) == first


def test_one_hundred_thousand_jobs_schedule_with_correct_counts() -> None:
    environments = [env("a", cpu=64, memory=256 * Gi), env("b", cpu=32, gpus=4), env("off", enabled=False)]
    queues = [
        queue("hi", ["a", "b", "off"], priority=10),
        queue("lo", ["b", "a"], priority=1, time_limits=[TimeLimitAction(CAPACITY, 60)]),
    ]
    jobs = [
        job(f"ns/j{i:06}", "hi" if i % 2 else "lo", at=float(i), cpu=1, memory=Gi if i % 2 else 0)
        for i in range(100_000)
    ]
    decisions = run(environments, queues, jobs)
    assert len(decisions.placements) == 96
    assert len(decisions.waiting) == 100_000 - 96
    assert decisions.cancellations == []
    # hi goes first and fills a (64) then b (32) before any lo job starts
    assert all(p.key.endswith(("1", "3", "5", "7", "9")) for p in decisions.placements)
    assert decisions.usage["a"] == Resources(64000, 64 * Gi)
    assert decisions.usage["b"] == Resources(32000, 32 * Gi)


# --- A deep queue: only what changed is reported -------------------------------------------


def test_a_job_already_waiting_for_the_same_reason_since_the_same_time_is_left_out() -> None:
    first = run([env("ce", cpu=1)], [queue("q", ["ce"])], [job("a", cpu=2)])
    told = first.waiting["a"]
    again = run([env("ce", cpu=1)], [queue("q", ["ce"])],
                [job("a", cpu=2, blocked_category=told.category, blocked_since=told.since, reason=told.reason)],
                now=NOW + 60)
    assert again.waiting == {}


def test_a_changed_reason_is_reported_with_the_time_it_started_waiting() -> None:
    old = job("a", at=1.0, cpu=2, blocked_category=CAPACITY, blocked_since=5.0, reason="an older text")
    decisions = run([env("ce", cpu=3)], [queue("q", ["ce"])], [job("b", cpu=2), old])
    assert decisions.waiting["a"].since == 5.0
    assert decisions.waiting["a"].reason.startswith(CAPACITY)


def test_a_changed_category_is_reported_from_now() -> None:
    old = job("a", cpu=2, blocked_category=CAPACITY, blocked_since=5.0, reason="any")
    decisions = run([env("ce", cpu=1)], [queue("q", ["ce"])], [old])
    assert decisions.waiting["a"].category == MAX_RESOURCE
    assert decisions.waiting["a"].since == NOW


def test_a_job_left_out_as_unchanged_is_still_cancelled_by_a_time_limit() -> None:
    rule = TimeLimitAction(CAPACITY, 60)
    first = run([env("ce", cpu=1)], [_limited_queue(rule)], [job("blocker"), job("a", at=1.0)])
    told = first.waiting["a"]
    later = run([env("ce", cpu=1)], [_limited_queue(rule)],
                [job("blocker"), job("a", at=1.0, blocked_category=told.category, blocked_since=told.since,
                                     reason=told.reason)], now=told.since + 61)
    assert [c.key for c in later.cancellations] == ["a"]


def test_jobs_sharing_one_request_object_in_different_queues_get_their_own_reasons() -> None:
    shared = Resources(2000, 0, 0)
    jobs = [Runnable(f"{name}-{i}", name, float(i), shared) for i in range(3) for name in ("q1", "q2")]
    decisions = run([env("small", cpu=1), env("off", enabled=False)],
                    [queue("q1", ["small"]), queue("q2", ["off"])], jobs)
    assert {w.category for k, w in decisions.waiting.items() if k.startswith("q1")} == {MAX_RESOURCE}
    assert {w.category for k, w in decisions.waiting.items() if k.startswith("q2")} == {ENVIRONMENT_UNAVAILABLE}
