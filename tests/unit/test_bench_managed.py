"""The managed bench step's packing figure: a job's vCPU-seconds are its request times its last
attempt's run time; jobs that never ran count nothing."""

from barge.bench.managed import used_vcpu_seconds


def job(definition: str, started: str | None, stopped: str | None) -> dict:
    attempts = [{"startedAt": "2026-01-01T00:00:00Z", "stoppedAt": "2026-01-01T00:00:01Z"},
                {"startedAt": started, "stoppedAt": stopped}]
    return {"spec": {"jobDefinition": definition}, "status": {"attempts": attempts}}


def test_used_vcpu_seconds_is_request_times_the_last_attempts_run_time() -> None:
    jobs = [job("two", "2026-01-01T00:00:10Z", "2026-01-01T00:00:15.5Z"),
            job("half", "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"),
            job("half", "2026-01-01T00:00:10Z", None),  # still running: not counted
            {"spec": {"jobDefinition": "two"}, "status": {}}]
    assert used_vcpu_seconds(jobs, {"two": 2000, "half": 500}) == 2 * 5.5 + 0.5 * 10
