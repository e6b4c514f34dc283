"""Multi-node parallel jobs (AWS's "gangs"): node ranges, which node runs which template, which pods
of an attempt to create next, and what each node shows. Pure code.

An attempt's pods are created main node first; the other nodes are created once the main node's pod
has an IP, which they are given as AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS (AWS also starts the
main node first). The whole gang is placed (charged to one compute environment) before any pod
exists, so a partial gang never holds quota."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from barge.core.lifecycle import PodObservation

TARGET_NODES = re.compile(r"^(?:(\d+)|(\d+):(\d*)|:(\d+))$")


def parse_target(text: str, num_nodes: int) -> tuple[int, int]:
    """'2' -> (2, 2); '0:3' -> (0, 3); '4:' -> (4, last); ':3' -> (0, 3). Raises ValueError."""
    match = TARGET_NODES.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a node index or range (\"2\", \"0:3\", \"4:\", \":3\")")
    single, start, end, upto = match.groups()
    if single is not None:
        first = last = int(single)
    elif start is not None:
        first, last = int(start), int(end) if end else num_nodes - 1
    else:
        first, last = 0, int(upto)
    if first > last:
        raise ValueError(f"{text!r} starts after it ends")
    if last >= num_nodes:
        raise ValueError(f"{text!r} names node {last}, but the job has {num_nodes} nodes (0 to {num_nodes - 1})")
    return first, last


def node_ranges(targets: Sequence[str], num_nodes: int) -> list[tuple[int, int]]:
    """Each range of `targets` as (first, last); every node must be in exactly one. Raises ValueError
    naming the range (spec.nodeProperties.nodeRangeProperties[i].targetNodes)."""
    ranges: list[tuple[int, int]] = []
    owner: dict[int, int] = {}
    for i, text in enumerate(targets):
        field = f"spec.nodeProperties.nodeRangeProperties[{i}].targetNodes"
        try:
            first, last = parse_target(text, num_nodes)
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None
        for node in range(first, last + 1):
            if node in owner:
                raise ValueError(f"{field}: node {node} is also in nodeRangeProperties[{owner[node]}]")
            owner[node] = i
        ranges.append((first, last))
    missing = [n for n in range(num_nodes) if n not in owner]
    if missing:
        raise ValueError(f"spec.nodeProperties.nodeRangeProperties: node {missing[0]} of {num_nodes} is in no "
                         "targetNodes range")
    return ranges


def node_template(nodes: dict[str, Any], index: int) -> dict[str, Any]:
    """The resolved pod template node `index` runs."""
    for entry in nodes["nodeRangeProperties"]:
        first, last = (int(v) for v in entry["targetNodes"].split(":"))
        if first <= index <= last:
            return dict(entry["template"])
    raise ValueError(f"node {index} is in no range")


def attempt_pods(pods: Sequence[PodObservation], attempt: int) -> dict[int, PodObservation]:
    """The attempt's pods by node index (a terminated pod wins over another of the same index)."""
    by_index: dict[int, PodObservation] = {}
    for pod in pods:
        if pod.attempt == attempt and pod.index is not None:
            held = by_index.get(pod.index)
            if held is None or (pod.terminated and not held.terminated):
                by_index[pod.index] = pod
    return by_index


def main_pod(nodes: dict[str, Any], pods: Sequence[PodObservation], attempt: int) -> PodObservation | None:
    return attempt_pods(pods, attempt).get(int(nodes["mainNode"]))


def pods_to_create(nodes: dict[str, Any], pods: Sequence[PodObservation], attempt: int) -> tuple[list[int], str | None]:
    """The node indices whose pods to create now, and the main node's address for them: the main node
    first; every other node once the main node's pod has an IP and is not finished."""
    have = attempt_pods(pods, attempt)
    main = int(nodes["mainNode"])
    main_node = have.get(main)
    if main_node is None:
        return [main], None
    if not main_node.ip or main_node.terminated or main_node.deleting:
        return [], None
    return [n for n in range(int(nodes["numNodes"])) if n not in have], main_node.ip


def still_running(nodes: dict[str, Any], pods: Sequence[PodObservation], attempt: int) -> list[str]:
    """The pods of the attempt's other nodes that have not ended: stopped when the main node ends (its
    own pod and the ended ones are kept, with their logs, until the attempt's Job is cleaned up)."""
    main = int(nodes["mainNode"])
    return sorted(p.name for i, p in attempt_pods(pods, attempt).items() if i != main and p.active)


def node_status(nodes: dict[str, Any], pods: Sequence[PodObservation], attempt: int) -> dict[str, Any]:
    """status.nodeProperties: each node's pod, node name, IP and exit code in this attempt."""
    have = attempt_pods(pods, attempt)
    entries: list[dict[str, Any]] = []
    for index in range(int(nodes["numNodes"])):
        entry: dict[str, Any] = {"nodeIndex": index}
        pod = have.get(index)
        if pod is not None:
            for key, value in (("podName", pod.name), ("nodeName", pod.node), ("podIP", pod.ip),
                               ("exitCode", pod.exit_code), ("reason", pod.reason if pod.terminated else None)):
                if value is not None:
                    entry[key] = value
        entries.append(entry)
    return {"numNodes": int(nodes["numNodes"]), "mainNode": int(nodes["mainNode"]), "nodes": entries}
