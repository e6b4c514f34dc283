"""Fair-share usage: each scheduling policy's decayed vCPU-seconds per share, advanced at every
scheduling pass from what its shares run (core.fairshare), and kept in the policy's status so that
a restarted operator starts from it. Also the policy's status and the per-share gauge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from barge import metrics
from barge.controller.records import PolicyRecord
from barge.controller.status import StatusWriter
from barge.controller.store import Store
from barge.core import fairshare
from barge.core.conditions import set_condition
from barge.core.times import iso, parse_time

log = logging.getLogger("barge.shares")
USAGE_WRITE_SECONDS = 5.0  # usage alone changes every pass while jobs run: written at most this often
BUSIEST_SHOWN = 3


@dataclass
class Ledger:
    usage: dict[str, float]
    at: float
    running: dict[str, float] = field(default_factory=dict)  # vCPUs per share at `at`


@dataclass(frozen=True)
class ShareCounts:
    """What a policy's shares run and wait with, as the last pass saw them."""
    running_milli: Mapping[str, int]
    runnable: Mapping[str, int]


class Shares:
    def __init__(self, store: Store, status: StatusWriter, clock: Callable[[], float]) -> None:
        self.store = store
        self.status = status
        self.clock = clock
        self._ledgers: dict[str, Ledger] = {}
        self._written: dict[str, tuple[Any, float]] = {}  # policy -> (status without usage, when written)
        self._gauges: dict[str, set[str]] = {}

    def usage(self, record: PolicyRecord, running_milli: Mapping[str, int], now: float) -> dict[str, float]:
        """The policy's usage per share now. Each pass charges the interval since the last one with what
        ran at the last one; the first (after a start) continues from the usage in the policy's status,
        charging the gap with what runs now (jobs keep running while no operator watches)."""
        running = {share: milli / 1000.0 for share, milli in running_milli.items() if milli > 0}
        window = float(fairshare.window(int((record.spec.get("fairsharePolicy") or {}).get("shareDecaySeconds") or 0)))
        ledger = self._ledgers.get(record.name)
        if ledger is None:
            ledger = Ledger(*self._seed(record, now), running)
        usage = fairshare.advance(ledger.usage, ledger.running, now - ledger.at, window)
        self._ledgers[record.name] = Ledger(usage, max(now, ledger.at), running)
        return usage

    def forget_missing(self, names: set[str]) -> None:
        for name in set(self._ledgers) - names:
            del self._ledgers[name]
            self._written.pop(name, None)
            for share in self._gauges.pop(name, set()):
                metrics.SHARE_USAGE.remove(name, share)

    async def refresh(self, counts: Mapping[str, ShareCounts]) -> None:
        """Every policy's status and gauges, from the usage the last pass computed."""
        policies = self.store.policies()
        self.forget_missing({p.name for p in policies})
        for record in policies:
            await self._refresh(record, counts.get(record.name, ShareCounts({}, {})))

    async def _refresh(self, record: PolicyRecord, counts: ShareCounts) -> None:
        ledger = self._ledgers.get(record.name)
        now = self.clock()
        if ledger is None:  # no pass has seen it yet
            ledger = Ledger(*self._seed(record, now))
        self._gauge(record.name, ledger.usage)
        status = policy_status(record, ledger.usage, counts, ledger.at, now)
        shape = {k: v for k, v in status.items() if k not in ("usageAt", "busiest")}
        shape["shares"] = [{k: v for k, v in s.items() if k != "usage"} for s in status["shares"]]
        last = self._written.get(record.name)
        if last is not None and last[0] == shape and now - last[1] < USAGE_WRITE_SECONDS:
            return
        self._written[record.name] = (shape, now)
        await self.status.write_if_changed("SchedulingPolicy", record, status)

    @staticmethod
    def _seed(record: PolicyRecord, now: float) -> tuple[dict[str, float], float]:
        written, at = record.written_usage()
        since = parse_time(at) if at else None
        return written, since if since is not None else now

    def _gauge(self, policy: str, usage: Mapping[str, float]) -> None:
        shown = self._gauges.setdefault(policy, set())
        for share in shown - set(usage):
            metrics.SHARE_USAGE.remove(policy, share)
        for share, value in usage.items():
            metrics.SHARE_USAGE.labels(policy, share).set(value)
        self._gauges[policy] = set(usage)


def policy_status(record: PolicyRecord, usage: Mapping[str, float], counts: ShareCounts, at: float,
                  now: float) -> dict[str, Any]:
    """The policy's status: per share (active or with usage left) its weight in effect, usage,
    vCPUs running and jobs waiting, busiest first."""
    policy = record.to_core(dict(usage))
    active = {*counts.runnable, *(s for s, m in counts.running_milli.items() if m > 0)}
    shown = sorted({*active, *usage}, key=lambda s: (-usage.get(s, 0.0), s))
    in_effect = {s: fairshare.weight_of(policy.distribution, s, active) for s in shown}  # n counts active ones
    shares = [{"shareIdentifier": s, "weightFactor": round(in_effect[s], 4), "usage": round(usage.get(s, 0.0), 1),
               "runningvCpus": counts.running_milli.get(s, 0) / 1000.0, "runnableJobs": counts.runnable.get(s, 0)}
              for s in shown]
    busiest = ", ".join(f"{s['shareIdentifier']}={s['usage']}" for s in shares[:BUSIEST_SHOWN])
    conditions, _ = set_condition(record.status.get("conditions") or [], "Ready", True, "Valid",
                                  "SchedulingPolicy is in use by the queues that name it", record.generation,
                                  iso(now))
    return {"shares": shares, "usageAt": iso(at), "busiest": busiest or "-", "activeShares": len(active),
            "observedGeneration": record.generation, "conditions": conditions}
