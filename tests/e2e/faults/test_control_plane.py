"""The control plane breaks under a running workload and the operator recovers by itself: it loses
no job, runs none twice, keeps the quota, and its log and metrics say what happened.

Three faults, in one run of the seeded mixed workload (BARGE_FAULT_SEED replays it):
- etcd's history compacted, then kube-apiserver killed and started again: every watch breaks, and
  one resumed from before the compaction is answered 410 Gone (the watch expired), so the operator
  must list again;
- etcd killed and kept down for 10 s: every request fails meanwhile (the apiserver stays up);
- kube-apiserver killed again, with jobs submitted straight after it is back.

    flock /tmp/cluster.lock env BARGE_FAULT_SEED=17 scripts/test -m faults -k control_plane -s
"""

from __future__ import annotations

import random
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from barge.dev import cluster as local
from tests.e2e.barge_objects import Barge, compute_environment, job_queue
from tests.e2e.conftest import OperatorProcess, metrics_url
from tests.e2e.faults.conftest import fault_seed, full_scale
from tests.e2e.faults.observer import Observer
from tests.e2e.faults.workload import Mix, plan, verdict, wait_finished
from tests.e2e.kube import eventually

MIX = Mix(singles=300, chains=12, arrays=6, array_sizes=(5, 20)) if full_scale() else \
    Mix(singles=24, chains=3, arrays=2, array_sizes=(5, 10))
QUOTA = 4
ETCD_DOWN_SECONDS = 10
FINISH_SECONDS = 900 if full_scale() else 300

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if full_scale() else 900)]


def counters(url: str) -> dict[str, float] | None:
    """Every sample of the operator's /metrics, keyed `name{label=value,...}`; None while it does
    not answer."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def total(samples: dict[str, float], prefix: str) -> float:
    return sum(value for key, value in samples.items() if key.startswith(prefix + "{"))


def test_control_plane_faults_lose_nothing_and_the_operator_says_what_happened(
        barge: Barge, process: OperatorProcess, capsys: pytest.CaptureFixture[str]) -> None:
    if not barge.cluster.local:
        pytest.skip("the control-plane faults restart the project's local cluster")
    url = metrics_url()
    assert url is not None
    seed = fault_seed()
    rng = random.Random(seed)
    replay = f"[seed {seed}: replay with BARGE_FAULT_SEED={seed}; operator log {process.log_path}]"
    options = local.default_options()

    def say(text: str) -> None:
        with capsys.disabled():
            print(text, flush=True)

    ce, queue = barge.name("ce"), barge.name("q")
    work = plan(rng, MIX, queue)
    barge.apply(compute_environment(ce, QUOTA), job_queue(queue, [ce]))
    barge.apply(*work.definitions)
    thirds = [work.batchjobs[i::3] for i in range(3)]
    before = eventually(lambda: counters(url), 30, message="the operator's /metrics")
    injected: list[str] = []

    def fault(what: str, action: Callable[[], Any]) -> None:
        began = time.monotonic()
        action()
        injected.append(f"{what} ({time.monotonic() - began:.1f} s until ready)")

    began = time.monotonic()
    with Observer(barge.cluster, barge.namespace, {ce: QUOTA * 1000}, interval=0.2,
                  limit_seconds=FINISH_SECONDS + 600) as observer:
        try:
            barge.apply(*thirds[0])
            time.sleep(rng.uniform(2, 5))
            fault("etcd compacted, kube-apiserver killed and restarted",
                  lambda: (local.compact_etcd(), local.restart_component("kube-apiserver", options, 1.0)))
            barge.apply(*thirds[1])
            time.sleep(rng.uniform(2, 5))
            fault(f"etcd killed, down {ETCD_DOWN_SECONDS} s",
                  lambda: local.restart_component("etcd", options, ETCD_DOWN_SECONDS))
            time.sleep(rng.uniform(1, 3))
            fault("kube-apiserver killed and restarted, jobs submitted at once",
                  lambda: local.restart_component("kube-apiserver", options))
            barge.apply(*thirds[2])
        finally:
            local.up(options)  # whatever did not come back (a controller that gave up) is started again
        statuses = wait_finished(barge, set(work.expected), FINISH_SECONDS)
    observer.sweep()
    duration = time.monotonic() - began
    judged = verdict(work, statuses, observer)
    after = eventually(lambda: counters(url), 30, message="the operator's /metrics")
    relists = total(after, "barge_watch_relists_total") - total(before, "barge_watch_relists_total")
    errors = total(after, "barge_kubernetes_api_errors_total") - total(before, "barge_kubernetes_api_errors_total")
    log = process.log_path.read_text(errors="replace")
    say(f"""
fault tier figures (control plane, seed {seed}):
  faults injected            {len(injected)}: {'; '.join(injected)}
  BatchJobs                  {len(work.expected)} ({work.one_pod} one-pod, {len(work.expected) - work.one_pod} \
arrays with {work.children} children); final states {dict(judged.by_state)}
  jobs lost                  {len(judged.lost)}
  wrong outcomes             {len(judged.wrong)}
  duplicated attempts        {len(judged.twice)}
  quota breaches             {len(observer.breaches)} in {observer.samples} samples
  operator                   {'alive' if process.process and process.process.poll() is None else 'EXITED'}; \
watch relists (410) {relists:g}; API errors counted {errors:g}
  duration                   {duration:.0f} s""")

    assert process.process is not None and process.process.poll() is None, f"{replay} the operator exited"
    assert not judged.lost, f"{replay} jobs not finished: {judged.lost[:20]}"
    assert not judged.twice, f"{replay} created or counted twice: {judged.twice[:20]}"
    assert not observer.breaches, f"{replay} quota exceeded: {observer.breaches[:5]}"
    assert not judged.wrong, f"{replay} jobs did not end as their script implies: {judged.wrong[:20]}"
    # What happened is told: the expired watches were listed again, and the failed calls counted.
    assert relists >= 1 and "expired; listed" in log, f"{replay} no watch expiry seen after the compaction"
    assert errors >= 1, f"{replay} no API error counted while etcd was down"
