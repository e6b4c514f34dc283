"""A smoke run of every benchmark step at tiny sizes, so `barge bench` never rots."""

from __future__ import annotations

import pytest

from barge.bench import run as bench
from tests.e2e.conftest import OperatorProcess
from tests.e2e.kube import Cluster


def test_every_benchmark_step_runs_and_reports_its_figures(crds: Cluster,
                                                           operator_process: OperatorProcess | None) -> None:
    if operator_process is None or not crds.local:
        pytest.skip("runs its own operator on the project's local cluster")
    operator_process.stop()  # one operator at a time on a cluster
    bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
    runner = bench.Bench(crds.kubeconfig, bench.SMOKE)
    steps = [runner.ceiling, runner.p1_dispatch, runner.p2_admission, runner.p3_array,
             lambda: runner.p4_deep_queue(observe_seconds=5), runner.p5_dependencies]
    try:
        for step in steps:
            runner.start_operator()
            try:
                step()
            finally:
                runner.stop_operator()
    finally:
        operator_process.start()
    r = runner.results
    for key in ("ceiling_pods_per_s", "p1_dispatch_ratio", "p1_barge_jobs_per_s", "p1_raw_jobs_per_s", "p2_total_s",
                "p1_pod_dispatch_ratio_while_submitting", "p1_dispatch_ratio_while_submitting",
                "p2_admitted_per_s", "p3_status_bytes", "p3_seconds_to_full_parallelism", "p4_rss_mb",
                "p4_cycle_p50_ms", "p4_cycle_p95_ms", "p5_release_p50_s", "p5_release_p95_s"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, (key, r.get(key))
    assert r["p3_objects_created"] == 1, "an array is one Kubernetes Job"
    # Each window's writes hold at least what its jobs needed: the plain client's Job creates; every
    # BatchJob and the Job Barge made of it.
    windows = r["p1_apiserver_writes_per_job_while_submitting"]
    assert windows["raw"]["jobs"] >= 1 and windows["raw"]["total"] >= windows["raw"]["jobs"]
    assert windows["barge"]["batchjobs"] >= 1 and windows["barge"]["jobs"] >= 1
    assert r["p1_cpu_ms_per_job_while_submitting"]["barge"]["barge-operator"] > 0
    assert r["p4_cycles_observed"] > 0
    print("\n" + bench.table(r))


def test_deep_queue_benchmark_on_a_fair_share_queue_reports_its_figures(
        crds: Cluster, operator_process: OperatorProcess | None) -> None:
    if operator_process is None or not crds.local:
        pytest.skip("runs its own operator on the project's local cluster")
    operator_process.stop()
    bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
    runner = bench.Bench(crds.kubeconfig, bench.SMOKE)
    try:
        runner.start_operator()
        try:
            runner.p4_deep_queue(observe_seconds=5, shares=5)
        finally:
            runner.stop_operator()
    finally:
        operator_process.start()
    r = runner.results
    assert r["p4fs_shares"] == 5 and r["p4fs_jobs"] == bench.SMOKE.p4_jobs
    for key in ("p4fs_rss_mb", "p4fs_cycle_p50_ms", "p4fs_cycle_p95_ms"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, (key, r.get(key))
    assert r["p4fs_cycles_observed"] > 0
    assert "p4_rss_mb" not in r  # the FIFO figures are not overwritten


def test_p2_side_by_side_runs_plain_jobs_barge_and_kueue_within_the_quota(
        crds: Cluster, operator_process: OperatorProcess | None) -> None:
    if operator_process is None or not crds.local:
        pytest.skip("runs its own operator and Kueue on the project's local cluster")
    operator_process.stop()
    bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
    runner = bench.Bench(crds.kubeconfig, bench.SMOKE)
    try:
        runner.p2_side_by_side()
    finally:
        runner.stop_operator()
        operator_process.start()
    r = runner.results
    n = bench.SMOKE.p2side_jobs
    assert r["p2side_jobs"] == n
    for system in ("plain", "barge", "kueue"):
        assert len(r[f"p2side_{system}_total_s_runs"]) == bench.SMOKE.p2side_repeats
        assert r[f"p2side_{system}_quota_exceeded"] is False
        assert 0 < r[f"p2side_{system}_peak_quota_cpu"] <= 50
        # every job is at least one Job and one pod created: writes the API server counted
        assert r[f"p2side_{system}_writes_per_job_by_resource"]["jobs"] >= 1, system
        assert r[f"p2side_{system}_writes_per_job_by_resource"]["pods"] >= 1, system
        assert r[f"p2side_{system}_cpu_ms_per_job"]["kube-apiserver"] > 0
    assert r["p2side_kueue_writes_per_job_by_resource"]["workloads"] >= 1  # Kueue admitted them
    assert r["p2side_barge_writes_per_job_by_resource"]["batchjobs"] >= 1
    assert "kueue" in r["p2side_kueue_cpu_ms_per_job"] and "barge-operator" in r["p2side_barge_cpu_ms_per_job"]
    assert r["p2_barge_over_plain"] > 0 and r["p2_barge_over_kueue"] > 0
    from barge.dev import cluster

    assert not cluster.kueue_running(), "the step stops Kueue when its phase ends"
    print("\n" + bench.table(r))
