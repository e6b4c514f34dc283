"""The benchmark. Every Barge figure is read against a baseline measured in the same run.

- ceiling: one plain Indexed Job, no Barge: how many pods/s scheduler + kwok + Job controller carry.
- P1 dispatch: N BatchJobs submitted at once -> their Kubernetes Jobs exist; ratio to a plain client
  creating the same N Jobs.
- P2 admission through a quota: many one-pod jobs through a compute environment that fits 100.
- P3 arrays: one big array: objects created, status size, time to full parallelism.
- P4 deep queue: many RUNNABLE jobs: operator peak RSS and scheduling-cycle p50/p95 (step p4fs: the
  same on a fair-share queue whose jobs spread over 100 share identifiers; figures p4fs_*).
- P5 dependencies: a job's SUCCEEDED -> its dependent's RUNNABLE.
- P2 side by side (step p2side): the same one-pod jobs as plain Jobs under a ResourceQuota, through Barge
  and through Kueue, phases alternating; see side_by_side.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from barge import __version__
from barge.bench import managed
from barge.bench.side_by_side import SYSTEMS, SideBySide, api_writes, delta, writes_per_job
from barge.config import Settings
from barge.core.states import GROUP, TERMINAL, VERSION
from barge.dev import cluster, versions

DELAY = "pod-complete.stage.kwok.x-k8s.io/delay"
METRICS_PORT = int(os.environ.get("BARGE_BENCH_METRICS_PORT", "19090"))  # the bench's own operator
ROOT = Path(__file__).resolve().parents[3]
OUT_DIR = Path(__file__).resolve().parent / "out"  # the results and the operator's log (gitignored)


@dataclass(frozen=True)
class Sizes:
    ceiling_pods: int
    p1_jobs: int
    p1_repeats: int
    p2_jobs: int
    p3_children: int
    p4_jobs: int
    p5_pairs: int
    p2side_jobs: int
    p2side_repeats: int
    p2side_systems: tuple[str, ...] = SYSTEMS


FULL = Sizes(ceiling_pods=10_000, p1_jobs=1000, p1_repeats=5, p2_jobs=10_000, p3_children=100_000, p4_jobs=100_000,
             p5_pairs=50, p2side_jobs=10_000, p2side_repeats=2)
SMOKE = Sizes(ceiling_pods=40, p1_jobs=20, p1_repeats=1, p2_jobs=40, p3_children=300, p4_jobs=200, p5_pairs=3,
              p2side_jobs=6, p2side_repeats=1)
QUICK = Sizes(ceiling_pods=1000, p1_jobs=300, p1_repeats=2, p2_jobs=1000, p3_children=10_000, p4_jobs=5000, p5_pairs=20,
              p2side_jobs=2000, p2side_repeats=2)


@dataclass(frozen=True)
class Window:
    """What a measured stretch of time cost per job: CPU by process, API server writes by resource."""
    cpu_ms: dict[str, float]
    apiserver_writes: dict[str, float]


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, kubeconfig: Path, sizes: Sizes) -> None:
        self.kubeconfig = kubeconfig
        self.sizes = sizes
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        # Set before the client exists (its connection pool is built then): a pool smaller than the
        # threads using it opens a new TLS connection for every request past its size.
        configuration.connection_pool_maxsize = 64
        self.api = kubernetes.client.ApiClient(configuration)
        # Plain dict bodies in and out: the client's typed models would only add noise here.
        self.core: Any = kubernetes.client.CoreV1Api(self.api)
        self.batch: Any = kubernetes.client.BatchV1Api(self.api)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        self.pool = ThreadPoolExecutor(16)
        # The plain client sends as many requests at once as the operator does (its default API
        # concurrency): with fewer, the apiserver is less busy and the baseline slower.
        self.raw_pool = ThreadPoolExecutor(Settings().api_concurrency)
        self.operator: subprocess.Popen[bytes] | None = None
        self.results: dict[str, Any] = {}
        self.array_to_completion = False

    # --- plumbing ----------------------------------------------------------------------

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        out = subprocess.run([str(cluster.build.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
                             input=input_text, capture_output=True, text=True, check=True)
        return out.stdout

    def settle(self, timeout: float = 900) -> None:
        """Wait until earlier steps' namespaces are deleted, so no step measures another's cleanup."""
        def quiet() -> bool:
            return not [n for n in self.core.list_namespace().items
                        if n.metadata.name.startswith("bench-") and n.status.phase == "Terminating"]

        self.wait(quiet, timeout, "earlier bench namespaces to be deleted", interval=2)

    def fresh_namespace(self, prefix: str) -> str:
        """A new namespace per step and run; earlier steps' namespaces are gone first."""
        self.settle()
        name = f"{prefix}-{int(time.time() * 1000) % 10**8}"
        self.kubectl("create", "namespace", name)
        return name

    def cleanup(self, namespace: str) -> None:
        """Delete a step's namespace and its compute environment and queue, without waiting."""
        self.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
        self.kubectl("delete", "jobqueue,computeenvironment,schedulingpolicy", namespace, "--wait=false",
                     "--ignore-not-found")

    def start_operator(self, **extra_env: str) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "BARGE_METRICS_PORT": str(METRICS_PORT),
               "BARGE_FINISHED_JOB_RETENTION": "0", "BARGE_LOG_LEVEL": "WARNING", **extra_env}
        log = open(OUT_DIR / "operator.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.operator = subprocess.Popen([sys.executable, "-m", "barge.cli.main", "operator"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.metrics()
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the operator did not serve metrics within 60 s")

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.terminate()
            self.operator.wait(30)
            self.operator = None

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=30) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time so far of every process on the path: the cluster's, the operator, and this client."""
        usage: dict[str, float] = {}
        for pid, name in cluster.cluster_processes().items():
            usage[name] = usage.get(name, 0.0) + _cpu_seconds(pid)
        if self.operator is not None:
            usage["barge-operator"] = _cpu_seconds(self.operator.pid)
        usage["bench-client"] = time.process_time()
        return usage

    @staticmethod
    def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
        """Milliseconds of CPU per job, per process, between two cpu_seconds() readings."""
        return {name: round(1000 * (after[name] - before.get(name, 0.0)) / jobs, 2) for name in sorted(after)}

    def operator_rss_mb(self) -> float:
        assert self.operator is not None
        for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(objects))

    def environment(self, name: str, vcpus: int, state: str = "ENABLED", shares: int = 0) -> None:
        """A compute environment and a queue of the same name; with `shares`, a fair-share queue whose
        SchedulingPolicy (of that name too) weighs share-0..share-<shares-1> 0.5, 1 and 2 in turn."""
        queue: dict[str, Any] = {"priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": name}]}
        policy: list[dict[str, Any]] = []
        if shares:
            queue["schedulingPolicy"] = name
            weights = [{"shareIdentifier": f"share-{i}", "weightFactor": (0.5, 1.0, 2.0)[i % 3]} for i in range(shares)]
            policy = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "SchedulingPolicy", "metadata": {"name": name},
                       "spec": {"fairsharePolicy": {"shareDistribution": weights}}}]
        self.apply([
            *policy,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComputeEnvironment", "metadata": {"name": name},
             "spec": {"state": state,
                      "computeResources": {"maxvCpus": vcpus, "nodeSelector": {"barge.dev/pool": "cpu"}}}},
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "JobQueue", "metadata": {"name": name}, "spec": queue},
        ])

    def definition(self, namespace: str, name: str, cpu: str = "100m", delay: str = "1s") -> None:
        self.apply([{"apiVersion": f"{GROUP}/{VERSION}", "kind": "JobDefinition",
                     "metadata": {"name": name, "namespace": namespace},
                     "spec": {"template": {"metadata": {"annotations": {DELAY: delay}}, "spec": {"containers": [
                         {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]}}}}])

    def submit(self, namespace: str, names: list[str], definition: str, queue: str,
               **spec: Any) -> None:
        def create(name: str) -> None:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BatchJob", "metadata": {"name": name},
                    "spec": {"jobDefinition": definition, "jobQueue": queue, **spec}}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "batchjobs", body)

        list(self.pool.map(create, names))

    def batchjobs(self, namespace: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "batchjobs", limit=2000,
                                                             _continue=token)
            items += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                return items

    def queue_states(self, queue: str) -> dict[str, int]:
        """BatchJobs per state in a queue, from the operator's barge_jobs gauge. Listing 10,000 BatchJobs
        every few seconds would load the apiserver enough to slow down what is being measured."""
        prefix = f'barge_jobs{{queue="{queue}",state="'
        return {k[len(prefix):].split('"')[0]: int(v) for k, v in self.metrics().items() if k.startswith(prefix)}

    def count_states(self, namespace: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self.batchjobs(namespace):
            state = (job.get("status") or {}).get("state") or "SUBMITTED"
            counts[state] = counts.get(state, 0) + 1
        return counts

    def wait(self, probe: Any, timeout: float, what: str, interval: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = probe()
            except (OSError, kubernetes.client.ApiException) as exc:  # a busy endpoint is not the end of a run
                say(f"while waiting for {what}: {exc}")
                value = None
            if value:
                return value
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def job_count(self, namespace: str) -> int:
        """Jobs in a namespace, from a one-item list: polling a full list of thousands of Jobs would load
        the apiserver (and this process) during the very window being timed."""
        response = self.batch.list_namespaced_job(namespace, limit=1, _preload_content=False)
        page = json.loads(response.data)
        return len(page["items"]) + int(page["metadata"].get("remainingItemCount") or 0)

    def jobs_created(self, namespace: str, n: int, kind: str = "jobs") -> threading.Event:
        """Set the moment the Nth Kubernetes Job (or pod) of the namespace exists."""
        return self.watch_until(namespace, n, kind)

    def watch_until(self, namespace: str, n: int, kind: str = "jobs",
                    counts: Callable[[dict[str, Any]], bool] = lambda _: True) -> threading.Event:
        """Set the moment N Jobs (or pods) of the namespace have met `counts`, seen through a watch:
        polling a list would add up to its interval, and its own latency, to every figure. A watch the
        apiserver ends (its timeout, an expired version) is followed by a fresh list and a new watch."""
        lister = self.batch.list_namespaced_job if kind == "jobs" else self.core.list_namespaced_pod
        done = threading.Event()
        seen: set[str] = set()

        def met(item: dict[str, Any]) -> None:
            if counts(item):
                seen.add(item["metadata"]["name"])
            if len(seen) >= n:
                done.set()

        def follow_once() -> None:
            listed = lister(namespace, _preload_content=False)
            try:
                page = json.loads(listed.data)
            finally:
                listed.release_conn()
            for item in page["items"]:
                met(item)
            if done.is_set():
                return
            response = lister(namespace, watch=True, resource_version=page["metadata"]["resourceVersion"],
                              timeout_seconds=1800, _preload_content=False)
            pending = b""
            try:
                for chunk in response.stream(amt=None, decode_content=False):
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        event = json.loads(line) if line.strip() else {}
                        if event.get("type") == "ERROR":
                            return  # an expired version: list again
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            met(event["object"])
                    if done.is_set():
                        return
            finally:
                response.close()
                response.release_conn()

        def follow() -> None:
            while not done.is_set():
                try:
                    follow_once()
                except Exception as exc:  # a dropped connection: list again
                    say(f"  watch of {kind} in {namespace} ended ({exc}); listing again")
                    time.sleep(1)

        threading.Thread(target=follow, daemon=True).start()
        return done

    def wait_created(self, created: threading.Event, what: str, timeout: float = 1800) -> None:
        if not created.wait(timeout):
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    # --- the cluster's own ceiling ----------------------------------------------------------

    def ceiling(self) -> None:
        n = self.sizes.ceiling_pods
        say(f"ceiling: one Indexed Job of {n} one-second pods, parallelism 100, no Barge")
        ns = self.fresh_namespace("bench-ceiling")
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ceiling"},
               "spec": {"completions": n, "parallelism": 100, "completionMode": "Indexed", "backoffLimit": 0,
                        "template": {"metadata": {"annotations": {DELAY: "1s"}}, "spec": {
                            "restartPolicy": "Never", "nodeSelector": {"barge.dev/pool": "cpu"},
                            "containers": [{"name": "main", "image": "busybox",
                                            "resources": {"requests": {"cpu": "100m"}}}]}}}}
        started = time.monotonic()
        self.batch.create_namespaced_job(ns, job)
        self.wait(lambda: (self.batch.read_namespaced_job_status("ceiling", ns).status.succeeded or 0) >= n,
                  3600, "the ceiling Job", interval=2)
        seconds = time.monotonic() - started
        self.results["ceiling_pods_per_s"] = round(n / seconds, 2)
        self.results["ceiling_seconds"] = round(seconds, 1)
        self.cleanup(ns)

    # --- P1 ------------------------------------------------------------------------------

    def p1_dispatch(self) -> None:
        n, repeats = self.sizes.p1_jobs, self.sizes.p1_repeats
        say(f"P1: {repeats} times in turn, {n} Jobs created by a plain client and {n} BatchJobs through Barge")
        # On this shared machine one run of either varies by 20% or more from the next, so they take
        # turns and the medians are compared: a cluster that has just started, is compacting or is
        # still deleting the last run weighs on both sides alike.
        raw_runs: list[float] = []
        barge_runs: list[tuple[float, float]] = []
        cpu: dict[str, list[dict[str, float]]] = {"raw": [], "barge": []}
        for _ in range(repeats):
            rate, raw_window = self._p1_raw(n)
            raw_runs.append(rate)
            cpu["raw"].append(raw_window.cpu_ms)
            rate, writes, barge_cpu = self._p1_queued(n)
            barge_runs.append((rate, writes))
            cpu["barge"].append(barge_cpu)
        raw, barge = statistics.median(raw_runs), statistics.median(rate for rate, _ in barge_runs)
        writes = statistics.median(w for _, w in barge_runs)
        # The same N while they are still being submitted: the operator shares the apiserver with the
        # submitting client, which does the same amount of writing as the plain client. Barge creates
        # a one-pod job's pod itself: the time until every pod exists is compared too, against the
        # plain Jobs' pods (which the Job controller creates).
        raw_pods: list[float] = []
        _, raw_window = self._p1_raw(n, raw_pods)
        streaming, streaming_writes, streaming_pods, barge_window = self._p1_through_barge(n)
        # What each window cost per job, every process and every client's API writes: while the plain
        # client creates Jobs, and until Barge's Jobs exist while a client submits BatchJobs.
        self.results |= {
            "p1_cpu_ms_per_job_while_submitting": {"raw": raw_window.cpu_ms, "barge": barge_window.cpu_ms},
            "p1_apiserver_writes_per_job_while_submitting": {"raw": raw_window.apiserver_writes,
                                                             "barge": barge_window.apiserver_writes}}
        # Once with Kubernetes Events off: what the Events cost on this apiserver.
        self.stop_operator()
        self.start_operator(BARGE_EVENTS="false")
        quiet, quiet_writes, _ = self._p1_queued(n)
        # Where the machine's CPU went per job, plain client vs Barge (mean of the runs): on 2 cores
        # this is what bounds P1.
        self.results["p1_cpu_ms_per_job"] = {side: _mean_by_key(runs) for side, runs in cpu.items()}
        self.results |= {
            "p1_raw_jobs_per_s": round(raw, 1), "p1_raw_jobs_per_s_runs": [round(r, 1) for r in raw_runs],
            "p1_barge_jobs_per_s": round(barge, 1), "p1_barge_jobs_per_s_runs": [round(r, 1) for r, _ in barge_runs],
            "p1_barge_writes_per_job": writes,
            "p1_dispatch_ratio": round(barge / raw, 3),
            "p1_barge_jobs_per_s_while_submitting": round(streaming, 1),
            "p1_barge_writes_per_job_while_submitting": streaming_writes,
            "p1_dispatch_ratio_while_submitting": round(streaming / raw, 3),
            "p1_raw_pods_per_s": round(raw_pods[0], 1),
            "p1_barge_pods_per_s_while_submitting": round(streaming_pods, 1),
            "p1_pod_dispatch_ratio_while_submitting": round(streaming_pods / raw_pods[0], 3),
            "p1_barge_jobs_per_s_no_events": round(quiet, 1),
            "p1_dispatch_ratio_no_events": round(quiet / raw, 3),
            "p1_barge_writes_per_job_no_events": quiet_writes,
        }

    def _p1_raw(self, n: int, pods_rate: list[float] | None = None) -> tuple[float, Window]:
        """Jobs/s of a plain client creating N Jobs, and what that cost per job meanwhile;
        with `pods_rate`, also the rate at which their pods came to exist (the Job controller's part)."""
        namespace = self.fresh_namespace("bench-p1-raw")
        template = {"metadata": {"annotations": {DELAY: "1s"}}, "spec": {
            "restartPolicy": "Never", "nodeSelector": {"barge.dev/pool": "cpu"},
            "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}]}}

        def create_raw(i: int) -> None:
            self.batch.create_namespaced_job(namespace, {"apiVersion": "batch/v1", "kind": "Job",
                                                         "metadata": {"name": f"raw-{i}"},
                                                         "spec": {"backoffLimit": 0, "template": template}})

        pods = self.jobs_created(namespace, n, kind="pods") if pods_rate is not None else None
        reading = self.reading()
        started = time.monotonic()
        list(self.raw_pool.map(create_raw, range(n)))
        rate = n / (time.monotonic() - started)
        used = self.window(reading, n)
        if pods is not None and pods_rate is not None:
            self.wait_created(pods, "the plain Jobs' pods")
            pods_rate.append(n / (time.monotonic() - started))
        self.cleanup(namespace)
        return rate, used

    def _p1_through_barge(self, n: int) -> tuple[float, float, float, Window]:
        """Jobs/s while a client submits N BatchJobs, the operator's writes per job, the rate at which
        their pods came to exist and what the time until the Jobs existed cost per job; also (in the
        results) how fast the client submitted meanwhile and how long after its last BatchJob the last
        Kubernetes Job was created: whether the operator keeps up."""
        ns = self.fresh_namespace("bench-p1")
        self.environment(ns, 100_000)
        self.definition(ns, "tiny", cpu="10m")
        names = [f"j-{i}" for i in range(n)]
        before = self.writes()
        created, pods = self.jobs_created(ns, n), self.jobs_created(ns, n, kind="pods")
        submitted: list[float] = []
        reading = self.reading()

        def submit_all() -> None:
            self.submit(ns, names, "tiny", ns)
            submitted.append(time.monotonic())

        started = time.monotonic()
        threading.Thread(target=submit_all, daemon=True).start()
        self.wait_created(created, "Barge's Kubernetes Jobs")
        dispatched = time.monotonic()
        rate = n / (dispatched - started)
        writes = round((self.writes() - before) / n, 2)
        used = self.window(reading, n)
        self.wait_created(pods, "the pods of Barge's jobs")
        pods_rate = n / (time.monotonic() - started)
        self.wait(lambda: bool(submitted), 600, "the client's last BatchJob", interval=0.2)
        self.results |= {"p1_client_batchjobs_per_s_while_submitting": round(n / (submitted[0] - started), 1),
                         "p1_last_job_after_last_submission_s": round(max(0.0, dispatched - submitted[0]), 2)}
        self.cleanup(ns)
        return rate, writes, pods_rate, used

    def _p1_queued(self, n: int) -> tuple[float, float, dict[str, float]]:
        """N jobs wait RUNNABLE behind a DISABLED compute environment; the clock starts when it is enabled."""
        ns = self.fresh_namespace("bench-p1q")
        self.environment(ns, 100_000, state="DISABLED")
        self.definition(ns, "tiny", cpu="10m")
        self.submit(ns, [f"j-{i}" for i in range(n)], "tiny", ns)
        self.wait(lambda: self.queue_states(ns).get("RUNNABLE", 0) >= n, 1800, "P1 jobs RUNNABLE", interval=1)
        # The Events of their submission (Runnable) are posted after a hold; they are not dispatch work.
        self.wait(lambda: self.metrics().get("barge_events_waiting", 0) == 0, 120, "submission Events", interval=0.5)
        created = self.jobs_created(ns, n)
        before, cpu = self.writes(), self.cpu_seconds()
        started = time.monotonic()
        # A patch from this process, not `kubectl apply`: the clock must not time a kubectl start-up.
        self.custom.patch_cluster_custom_object(GROUP, VERSION, "computeenvironments", ns,
                                                {"spec": {"state": "ENABLED"}})
        self.wait_created(created, "Barge's Kubernetes Jobs")
        rate = n / (time.monotonic() - started)
        used = self.cpu_per_job(cpu, self.cpu_seconds(), n)
        writes = round((self.writes() - before) / n, 2)
        self.cleanup(ns)
        return rate, writes, used

    def reading(self) -> tuple[dict[str, float], dict[str, float]]:
        """CPU seconds by process and the API server's writes by resource so far."""
        response = self.api.call_api("GET", f"{self.api.configuration.host}/metrics")
        return self.cpu_seconds(), api_writes(response.read().decode())

    def window(self, since: tuple[dict[str, float], dict[str, float]], jobs: int) -> Window:
        cpu, writes = self.reading()
        return Window(self.cpu_per_job(since[0], cpu, jobs), writes_per_job(delta(since[1], writes), jobs))

    def writes(self) -> float:
        """Operator API writes so far (the counter covers every create, patch and delete)."""
        return sum(v for k, v in self.metrics().items()
                   if k.startswith("barge_kubernetes_api_requests_total") and 'verb="list"' not in k)

    # --- P2 ------------------------------------------------------------------------------

    def p2_admission(self) -> None:
        n = self.sizes.p2_jobs
        # 100 at a time: 0.5 vCPU each under a 50-vCPU quota (the cpu pool has 64 CPUs).
        say(f"P2: {n} one-pod jobs of 0.5 vCPU, 1 s each, through a compute environment that fits 100")
        ns = self.fresh_namespace("bench-p2")
        self.environment(ns, 50)
        self.definition(ns, "one", cpu="500m")
        names = [f"j-{i}" for i in range(n)]
        started = time.monotonic()
        threading.Thread(target=self.submit, args=(ns, names, "one", ns), daemon=True).start()
        self.wait(lambda: self.queue_states(ns).get("SUCCEEDED", 0) >= n, 7200, "P2 jobs to succeed", interval=1)
        seconds = time.monotonic() - started
        self.results |= {"p2_total_s": round(seconds, 1), "p2_admitted_per_s": round(n / seconds, 2),
                         "p2_jobs": n}
        self.cleanup(ns)

    def p2_side_by_side(self) -> None:
        sizes = self.sizes
        self.results |= SideBySide(self, sizes.p2side_jobs, sizes.p2side_repeats, sizes.p2side_systems).run()

    # --- P3 ------------------------------------------------------------------------------

    def p3_array(self) -> None:
        n = self.sizes.p3_children
        say(f"P3: one array of {n} children through a compute environment that fits 100")
        ns = self.fresh_namespace("bench-p3")
        self.environment(ns, 50)
        # Children long enough that all 100 run at once, short enough that the whole array can finish.
        self.definition(ns, "child", cpu="500m", delay="30s" if not self.array_to_completion else "1s")
        started = time.monotonic()
        before = self.metrics()
        self.submit(ns, ["big"], "child", ns, arrayProperties={"size": n})

        def running() -> bool:
            if self.array_to_completion:  # one-second children: the 100 slots are full, not 100 pods Running
                summary = ((self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", "big")
                            .get("status") or {}).get("arrayProperties") or {}).get("statusSummary") or {}
                return summary.get("STARTING", 0) + summary.get("RUNNING", 0) >= 100
            pods = self.core.list_namespaced_pod(ns, field_selector="status.phase=Running").items
            return len(pods) >= 100

        self.wait(running, 600, "100 children running", interval=0.25)
        to_full = time.monotonic() - started
        time.sleep(5)
        status = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", "big").get("status") or {}
        jobs = self.job_count(ns)
        self.results |= {"p3_children": n, "p3_seconds_to_full_parallelism": round(to_full, 2),
                         "p3_status_bytes": len(json.dumps(status)), "p3_objects_created": jobs,
                         "p3_pods_at_full_parallelism": 100}
        if self.array_to_completion:
            self._p3_completion(ns, started, before)
        self.cleanup(ns)

    def _p3_completion(self, ns: str, started: float, before: dict[str, float]) -> None:
        """Run the array to its end: the largest status seen, and every object Barge created for it."""
        largest = 0

        def finished() -> bool:
            nonlocal largest
            status = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", "big").get("status")
            largest = max(largest, len(json.dumps(status or {})))
            say(f"P3: {json.dumps((status or {}).get('arrayProperties', {}).get('statusSummary', {}))}")
            return (status or {}).get("state") in TERMINAL

        self.wait(finished, 6 * 3600, "the array to finish", interval=30)
        status = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", "big")["status"]
        after = self.metrics()
        creates = {}
        for key, value in after.items():
            match = re.fullmatch(r'barge_kubernetes_api_requests_total\{(.*)\}', key)
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) if match else {}
            if labels.get("verb") == "create":
                creates[labels["resource"]] = value - before.get(key, 0.0)
        self.results |= {"p3_complete_state": status["state"],
                         "p3_seconds_to_complete": round(time.monotonic() - started, 1),
                         "p3_status_bytes_at_completion": len(json.dumps(status)),
                         "p3_status_bytes_largest": largest,
                         "p3_creates_by_resource": {k: int(v) for k, v in sorted(creates.items()) if v}}

    # --- P4 ------------------------------------------------------------------------------

    def p4_deep_queue(self, observe_seconds: float = 30, shares: int = 0) -> None:
        """P4; with `shares`, on a fair-share queue whose jobs are spread over that many share
        identifiers (figures then named p4fs_*)."""
        n = self.sizes.p4_jobs
        on = f"a fair-share queue of {shares} shares" if shares else "a FIFO queue"
        say(f"P4: {n} RUNNABLE jobs on {on} behind a compute environment that is full")
        ns = self.fresh_namespace("bench-p4fs" if shares else "bench-p4")
        self.environment(ns, 1, shares=shares)

        def submit(names: list[str], offset: int = 0) -> None:
            if not shares:
                self.submit(ns, names, "blocker", ns)
                return
            for share in range(shares):
                mine = names[(share - offset) % shares::shares]
                if mine:
                    self.submit(ns, mine, "blocker", ns, shareIdentifier=f"share-{share}")

        self.definition(ns, "blocker", cpu="1", delay="3600s")
        submit(["blocker"])
        submit([f"j-{i}" for i in range(n)])
        self.wait(lambda: self.queue_states(ns).get("RUNNABLE", 0) >= n, 7200, "P4 jobs RUNNABLE", interval=5)
        before = self.metrics()
        # Passes over the full queue: the periodic ones, and those that jobs arriving meanwhile ask for.
        for i in range(int(observe_seconds // 2)):
            submit([f"late-{i}"], offset=i)
            time.sleep(2)
        after = self.metrics()
        figures = {"p4_jobs": n, "p4_rss_mb": round(self.operator_rss_mb(), 1), **cycle_quantiles(before, after)}
        if shares:
            figures = {"p4fs_shares": shares, **{k.replace("p4_", "p4fs_"): v for k, v in figures.items()}}
        self.results |= figures
        self.cleanup(ns)

    # --- P5 ------------------------------------------------------------------------------

    def _watch_states(self, namespace: str, timeout: float,
                      done: Callable[[dict[str, tuple[str, float]]], bool]) -> dict[str, dict[str, float]]:
        """When each BatchJob of the namespace was first seen in each state, by one watch (the same
        client clock for every job), until done(latest states) or the timeout."""
        seen: dict[str, dict[str, float]] = {}
        latest: dict[str, tuple[str, float]] = {}
        deadline = time.monotonic() + timeout
        watch = kubernetes.watch.Watch()
        for event in watch.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "batchjobs",
                                  timeout_seconds=int(timeout)):
            body = event["object"]
            state = (body.get("status") or {}).get("state")
            if state:
                at = time.monotonic()
                first = seen.setdefault(body["metadata"]["name"], {})
                first.setdefault(state, at)
                if state not in ("PENDING", "SUBMITTED"):
                    first.setdefault("RUNNABLE", at)  # released, even if first seen in a later state
                latest[body["metadata"]["name"]] = (state, at)
            if done(latest) or time.monotonic() > deadline:
                watch.stop()
        if not done(latest):
            raise RuntimeError(f"P5 jobs did not finish within {timeout:.0f} s")
        return seen

    def p5_dependencies(self) -> None:
        pairs = self.sizes.p5_pairs
        say(f"P5: {pairs} pairs first -> second, time from SUCCEEDED to the dependent's RUNNABLE")
        ns = self.fresh_namespace("bench-p5")
        self.environment(ns, 1000)
        self.definition(ns, "step", cpu="100m", delay="2s")
        for i in range(pairs):
            self.submit(ns, [f"second-{i}"], "step", ns, dependsOn=[{"jobName": f"first-{i}"}])
        self.submit(ns, [f"first-{i}" for i in range(pairs)], "step", ns)
        seen = self._watch_states(
            ns, 600, lambda latest: sum(state == "SUCCEEDED" for state, _ in latest.values()) >= 2 * pairs)
        delays = [seen[f"second-{i}"]["RUNNABLE"] - seen[f"first-{i}"]["SUCCEEDED"] for i in range(pairs)]
        delays.sort()
        self.results |= {"p5_release_p50_s": round(statistics.median(delays), 3),
                         "p5_release_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 3)}
        self.cleanup(ns)


def _mean_by_key(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.fmean(run.get(key, 0.0) for run in runs), 2) for key in sorted(runs[0])}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cycle_quantiles(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """p50/p95 of scheduling passes between two scrapes, from the histogram's buckets."""
    prefix = "barge_scheduling_cycle_seconds_bucket{le="
    buckets = sorted(
        (float(k[len(prefix) + 1:-2]) if "+Inf" not in k else float("inf"), after[k] - before.get(k, 0.0))
        for k in after if k.startswith(prefix))
    total = buckets[-1][1] if buckets else 0
    result = {}
    for name, q in (("p4_cycle_p50_ms", 0.5), ("p4_cycle_p95_ms", 0.95)):
        result[name] = round(_bucket_quantile(buckets, q * total) * 1000, 1) if total else float("nan")
    count, spent = (after.get(f"barge_scheduling_cycle_seconds_{part}", 0.0)
                    - before.get(f"barge_scheduling_cycle_seconds_{part}", 0.0) for part in ("count", "sum"))
    result["p4_cycle_mean_ms"] = round(1000 * spent / count, 1) if count else float("nan")
    result["p4_cycles_observed"] = int(total)
    return result


def _bucket_quantile(buckets: list[tuple[float, float]], rank: float) -> float:
    """Interpolated within the bucket that holds the rank, as Prometheus's histogram_quantile does."""
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf") or count == below:
                return lower
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


P4_SHARES = 100  # P4 on a fair-share queue (step p4fs): its jobs spread over this many share identifiers
OPT_IN = ("p4fs", "managed")  # steps a run without --only leaves out
TARGETS = {
    "p1_dispatch_ratio": (">=", 0.8), "p1_dispatch_ratio_no_events": (">=", 0.8),
    "p1_dispatch_ratio_while_submitting": (">=", 0.8),
    "p3_objects_created": ("==", 1), "p3_status_bytes": ("<", 16384),
    "p3_seconds_to_full_parallelism": ("<", 10), "p4_rss_mb": ("<", 500), "p4_cycle_p50_ms": ("<", 200),
    "p4_cycle_p95_ms": ("<", 200), "p5_release_p50_s": ("<", 1), "p5_release_p95_s": ("<", 1),
    "p4fs_rss_mb": ("<", 500), "p4fs_cycle_p50_ms": ("<", 200),
    "p2_barge_over_plain": ("<=", 1.0), "p2_barge_over_kueue": ("<=", 0.5),
    **{f"p2side_{system}_quota_exceeded": ("==", False) for system in ("plain", "barge", "kueue")},
}


def meets(key: str, value: Any) -> str:
    if key not in TARGETS or not isinstance(value, (int, float)):
        return ""
    op, target = TARGETS[key]
    ok = {">=": value >= target, "<=": value <= target, "<": value < target, "==": value == target}[op]
    return f"{'met' if ok else 'MISSED'} (target {op} {target})"


def table(results: dict[str, Any]) -> str:
    lines = [f"{'figure':34} {'value':>14}  target"]
    for key, value in results.items():
        if key in ("machine", "versions", "date"):
            continue
        lines.append(f"{key:34} {value!s:>14}  {meets(key, value)}")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                                       / 2**30, 1),
            "platform": platform.platform(), "python": platform.python_version()}


def run(quick: bool, only: list[str], out: Path, array_to_completion: bool = False,
        p2side_jobs: int | None = None, p2side_repeats: int | None = None,
        p2side_systems: tuple[str, ...] | None = None) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    sizes = dataclasses.replace(sizes, p2side_jobs=p2side_jobs or sizes.p2side_jobs,
                                p2side_repeats=p2side_repeats or sizes.p2side_repeats,
                                p2side_systems=p2side_systems or sizes.p2side_systems)
    kubeconfig = cluster.up(cluster.default_options())
    subprocess.run([str(cluster.build.binary("kubectl")), f"--kubeconfig={kubeconfig}", "apply", "-f",
                    str(ROOT / "crds")], check=True, capture_output=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    bench = Bench(kubeconfig, sizes)
    bench.array_to_completion = array_to_completion
    bench.results |= {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                      "versions": {"barge": __version__, **versions.ALL},
                      "rate_limits": "kube-controller-manager and kube-scheduler client QPS/burst 5000",
                      "sizes": sizes.__dict__}
    # P3 last: with --array-to-completion it is by far the longest step.
    steps = {"ceiling": bench.ceiling, "p1": bench.p1_dispatch, "p2": bench.p2_admission,
             "p4": bench.p4_deep_queue, "p4fs": lambda: bench.p4_deep_queue(shares=P4_SHARES),
             "p5": bench.p5_dependencies, "p2side": bench.p2_side_by_side, "p3": bench.p3_array,
             "managed": lambda: managed.managed(bench)}
    try:
        for name, step in steps.items():
            if (only and name not in only) or (not only and name in OPT_IN):
                continue
            bench.settle()  # an earlier step's (or run's) namespace still being deleted is not ours to list
            bench.start_operator()
            try:
                step()
            finally:
                bench.stop_operator()
            out.write_text(json.dumps(bench.results, indent=2) + "\n")
    finally:
        bench.stop_operator()
    print(table(bench.results))
    return bench.results
