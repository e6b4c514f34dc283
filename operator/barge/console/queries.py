"""What the console's pages show, computed from plain objects: filtering, sorting and paging jobs, a
job's place in its queue, its dependency graph and its array children. No I/O here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from barge.core.states import JOB_STATES, TERMINAL

Obj = dict[str, Any]
PAGE_SIZE = 50
SORTS = ("newest", "oldest", "name")


def state(job: Obj) -> str:
    return str((job.get("status") or {}).get("state") or "SUBMITTED")


def key(job: Obj) -> tuple[str, str]:
    return job["metadata"].get("namespace", ""), job["metadata"]["name"]


@dataclass(frozen=True)
class JobFilter:
    namespace: str = ""
    queue: str = ""
    state: str = ""
    name: str = ""  # a substring of the name
    sort: str = "newest"
    page: int = 1

    def problems(self) -> dict[str, str]:
        found = {}
        if self.state and self.state not in JOB_STATES:
            found["state"] = f"unknown state '{self.state}'; states: {', '.join(JOB_STATES)}"
        if self.sort not in SORTS:
            found["sort"] = f"unknown sort '{self.sort}'; sorts: {', '.join(SORTS)}"
        if self.page < 1:
            found["page"] = "page must be 1 or more"
        return found

    def matches(self) -> Callable[[Obj], bool]:
        namespace, queue, wanted, name = self.namespace, self.queue, self.state, self.name

        def match(job: Obj) -> bool:
            meta = job["metadata"]
            return ((not namespace or meta.get("namespace") == namespace)
                    and (not queue or job.get("spec", {}).get("jobQueue") == queue)
                    and (not wanted or state(job) == wanted)
                    and (not name or name in meta["name"]))
        return match


@dataclass
class Page:
    items: list[Obj]
    total: int
    page: int
    pages: int


def sort_key(sort: str) -> Callable[[Obj], Any]:
    if sort == "name":
        return lambda j: (j["metadata"]["name"], j["metadata"].get("namespace", ""))
    return lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"])


def page_of(ordered: list[Obj], wanted: JobFilter, size: int = PAGE_SIZE) -> Page:
    """`ordered` is already sorted by `wanted.sort`; a page past the end is the last page."""
    match = wanted.matches()
    matching = [job for job in ordered if match(job)]
    pages = max(1, -(-len(matching) // size))
    page = min(wanted.page, pages)
    start = (page - 1) * size
    return Page(matching[start:start + size], len(matching), page, pages)


def queue_position(job: Obj, jobs: Iterable[Obj]) -> tuple[int, int] | None:
    """(position, of how many) among the RUNNABLE jobs of the job's queue, in the order the
    scheduler serves them (higher schedulingPriorityOverride first, then when they were queued)."""
    if state(job) != "RUNNABLE":
        return None
    queue = job.get("spec", {}).get("jobQueue")
    waiting = [j for j in jobs if state(j) == "RUNNABLE" and j.get("spec", {}).get("jobQueue") == queue]
    waiting.sort(key=lambda j: (-int(j.get("spec", {}).get("schedulingPriorityOverride") or 0),
                                float((j.get("status") or {}).get("queuedAt") or 0), key(j)))
    keys = [key(j) for j in waiting]
    return (keys.index(key(job)) + 1, len(keys)) if key(job) in keys else None


def waits_for(job: Obj, dependency_states: dict[str, str] | None = None) -> str:
    """What the job waits for, in words, or "" when it waits for nothing."""
    current, reason = state(job), (job.get("status") or {}).get("statusReason") or ""
    if current == "SUBMITTED":
        return "the operator to admit it"
    if current == "PENDING":
        open_ones = [f"{name} ({found})" for name, found in (dependency_states or {}).items()
                     if found not in ("SUCCEEDED", "FAILED")]
        return "dependencies: " + ", ".join(open_ones) if open_ones else "its dependencies"
    if current == "RUNNABLE":
        category = reason.split(" - ", 1)[0]
        return {"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": "capacity now in use by other jobs to be freed",
                "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE":
                    "nothing that will come: it is bigger than every compute environment of its queue can hold",
                "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT":
                    "a compute environment that provides its kind of resource"}.get(
            category, f"its turn: {reason}" if reason else "capacity in its queue's compute environments")
    if current == "STARTING":
        return f"its container to start{': ' + reason if reason else ''}"
    return ""


# --- the dependency graph ---------------------------------------------------------------------

@dataclass
class Graph:
    nodes: list[dict[str, Any]] = field(default_factory=list)  # name, state, x, y, current
    edges: list[dict[str, Any]] = field(default_factory=list)  # source, target, label, x1.. y2
    width: int = 0
    height: int = 0


NODE_W, NODE_H, GAP_X, GAP_Y = 170, 36, 60, 18


def _upstream(job: Obj) -> list[tuple[str, str]]:
    """(jobName, label) of the jobs this one depends on (SEQUENTIAL on itself is not an edge)."""
    found = []
    for dependency in job.get("spec", {}).get("dependsOn") or []:
        if dependency.get("jobName"):
            label = " ".join(p for p in (dependency.get("type") or "",
                                         dependency.get("condition") or "Succeeded") if p)
            found.append((dependency["jobName"], label))
    return found


def dependency_graph(job: Obj, namespace_jobs: Iterable[Obj], limit: int = 60) -> Graph:
    """The connected part of the job's DAG (its namespace), laid out in layers from left to right."""
    by_name = {j["metadata"]["name"]: j for j in namespace_jobs}
    by_name.setdefault(job["metadata"]["name"], job)
    downstream: dict[str, list[str]] = {}
    for name, other in by_name.items():
        for upstream, _ in _upstream(other):
            downstream.setdefault(upstream, []).append(name)
    seen: set[str] = set()
    todo = [job["metadata"]["name"]]
    while todo and len(seen) < limit:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [u for u, _ in _upstream(by_name.get(name, {}))] + downstream.get(name, [])
    if len(seen) == 1 and not _upstream(job):
        return Graph()
    depth: dict[str, int] = {}

    def layer(name: str, path: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        ups = [u for u, _ in _upstream(by_name.get(name, {})) if u in seen and u not in path]
        depth[name] = 1 + max((layer(u, path | {name}) for u in ups), default=-1)
        return depth[name]

    for name in sorted(seen):
        layer(name)
    columns: dict[int, list[str]] = {}
    for name in sorted(seen):
        columns.setdefault(depth[name], []).append(name)
    graph = Graph()
    where = {}
    for column, names in sorted(columns.items()):
        for row, name in enumerate(names):
            x, y = 10 + column * (NODE_W + GAP_X), 10 + row * (NODE_H + GAP_Y)
            where[name] = (x, y)
            found = by_name.get(name)
            graph.nodes.append({"name": name, "state": state(found) if found else "MISSING", "x": x, "y": y,
                                "current": name == job["metadata"]["name"], "exists": found is not None})
    for name in sorted(seen):
        for upstream, label in _upstream(by_name.get(name, {})):
            if upstream in where:
                (x1, y1), (x2, y2) = where[upstream], where[name]
                graph.edges.append({"source": upstream, "target": name, "label": label,
                                    "x1": x1 + NODE_W, "y1": y1 + NODE_H // 2, "x2": x2, "y2": y2 + NODE_H // 2})
    graph.width = 20 + (max(columns) + 1) * (NODE_W + GAP_X)
    graph.height = 20 + max(len(n) for n in columns.values()) * (NODE_H + GAP_Y)
    return graph


# --- array children ---------------------------------------------------------------------------

def parse_ranges(text: str) -> set[int]:
    indices: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        indices.update(range(int(low), int(high or low) + 1))
    return indices


def format_ranges(indices: Iterable[int]) -> str:
    ordered = sorted(indices)
    parts: list[str] = []
    start = prev = None
    for i in [*ordered, None]:
        if i is not None and prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ",".join(parts)


GRID_LIMIT = 2000


def array_children(job: Obj, running: dict[int, str]) -> dict[str, Any] | None:
    """Each child's state (for a grid) and the index ranges per state. `running` maps the indices of
    the children that have a live pod to STARTING or RUNNING; the others that are not finished wait."""
    array = (job.get("status") or {}).get("arrayProperties")
    size = int((array or {}).get("size") or (job.get("spec", {}).get("arrayProperties") or {}).get("size") or 0)
    if not size:
        return None
    array = array or {}
    succeeded, failed = parse_ranges(array.get("succeededIndices", "")), parse_ranges(array.get("failedIndices", ""))
    waiting_state = "PENDING" if state(job) in ("SUBMITTED", "PENDING") and not succeeded | failed else "RUNNABLE"
    by_state: dict[str, set[int]] = {s: set() for s in JOB_STATES}
    cells = []
    for index in range(size):
        child = ("SUCCEEDED" if index in succeeded else "FAILED" if index in failed
                 else running.get(index, waiting_state))
        by_state[child].add(index)
        if index < GRID_LIMIT:
            cells.append({"index": index, "state": child})
    summary = array.get("statusSummary") or {s: len(by_state[s]) for s in JOB_STATES}
    return {"size": size, "cells": cells, "truncated": size > GRID_LIMIT,
            "ranges": {s: format_ranges(v) for s, v in by_state.items() if v}, "summary": summary}


# --- the overview -----------------------------------------------------------------------------

def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def throughput(jobs: Iterable[Obj], now: dt.datetime, buckets: int = 12, minutes: int = 60) -> list[dict[str, int]]:
    """Jobs finished per bucket over the last `minutes`, oldest bucket first: {succeeded, failed}."""
    width = minutes * 60 / buckets
    counts = [{"succeeded": 0, "failed": 0} for _ in range(buckets)]
    for job in jobs:
        current = state(job)
        if current not in TERMINAL:
            continue
        stopped = parse_time((job.get("status") or {}).get("stoppedAt"))
        if stopped is None:
            continue
        ago = (now - stopped).total_seconds()
        if 0 <= ago < minutes * 60:
            counts[buckets - 1 - int(ago // width)][current.lower()] += 1
    return counts


def cpu_number(quantity: Any) -> float:
    text = str(quantity or "0")
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text or 0)
