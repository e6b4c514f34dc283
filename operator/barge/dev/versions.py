"""Pinned versions of everything the local cluster builds. Change them here only."""

KUBERNETES = "v1.35.4"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
HELM = "v4.3.1"
# Karpenter with its kwok cloud provider (`barge dev cluster up --karpenter`). Later versions need a
# newer Go than 1.26.
KARPENTER = "v1.13.0"
# Kueue, run out of cluster only by `barge bench`'s side-by-side step (a yardstick, never part of Barge).
KUEUE = "v0.17.0"

# The staging modules of k8s.io/kubernetes are published as v0.<minor>.<patch>.
STAGING = "v0." + KUBERNETES.removeprefix("v1.")

ALL = {"kubernetes": KUBERNETES, "etcd": ETCD, "kwok": KWOK, "helm": HELM, "karpenter": KARPENTER, "kueue": KUEUE}
