"""The managed bench step's packing figure: a job's vCPU-seconds are its request times its run time
(status.startedAt to stoppedAt); jobs that never ran, or still run, count nothing."""

from typing import Any

from barge.bench.managed import used_vcpu_seconds


def job(definition: str, started: str | None, stopped: str | None) -> dict[str, Any]:
    # kwok's terminated container state starts when it finishes: the attempt's times are not used
    attempts = [{"startedAt": "2026-01-01T00:00:15Z", "stoppedAt": "2026-01-01T00:00:15Z"}]
    return {"spec": {"jobDefinition": definition},
            "status": {"startedAt": started, "stoppedAt": stopped, "attempts": attempts}}


def test_used_vcpu_seconds_is_request_times_the_run_time() -> None:
    jobs = [job("two", "2026-01-01T00:00:10Z", "2026-01-01T00:00:15.5Z"),
            job("half", "2026-01-01T00:00:10.000000Z", "2026-01-01T00:00:20Z"),
            job("half", "2026-01-01T00:00:10Z", None),  # still running: not counted
            {"spec": {"jobDefinition": "two"}, "status": {}}]
    assert used_vcpu_seconds(jobs, {"two": 2000, "half": 500}) == 2 * 5.5 + 0.5 * 10
