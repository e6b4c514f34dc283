"""Fair share, as AWS Batch's scheduling policies define it. Pure code; the clock is a parameter.

- Usage is vCPU-seconds decayed exponentially with the policy's window (shareDecaySeconds; 0 means
  AWS's default of 600 s): a share that held r vCPUs for long has usage r x window, and one that
  stopped running loses 63 % of its usage per window.
- A share's standing is weightFactor x (usage / window + vCPUs it runs now): the vCPUs it used on
  average over the window plus what it holds now, scaled by its weight. The share with the lowest
  standing is served next, so a lower weightFactor gets a larger share (0.5 gets twice what 1.0 gets).
- A prefix entry (`team-a*`, weight w) gives each of its n active identifiers weight n x w, so the
  group together behaves like one identifier of weight w; an identifier in no entry has weight 1.
- computeReservation keeps (computeReservation/100)^activeShares of an environment's maxvCpus free for
  shares that have no running job.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

DEFAULT_DECAY_SECONDS = 600  # AWS's window when shareDecaySeconds is 0
DEFAULT_WEIGHT = 1.0  # an identifier no entry names
FORGOTTEN_USAGE = 0.01  # vCPU-seconds below which an idle share's usage is dropped


@dataclass(frozen=True, slots=True)
class ShareEntry:
    identifier: str  # a trailing '*' is a prefix match
    weight: float = DEFAULT_WEIGHT

    @property
    def prefix(self) -> str | None:
        return self.identifier[:-1] if self.identifier.endswith("*") else None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    decay_seconds: int = 0
    compute_reservation: int = 0
    distribution: tuple[ShareEntry, ...] = ()
    usage: Mapping[str, float] = field(default_factory=dict)  # decayed vCPU-seconds per share, now

    @property
    def window(self) -> float:
        return float(window(self.decay_seconds))


def window(decay_seconds: int) -> int:
    return decay_seconds if decay_seconds > 0 else DEFAULT_DECAY_SECONDS


# --- weights ---------------------------------------------------------------------------------

def entry_for(distribution: Iterable[ShareEntry], identifier: str) -> ShareEntry | None:
    """The entry that sets an identifier's weight: its exact entry, else the longest prefix entry."""
    best: ShareEntry | None = None
    for entry in distribution:
        prefix = entry.prefix
        if entry.identifier == identifier:
            return entry
        if prefix is not None and identifier.startswith(prefix) and (
                best is None or len(prefix) > len(best.identifier) - 1):
            best = entry
    return best


def weights(distribution: Iterable[ShareEntry], active: Collection[str]) -> dict[str, float]:
    """The weight in effect of each active identifier: a prefix entry's w becomes n x w for each of
    its n active identifiers."""
    entries = tuple(distribution)
    chosen = {identifier: entry_for(entries, identifier) for identifier in active}
    members: dict[str, int] = {}
    for entry in chosen.values():
        if entry is not None and entry.prefix is not None:
            members[entry.identifier] = members.get(entry.identifier, 0) + 1
    result: dict[str, float] = {}
    for identifier, entry in chosen.items():
        if entry is None:
            result[identifier] = DEFAULT_WEIGHT
        elif entry.prefix is None:
            result[identifier] = entry.weight
        else:
            result[identifier] = entry.weight * members[entry.identifier]
    return result


def weight_of(distribution: Iterable[ShareEntry], identifier: str, active: Collection[str]) -> float:
    return weights(distribution, {*active, identifier})[identifier]


# --- usage -----------------------------------------------------------------------------------

def decayed(usage: float, running_vcpus: float, elapsed: float, window_seconds: float) -> float:
    """Usage after `elapsed` seconds during which the share held `running_vcpus`: the exact integral
    of exponential decay, so how often it is computed does not change the result."""
    if elapsed <= 0:
        return usage
    kept = math.exp(-elapsed / window_seconds)
    return usage * kept + running_vcpus * window_seconds * (1.0 - kept)


def advance(usage: Mapping[str, float], running_vcpus: Mapping[str, float], elapsed: float,
            window_seconds: float) -> dict[str, float]:
    """Every share's usage `elapsed` seconds later; idle shares whose usage has decayed away are dropped."""
    result: dict[str, float] = {}
    for share in {*usage, *running_vcpus}:
        running = running_vcpus.get(share, 0.0)
        value = decayed(usage.get(share, 0.0), running, elapsed, window_seconds)
        if running > 0 or value >= FORGOTTEN_USAGE:
            result[share] = value
    return result


def standing(weight: float, usage: float, running_vcpus: float, window_seconds: float) -> float:
    """Lower is served first."""
    return weight * (usage / window_seconds + running_vcpus)


def reserve_fraction(compute_reservation: int, active_shares: int) -> float:
    """The fraction of maxvCpus kept free for shares with no running job."""
    if compute_reservation <= 0 or active_shares <= 0:
        return 0.0
    return float((compute_reservation / 100.0) ** active_shares)


# --- the order in which shares are served ----------------------------------------------------

T = TypeVar("T")


class ShareOrder(Generic[T]):
    """Waiting jobs of one policy, each share's already in its own order (priority, then submission):
    `head` is the next job of the share with the lowest standing; `took` records what it was given,
    which raises its share's standing; `skip` passes over it (it did not get anything)."""

    def __init__(self, policy: Policy, jobs: Iterable[T], share_of: Callable[[T], str],
                 submitted_of: Callable[[T], float], running_milli: Mapping[str, int]) -> None:
        self.policy = policy
        self._window = policy.window
        self._queues: dict[str, list[T]] = {}
        for job in jobs:
            self._queues.setdefault(share_of(job), []).append(job)
        for queue in self._queues.values():
            queue.reverse()  # popped from the end
        self._submitted_of = submitted_of
        self.running_milli: dict[str, int] = dict(running_milli)
        active = {*self._queues, *(s for s, m in running_milli.items() if m > 0)}
        self.active_shares = len(active)
        self.weights = weights(policy.distribution, active)
        self.reserve = reserve_fraction(policy.compute_reservation, self.active_shares)
        self._heap: list[tuple[float, float, str]] = [self._entry(share) for share in self._queues]
        heapq.heapify(self._heap)
        self._current: str | None = None

    def _standing(self, share: str) -> float:
        return standing(self.weights.get(share, DEFAULT_WEIGHT), self.policy.usage.get(share, 0.0),
                        self.running_milli.get(share, 0) / 1000.0, self._window)

    def _entry(self, share: str) -> tuple[float, float, str]:
        return (self._standing(share), self._submitted_of(self._queues[share][-1]), share)

    def head(self) -> T | None:
        if self._current is None:
            if not self._heap:
                return None
            self._current = heapq.heappop(self._heap)[2]
        return self._queues[self._current][-1]

    def running(self, share: str) -> bool:
        return self.running_milli.get(share, 0) > 0

    def skip(self) -> None:
        """The head got nothing: its share's standing is unchanged, so the share stays first."""
        queue = self._queues[self._current]  # type: ignore[index]
        queue.pop()
        if not queue:
            self._current = None

    def rest(self) -> list[T]:
        """Every job not served yet, in no particular order; the order is then empty."""
        rest = [job for queue in self._queues.values() for job in queue]
        for queue in self._queues.values():
            queue.clear()
        self._heap.clear()
        self._current = None
        return rest

    def took(self, cpu_milli: int) -> None:
        """The head was given `cpu_milli` (and leaves the order)."""
        share = self._current
        assert share is not None
        self.running_milli[share] = self.running_milli.get(share, 0) + cpu_milli
        self._advance(changed=cpu_milli > 0)

    def _advance(self, changed: bool) -> None:
        share = self._current
        assert share is not None
        queue = self._queues[share]
        queue.pop()
        if not queue:
            self._current = None
            return
        if changed:
            entry = self._entry(share)
            if self._heap and self._heap[0] < entry:
                self._current = heapq.heappushpop(self._heap, entry)[2]


def service_order(policy: Policy, jobs: Iterable[T], share_of: Callable[[T], str],
                  submitted_of: Callable[[T], float], cpu_milli_of: Callable[[T], int],
                  running_milli: Mapping[str, int]) -> list[T]:
    """The order in which a policy's waiting jobs are considered, if each got what it asks for in turn
    (what `barge describe` shows as a job's place). `jobs` come in each share's own order."""
    order = ShareOrder(policy, jobs, share_of, submitted_of, running_milli)
    result: list[T] = []
    while (job := order.head()) is not None:
        result.append(job)
        order.took(cpu_milli_of(job))
    return result
