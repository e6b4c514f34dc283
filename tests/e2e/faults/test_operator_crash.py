"""The operator killed (SIGKILL) at random moments under a mixed workload loses no job and runs
none twice, and the quota holds at every sampled instant.

A seeded generator (BARGE_FAULT_SEED, printed in the output and in every assertion message) draws
the workload, the moments of the kills, the pauses before each restart and the moments new jobs are
submitted, so a failing run replays with the same seed. The short version (the default, run in CI)
has 60-100 jobs and array children and 5-8 kills; BARGE_FAULT_SCALE=full has over 1,000 jobs and
20-24 kills:

    flock /tmp/cluster.lock env BARGE_FAULT_SCALE=full BARGE_FAULT_SEED=17 scripts/test -m faults -k crash -s
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.barge_objects import Barge, compute_environment, job_queue
from tests.e2e.conftest import OperatorProcess
from tests.e2e.faults.conftest import fault_seed, full_scale
from tests.e2e.faults.observer import Observer
from tests.e2e.faults.workload import Mix, plan, verdict, wait_finished


@dataclass(frozen=True)
class Scale(Mix):
    name: str = ""
    kills: tuple[int, int] = (5, 8)      # how many, drawn in this range
    waves: int = 3                       # submissions spread over the kills
    quotas: tuple[int, int] = (4, 3)     # maxvCpus of the two compute environments
    finish_seconds: float = 300          # after the last restart, every job is finished within this


SHORT = Scale(name="short", singles=30, chains=3, arrays=3, array_sizes=(5, 20), kills=(5, 8), waves=3,
              quotas=(4, 3), finish_seconds=300)
FULL = Scale(name="full", singles=1000, chains=30, arrays=12, array_sizes=(5, 20), kills=(20, 24), waves=8,
             quotas=(24, 16), finish_seconds=1800)
SCALE = FULL if full_scale() else SHORT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(5400 if SCALE is FULL else 900)]


@dataclass
class Schedule:
    """When each kill comes (seconds the operator runs first), how long it stays down, and before
    which kill each wave of submissions goes in (wave 0 before the first)."""
    run_for: list[float]
    down_for: list[float]
    waves: dict[int, list[list[dict[str, Any]]]]


def schedule(rng: random.Random, scale: Scale, batchjobs: list[dict[str, Any]]) -> Schedule:
    kills = rng.randint(*scale.kills)
    run_for = [round(rng.uniform(0.2, 6.0), 2) for _ in range(kills)]
    down_for = [0.0 if rng.random() < 0.5 else round(rng.uniform(0.1, 2.0), 2) for _ in range(kills)]
    shuffled = list(batchjobs)
    rng.shuffle(shuffled)
    chunks = [shuffled[i::scale.waves] for i in range(scale.waves)]
    # Later waves go in before kills drawn from the first two thirds, so every wave meets kills.
    later = range(1, max(2, kills * 2 // 3))
    positions = [0, *sorted(rng.sample(later, min(scale.waves - 1, len(later))))]
    waves: dict[int, list[list[dict[str, Any]]]] = defaultdict(list)
    for i, chunk in enumerate(chunks):
        waves[positions[min(i, len(positions) - 1)]].append(chunk)
    return Schedule(run_for, down_for, dict(waves))



def test_operator_killed_at_random_moments_loses_no_job_and_runs_none_twice(
        barge: Barge, process: OperatorProcess, capsys: pytest.CaptureFixture[str]) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    replay = (f"[seed {seed}: replay with BARGE_FAULT_SEED={seed}"
              f"{' BARGE_FAULT_SCALE=full' if SCALE is FULL else ''}; operator log {process.log_path}]")

    def say(text: str) -> None:
        with capsys.disabled():
            print(text, flush=True)

    say(f"\nfault tier: operator SIGKILL, {SCALE.name} scale, BARGE_FAULT_SEED={seed}, "
        f"operator log {process.log_path}")
    ce_a, ce_b, queue = barge.name("ce-a"), barge.name("ce-b"), barge.name("q")
    quotas = {ce_a: SCALE.quotas[0] * 1000, ce_b: SCALE.quotas[1] * 1000}
    work = plan(rng, SCALE, queue)
    faults = schedule(rng, SCALE, work.batchjobs)
    barge.apply(compute_environment(ce_a, SCALE.quotas[0]), compute_environment(ce_b, SCALE.quotas[1]),
                job_queue(queue, [ce_a, ce_b]))
    barge.apply(*work.definitions)

    kills = 0
    in_flight: list[int] = []  # pods running (or starting) at each kill, as last sampled
    killed_at: list[str] = []  # when, in the observer's time (as in breaches) and UTC (as in logs)
    died_alone: list[str] = []
    began = time.monotonic()
    with Observer(barge.cluster, barge.namespace, quotas, interval=0.2,
                  limit_seconds=SCALE.finish_seconds + 1200) as observer:
        try:
            for k, (run_for, down_for) in enumerate(zip(faults.run_for, faults.down_for, strict=True)):
                for wave in faults.waves.get(k, []):
                    barge.apply(*wave)
                time.sleep(run_for)
                assert process.process is not None
                if process.process.poll() is not None:
                    died_alone.append(f"before kill {k + 1}: exit code {process.process.returncode}")
                in_flight.append(observer.live)
                process.stop(kill=True)
                kills += 1
                now = dt.datetime.now(dt.UTC)
                killed_at.append(f"{observer.elapsed():.1f}s ({now:%H:%M:%S}.{now.microsecond // 1000:03d})")
                time.sleep(down_for)
                process.start()
        finally:
            if process.process is None:
                process.start()
        last_restart = time.monotonic()
        statuses = wait_finished(barge, set(work.expected), SCALE.finish_seconds)
        finished_after = time.monotonic() - last_restart
    observer.sweep()
    duration = time.monotonic() - began

    judged = verdict(work, statuses, observer)
    lost, wrong, twice, by_state = judged.lost, judged.wrong, judged.twice, judged.by_state
    peaks = ", ".join(f"{ce.removeprefix(barge.namespace + '-')} {observer.peak_milli.get(ce, 0) / 1000:g}/"
                      f"{quota / 1000:g}" for ce, quota in quotas.items())
    say(f"""fault tier figures (seed {seed}, {SCALE.name}):
  kills injected (SIGKILL)   {kills} (pods in flight at each: {in_flight}), restarts after 0-2 s
  BatchJobs                  {len(work.expected)} ({work.one_pod} one-pod, \
{len(work.expected) - work.one_pod} arrays with {work.children} children); final states {dict(by_state)}
  jobs lost                  {len(lost)}
  wrong outcomes             {len(wrong)}
  duplicated attempts        {len(twice)}
  quota breaches             {len(observer.breaches)} in {observer.samples} samples (peak vCPU {peaks})
  operator exits not ours    {len(died_alone)}
  duration                   {duration:.0f} s ({finished_after:.0f} s from the last restart to the last job)
  kills at                   {", ".join(killed_at)}""")
    for title, found in (("jobs lost", lost), ("wrong outcomes", wrong), ("duplicated attempts", twice),
                         ("quota breaches", observer.breaches)):
        if found:
            say(f"  {title}:\n" + "\n".join(f"    {item}" for item in found[:10]))

    assert observer.samples >= duration / 2, f"{replay} the sampler took {observer.samples} samples in " \
        f"{duration:.0f} s; errors: {observer.errors[-5:]}"
    assert not died_alone, f"{replay} the operator exited without being killed: {died_alone}"
    assert not lost, f"{replay} {len(lost)} jobs not finished {SCALE.finish_seconds:.0f} s after the last " \
        f"restart: {lost[:20]}"
    assert not twice, f"{replay} created or counted twice: {twice[:20]}"
    assert not observer.breaches, f"{replay} quota exceeded at {len(observer.breaches)} sampled instants: " \
        f"{observer.breaches[:5]}; kills at {killed_at}; placements recorded wrongly: " \
        f"{[w for w in wrong if 'computeEnvironment' in w][:10]}"
    assert not observer.unplaced_pods, f"{replay} live pods without a compute environment label: " \
        f"{sorted(observer.unplaced_pods)[:10]}"
    assert not wrong, f"{replay} {len(wrong)} jobs did not end as their script implies: {wrong[:20]}"
