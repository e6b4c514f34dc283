"""The real-node tier: tests that need real containers, run by a kubelet with containerd.

On the local cluster the node is brought up (and its images built) on first use; on a cluster given
by BARGE_E2E_KUBECONFIG the tier runs when a node labelled barge.dev/pool=real exists.
"""

from __future__ import annotations

import pytest

from tests.e2e.kube import Cluster

REAL_POOL = "real"
TOLERATION = {"key": "barge.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> str:
    """The name of the real node; skips the tier with the reason when there cannot be one."""
    if cluster.local:
        from barge.dev import cluster as local
        from barge.dev import realnode

        reason = realnode.unavailable_reason()
        if reason:
            pytest.skip(f"no real node on this machine: {reason}")
        local.real_node_up(local.state_dir())
        return realnode.NODE_NAME
    nodes = cluster.core.list_node(label_selector=f"barge.dev/pool={REAL_POOL}").items
    if not nodes:
        pytest.skip(f"the cluster has no node labelled barge.dev/pool={REAL_POOL}")
    return str(nodes[0].metadata.name)
