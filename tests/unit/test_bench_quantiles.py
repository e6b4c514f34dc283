"""The bench reads scheduling-cycle quantiles from the operator's histogram, interpolated inside a bucket."""

from __future__ import annotations

from barge.bench.run import cycle_quantiles

PREFIX = "barge_scheduling_cycle_seconds"


def scrape(buckets: dict[str, float], count: float, total: float) -> dict[str, float]:
    values = {f'{PREFIX}_bucket{{le="{le}"}}': n for le, n in buckets.items()}
    return values | {f"{PREFIX}_count": count, f"{PREFIX}_sum": total}


def test_quantiles_are_interpolated_within_their_bucket_and_only_count_the_window() -> None:
    before = scrape({"0.1": 5, "0.15": 5, "0.2": 5, "+Inf": 5}, 5, 0.2)
    after = scrape({"0.1": 5, "0.15": 9, "0.2": 15, "+Inf": 15}, 15, 1.7)
    figures = cycle_quantiles(before, after)
    assert figures["p4_cycles_observed"] == 10
    assert figures["p4_cycle_p50_ms"] == 158.3  # 5th of 10 falls in (150, 200] ms, 1 of its 6
    assert figures["p4_cycle_p95_ms"] == 195.8
    assert figures["p4_cycle_mean_ms"] == 150.0


def test_a_quantile_beyond_the_last_bound_reports_that_bound() -> None:
    figures = cycle_quantiles({}, scrape({"5": 1, "+Inf": 3}, 3, 30.0))
    assert figures["p4_cycle_p95_ms"] == 5000.0
