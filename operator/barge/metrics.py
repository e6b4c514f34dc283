"""Prometheus metrics. Names barge_*, base units, no per-job label values."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

JOBS = Gauge("barge_jobs", "BatchJobs per queue and state", ["queue", "state"])
SUBMITTED = Counter("barge_jobs_submitted_total", "BatchJobs admitted into a queue", ["queue"])
SUCCEEDED = Counter("barge_jobs_succeeded_total", "BatchJobs that SUCCEEDED", ["queue"])
FAILED = Counter("barge_jobs_failed_total", "BatchJobs that FAILED", ["queue"])
RETRIED = Counter("barge_job_retries_total", "Failed attempts sent back to RUNNABLE", ["queue"])
WAIT_SECONDS = Histogram(
    "barge_job_wait_seconds", "Time from SUBMITTED to RUNNING", ["queue"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
CYCLE_SECONDS = Histogram(
    "barge_scheduling_cycle_seconds", "Duration of one scheduling pass (decisions only)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5),
)
PLACEMENTS = Counter("barge_placements_total", "Attempts placed on a compute environment", ["compute_environment"])
PLACEMENTS_RECOVERED = Counter(
    "barge_placements_recovered_total",
    "Placements read back from an existing Kubernetes Job because the BatchJob's status did not record them "
    "(an operator stopped between creating the Job and writing the status)")
QUOTA_LIMIT = Gauge("barge_quota_limit", "Quota of a compute environment (cpu in cores, memory in bytes)",
                    ["compute_environment", "resource"])
QUOTA_USED = Gauge("barge_quota_used", "Admitted requests in a compute environment",
                   ["compute_environment", "resource"])
API_ERRORS = Counter("barge_kubernetes_api_errors_total",
                     "Kubernetes API errors (code: the HTTP status, or unreachable)", ["verb", "code"])
EVENTS_DROPPED = Counter("barge_events_dropped_total",
                         "Kubernetes Events not posted because too many were waiting behind job writes")
EVENTS_WAITING = Gauge("barge_events_waiting", "Kubernetes Events queued behind job writes, not posted yet")
API_REQUESTS = Counter("barge_kubernetes_api_requests_total", "Kubernetes API writes", ["verb", "resource"])
LEADER = Gauge("barge_leader", "1 while this replica holds the leader lease (always 1 without leader election)")
WATCH_RELISTS = Counter("barge_watch_relists_total",
                        "Watches of BatchJobs, Jobs or pods that expired (410 Gone) and were listed again",
                        ["resource"])
SHARE_USAGE = Gauge("barge_share_usage_vcpu_seconds",
                    "A fair share's decayed usage (vCPU-seconds, decayed over the policy's shareDecaySeconds)",
                    ["policy", "share"])
