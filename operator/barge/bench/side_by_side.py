"""P2 side by side: the same one-pod jobs as plain Jobs under a ResourceQuota (what a user without a
batch system does), through Barge, and through Kueue, in one run, phases alternating (A B C A B C).

Every phase runs the same N jobs of the same pod template through the same number of slots, with only
its own system running: the operator only in Barge's phase, Kueue only in Kueue's. For each phase:
the time from the first submission to the last job done, the peak of running pods and of the CPU the
namespace's live pods request (sampled each second, never to exceed the quota), the API server's writes
per job (its own request counter, so every client's writes count) and the CPU per job of every process.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from barge.core.states import GROUP, VERSION
from barge.dev import cluster

if TYPE_CHECKING:
    from barge.bench.run import Bench

SYSTEMS = ("plain", "barge", "kueue")
# The cpu pool has 64 CPUs, so 100 one-CPU pods would be bound by the nodes, not by the quota: 100
# half-CPU slots under a 50-CPU quota, as the P2 step runs.
JOB_CPU = "500m"
QUOTA_CPU = 50
POD_SECONDS = "1s"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_FLAVOR, KUEUE_CLUSTER_QUEUE, KUEUE_LOCAL_QUEUE = "bench-default", "bench-p2side", "bench"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"})
# Heartbeats of the simulated nodes: the cluster's own noise, not work done for any job.
NOT_PER_JOB = frozenset({"leases", "nodes"})


# --- pure parts ---------------------------------------------------------------------------------


def api_writes(metrics_text: str) -> dict[str, float]:
    """Write requests the API server has served so far, by resource, from its /metrics text
    (`apiserver_request_total`, every response code: a refused create is load all the same)."""
    writes: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = re.fullmatch(r"apiserver_request_total\{(.*)\} (\S+)", line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        resource = labels.get("resource", "")
        if labels.get("verb") in WRITE_VERBS and resource not in NOT_PER_JOB:
            name = f"{resource}/{labels['subresource']}" if labels.get("subresource") else resource
            writes[name] = writes.get(name, 0.0) + float(match.group(2))
    return writes


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in sorted(after) if after[key] - before.get(key, 0.0)}


def writes_per_job(writes: dict[str, float], jobs: int) -> dict[str, float]:
    """A window's writes divided by the jobs it served: in all, then by resource."""
    return {"total": round(sum(writes.values()) / jobs, 2),
            **{resource: round(count / jobs, 2) for resource, count in writes.items()}}


def cpu_millis(quantity: str) -> int:
    """A Kubernetes CPU quantity ("500m", "2", "0.5") in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


@dataclass(frozen=True)
class Sample:
    running: int  # pods Running
    cpu_m: int  # CPU requested by every pod that holds quota (not Succeeded, not Failed), millicores


def sample(pods: list[dict[str, Any]]) -> Sample:
    """One reading of a namespace's live pods (a list of pod objects as the API returns them)."""
    running, cpu = 0, 0
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            continue
        running += phase == "Running"
        for container in pod["spec"]["containers"]:
            cpu += cpu_millis(((container.get("resources") or {}).get("requests") or {}).get("cpu", "0"))
    return Sample(running, cpu)


@dataclass
class PhaseRun:
    system: str
    seconds: float
    writes: dict[str, float]  # by resource, over the phase
    cpu_ms_per_job: dict[str, float]  # by process
    samples: list[Sample] = field(default_factory=list)

    @property
    def peak_running(self) -> int:
        return max((s.running for s in self.samples), default=0)

    @property
    def peak_cpu_m(self) -> int:
        return max((s.cpu_m for s in self.samples), default=0)


def figures(runs: list[PhaseRun], jobs: int, quota_cpu: float = QUOTA_CPU) -> dict[str, Any]:
    """The per-system figures and the ratios of median times, from every phase of the step."""
    result: dict[str, Any] = {}
    medians: dict[str, float] = {}
    for system in SYSTEMS:
        mine = [run for run in runs if run.system == system]
        if not mine:
            continue
        medians[system] = statistics.median(run.seconds for run in mine)
        by_resource = {key: round(statistics.fmean(run.writes.get(key, 0.0) for run in mine) / jobs, 2)
                       for key in sorted({k for run in mine for k in run.writes})}
        processes = sorted({k for run in mine for k in run.cpu_ms_per_job})
        peak_cpu = max(run.peak_cpu_m for run in mine) / 1000
        result |= {
            f"p2side_{system}_total_s": round(medians[system], 1),
            f"p2side_{system}_total_s_runs": [round(run.seconds, 1) for run in mine],
            f"p2side_{system}_admitted_per_s": round(jobs / medians[system], 2),
            f"p2side_{system}_peak_running_pods": max(run.peak_running for run in mine),
            f"p2side_{system}_peak_quota_cpu": peak_cpu,
            f"p2side_{system}_quota_exceeded": peak_cpu > quota_cpu,
            f"p2side_{system}_writes_per_job": round(statistics.median(sum(run.writes.values()) for run in mine)
                                                     / jobs, 2),
            f"p2side_{system}_writes_per_job_by_resource": {k: v for k, v in by_resource.items() if v},
            f"p2side_{system}_cpu_ms_per_job": {
                p: round(statistics.fmean(run.cpu_ms_per_job.get(p, 0.0) for run in mine), 1) for p in processes},
        }
    if "barge" in medians:
        for other in ("plain", "kueue"):
            if other in medians:
                result[f"p2_barge_over_{other}"] = round(medians["barge"] / medians[other], 3)
    return result


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the step -----------------------------------------------------------------------------------


class QuotaSampler:
    """Reads the namespace's live pods once a second in a thread, until stopped."""

    def __init__(self, bench: Bench, namespace: str) -> None:
        self.bench, self.namespace = bench, namespace
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> QuotaSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.bench.core.list_namespaced_pod(
                    self.namespace, field_selector="status.phase!=Succeeded,status.phase!=Failed",
                    _preload_content=False)
                self.samples.append(sample(json.loads(response.data)["items"]))
            except Exception as exc:  # one missed reading must not end the phase
                say(f"quota sample failed: {exc}")
            self._stop.wait(1.0)


class SideBySide:
    def __init__(self, bench: Bench, jobs: int, repeats: int, systems: tuple[str, ...] = SYSTEMS) -> None:
        self.bench, self.jobs, self.repeats, self.systems = bench, jobs, repeats, systems

    def run(self) -> dict[str, Any]:
        self.bench.stop_operator()  # each phase runs only its own system
        karpenter = cluster.karpenter_running()
        if karpenter:  # it watches every pod; its CPU shows in every phase's figures
            say("note: Karpenter runs beside this step (`barge dev cluster up` without --karpenter leaves it out)")
        runs: list[PhaseRun] = []
        phases: dict[str, Callable[[], PhaseRun]] = {"plain": self.plain, "barge": self.barge, "kueue": self.kueue}
        for turn in range(self.repeats):
            for system in self.systems:
                say(f"P2 side by side, turn {turn + 1}/{self.repeats}: {self.jobs} one-pod jobs ({JOB_CPU} CPU, "
                    f"{POD_SECONDS}) through {QUOTA_CPU} CPUs, {system}")
                runs.append(phases[system]())
                say(f"  {system}: {runs[-1].seconds:.1f} s, peak {runs[-1].peak_running} running, "
                    f"{sum(runs[-1].writes.values()) / self.jobs:.1f} writes/job")
        return {"p2side_jobs": self.jobs, "p2side_repeats": self.repeats, "p2side_job_cpu": JOB_CPU,
                "p2side_quota_cpu": QUOTA_CPU, "p2side_order": ",".join(self.systems),
                "p2side_karpenter_running": karpenter,
                **figures(runs, self.jobs)}

    # --- plumbing ---

    def template(self) -> dict[str, Any]:
        """The pod of every job, as Barge makes it from the P2 definition and the compute environment."""
        from barge.bench.run import DELAY

        return {"metadata": {"annotations": {DELAY: POD_SECONDS}}, "spec": {
            "restartPolicy": "Never", "nodeSelector": {"barge.dev/pool": "cpu"},
            "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": JOB_CPU}}}]}}

    def names(self) -> list[str]:
        return [f"j-{i}" for i in range(self.jobs)]

    def create_jobs(self, namespace: str, labels: dict[str, str], suspend: bool) -> None:
        template = self.template()

        def create(name: str) -> None:
            self.bench.batch.create_namespaced_job(namespace, {
                "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "labels": labels},
                "spec": {"backoffLimit": 0, "suspend": suspend, "template": template}})

        list(self.bench.raw_pool.map(create, self.names()))

    def jobs_complete(self, namespace: str) -> threading.Event:
        """Set once every Job of the namespace has its Complete condition."""
        return self.bench.watch_until(namespace, self.jobs, "jobs", lambda job: any(
            c.get("type") == "Complete" and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or []))

    def measure(self, system: str, namespace: str, submit: Callable[[], None],
                finished: Callable[[], None]) -> PhaseRun:
        """Time one phase from its first submission to its last job done, sampling the quota meanwhile."""
        bench = self.bench
        cpu, writes = bench.reading()
        with QuotaSampler(bench, namespace) as sampler:
            started = time.monotonic()
            threading.Thread(target=submit, daemon=True).start()
            finished()
            seconds = time.monotonic() - started
        used = bench.cpu_per_job(cpu, bench.cpu_seconds(), self.jobs)
        return PhaseRun(system, seconds, delta(writes, bench.reading()[1]), used, sampler.samples)

    def wait_event(self, event: threading.Event, what: str) -> Callable[[], None]:
        return lambda: self.bench.wait_created(event, what, timeout=7200)

    # --- the three systems ---

    def plain(self) -> PhaseRun:
        bench = self.bench
        ns = bench.fresh_namespace("bench-p2side-plain")
        bench.apply([{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "cpu", "namespace": ns},
                      "spec": {"hard": {"requests.cpu": str(QUOTA_CPU)}}}])
        # Until the quota controller has written its status, the quota admission refuses every pod.
        bench.wait(lambda: (bench.core.read_namespaced_resource_quota("cpu", ns).status.hard or {}).get("requests.cpu"),
                   60, "the ResourceQuota's status", interval=0.5)
        complete = self.jobs_complete(ns)
        run = self.measure("plain", ns, lambda: self.create_jobs(ns, {}, suspend=False),
                           self.wait_event(complete, "the plain Jobs to complete"))
        bench.cleanup(ns)
        return run

    def barge(self) -> PhaseRun:
        bench = self.bench
        ns = bench.fresh_namespace("bench-p2side-barge")
        bench.start_operator()
        try:
            bench.environment(ns, QUOTA_CPU)
            bench.definition(ns, "one", cpu=JOB_CPU, delay=POD_SECONDS)

            def submit() -> None:
                def create(name: str) -> None:
                    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BatchJob", "metadata": {"name": name},
                            "spec": {"jobDefinition": "one", "jobQueue": ns}}
                    bench.custom.create_namespaced_custom_object(GROUP, VERSION, ns, "batchjobs", body)

                list(bench.raw_pool.map(create, self.names()))

            def finished() -> None:
                bench.wait(lambda: bench.queue_states(ns).get("SUCCEEDED", 0) >= self.jobs, 7200,
                           "Barge's jobs to succeed", interval=0.5)

            run = self.measure("barge", ns, submit, finished)
            bench.cleanup(ns)
            bench.settle()  # with the operator still running, whatever it holds a finalizer on
        finally:
            bench.stop_operator()
        return run

    def kueue(self) -> PhaseRun:
        bench = self.bench
        ns = bench.fresh_namespace("bench-p2side-kueue")
        cluster.kueue_up()
        try:
            bench.apply([
                {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": {"name": KUEUE_FLAVOR}},
                {"apiVersion": KUEUE_API, "kind": "ClusterQueue", "metadata": {"name": KUEUE_CLUSTER_QUEUE},
                 "spec": {"namespaceSelector": {}, "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
                     {"name": KUEUE_FLAVOR, "resources": [{"name": "cpu", "nominalQuota": str(QUOTA_CPU)}]}]}]}},
                {"apiVersion": KUEUE_API, "kind": "LocalQueue",
                 "metadata": {"name": KUEUE_LOCAL_QUEUE, "namespace": ns},
                 "spec": {"clusterQueue": KUEUE_CLUSTER_QUEUE}},
            ])
            bench.kubectl("wait", "--for=condition=Active", "--timeout=60s", f"clusterqueue/{KUEUE_CLUSTER_QUEUE}")
            bench.kubectl("wait", "--for=condition=Active", "--timeout=60s", "-n", ns,
                          f"localqueue/{KUEUE_LOCAL_QUEUE}")
            complete = self.jobs_complete(ns)
            run = self.measure("kueue", ns,
                               lambda: self.create_jobs(ns, {KUEUE_QUEUE_LABEL: KUEUE_LOCAL_QUEUE}, suspend=True),
                               self.wait_event(complete, "Kueue's Jobs to complete"))
        finally:
            bench.cleanup(ns)
            bench.settle()  # Kueue holds a finalizer on every Workload: delete them while it runs
            cluster.kueue_down()
        return run
