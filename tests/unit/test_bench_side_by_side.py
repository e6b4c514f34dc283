"""P2 side by side: API writes from the API server's metrics, the quota readings, and the ratios."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from barge.bench import run as bench
from barge.bench.side_by_side import PhaseRun, Sample, api_writes, cpu_millis, delta, figures, sample, writes_per_job
from barge.dev import cluster


def counter(verb: str, resource: str, value: float, code: str = "200", group: str = "",
            subresource: str = "") -> str:
    return (f'apiserver_request_total{{code="{code}",component="apiserver",dry_run="",group="{group}",'
            f'resource="{resource}",scope="resource",subresource="{subresource}",verb="{verb}",version="v1"}} {value}')


METRICS = "\n".join([
    "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, ...",
    "# TYPE apiserver_request_total counter",
    counter("POST", "jobs", 120, code="201", group="batch"),
    counter("POST", "pods", 30, code="403"),
    counter("POST", "pods", 100, code="201"),
    counter("PATCH", "pods", 200, subresource="status"),
    counter("LIST", "pods", 999),
    counter("GET", "pods", 999),
    counter("WATCH", "pods", 5, code="0"),
    counter("PUT", "leases", 77, group="coordination.k8s.io"),
    counter("PATCH", "nodes", 12, subresource="status"),
    counter("APPLY", "workloads", 8, group="kueue.x-k8s.io", subresource="status"),
    counter("DELETE", "namespaces", 1),
    'apiserver_request_duration_seconds_count{verb="POST",resource="pods"} 4000',
]) + "\n"


def test_writes_count_every_write_verb_and_code_but_no_read_and_no_node_heartbeat() -> None:
    assert api_writes(METRICS) == {"jobs": 120, "pods": 130, "pods/status": 200, "workloads/status": 8,
                                   "namespaces": 1}


def test_the_writes_of_a_phase_are_the_difference_of_two_readings() -> None:
    before = {"jobs": 100.0, "pods": 50.0}
    after = {"jobs": 300.0, "pods": 50.0, "events": 7.0}
    assert delta(before, after) == {"events": 7.0, "jobs": 200.0}


def test_writes_per_job_are_the_total_and_each_resource_over_the_jobs() -> None:
    assert writes_per_job({"jobs": 300.0, "pods": 600.0, "pods/binding": 300.0}, 300) == {
        "total": 4.0, "jobs": 1.0, "pods": 2.0, "pods/binding": 1.0}


@pytest.mark.parametrize(("quantity", "millis"), [("500m", 500), ("1", 1000), ("0.5", 500), ("2.25", 2250),
                                                  ("10m", 10)])
def test_cpu_quantities(quantity: str, millis: int) -> None:
    assert cpu_millis(quantity) == millis


def pod(phase: str | None, *cpus: str) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": {"requests": {"cpu": cpu}}}
                                    for i, cpu in enumerate(cpus)]},
            "status": {"phase": phase} if phase else {}}


def test_a_reading_counts_running_pods_and_the_cpu_every_live_pod_holds() -> None:
    pods = [pod("Running", "500m"), pod("Running", "250m", "250m"), pod("Pending", "1"), pod(None, "100m"),
            pod("Succeeded", "8"), pod("Failed", "8"), {"spec": {"containers": [{"name": "x"}]}, "status": {}}]
    assert sample(pods) == Sample(running=2, cpu_m=2100)


@given(st.lists(st.tuples(st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]),
                          st.integers(min_value=1, max_value=4000))))
def test_a_reading_never_counts_a_finished_pod(pods: list[tuple[str, int]]) -> None:
    reading = sample([pod(phase, f"{m}m") for phase, m in pods])
    assert reading.cpu_m == sum(m for phase, m in pods if phase in ("Pending", "Running"))
    assert reading.running == sum(phase == "Running" for phase, _ in pods)


def phase(system: str, seconds: float, peak_cpu_m: int = 50_000, writes: float = 1000.0) -> PhaseRun:
    return PhaseRun(system, seconds, {"pods": writes / 2, "jobs": writes / 2},
                    {"kube-apiserver": seconds, "bench-client": 1.0},
                    [Sample(10, 1000), Sample(100, peak_cpu_m), Sample(40, 20_000)])


def test_ratios_are_of_median_times_and_the_figures_of_each_system() -> None:
    runs = [phase("plain", 100), phase("barge", 150), phase("kueue", 300),
            phase("plain", 120), phase("barge", 130), phase("kueue", 200),
            phase("plain", 110), phase("barge", 400, writes=4000), phase("kueue", 250)]
    result = figures(runs, jobs=100, quota_cpu=50)
    assert result["p2_barge_over_plain"] == 1.364  # 150 / 110
    assert result["p2_barge_over_kueue"] == 0.6  # 150 / 250
    assert result["p2side_barge_total_s_runs"] == [150, 130, 400]
    assert result["p2side_plain_admitted_per_s"] == round(100 / 110, 2)
    assert result["p2side_barge_writes_per_job"] == 10.0  # the median phase, not the mean
    assert result["p2side_barge_writes_per_job_by_resource"] == {"jobs": 10.0, "pods": 10.0}  # the mean
    assert result["p2side_kueue_peak_running_pods"] == 100
    assert result["p2side_kueue_peak_quota_cpu"] == 50.0
    assert result["p2side_kueue_quota_exceeded"] is False
    assert result["p2side_plain_cpu_ms_per_job"] == {"bench-client": 1.0, "kube-apiserver": 110.0}


def test_one_reading_over_the_quota_is_reported_as_exceeded() -> None:
    runs = [phase("plain", 100), phase("barge", 100, peak_cpu_m=50_500), phase("kueue", 100)]
    result = figures(runs, jobs=10, quota_cpu=50)
    assert result["p2side_barge_quota_exceeded"] is True
    assert result["p2side_plain_quota_exceeded"] is False
    assert "MISSED" in bench.meets("p2side_barge_quota_exceeded", True)
    assert "met" in bench.meets("p2side_plain_quota_exceeded", False)


def test_without_kueue_phases_there_is_no_kueue_ratio() -> None:
    result = figures([phase("plain", 100), phase("barge", 80)], jobs=10)
    assert result["p2_barge_over_plain"] == 0.8
    assert "p2_barge_over_kueue" not in result


def test_the_targets_of_the_ratios() -> None:
    assert bench.meets("p2_barge_over_plain", 1.0).startswith("met")
    assert bench.meets("p2_barge_over_plain", 1.01).startswith("MISSED")
    assert bench.meets("p2_barge_over_kueue", 0.51).startswith("MISSED")


def test_kueue_runs_with_no_webhook_called_no_cert_manager_and_only_on_loopback(tmp_path: Any) -> None:
    config = cluster.kueue_config(tmp_path)
    assert config["internalCertManagement"] == {"enable": False}
    assert config["manageJobsWithoutQueueName"] is False
    assert config["integrations"] == {"frameworks": ["batch/job"]}
    assert config["health"]["healthProbeBindAddress"].startswith("127.0.0.1:")
    assert config["webhook"]["host"] == "127.0.0.1"
    assert config["metrics"]["bindAddress"] == "0"
    assert config["featureGates"]["VisibilityOnDemand"] is False  # it would listen on every address
