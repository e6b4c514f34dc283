"""The chart installs Barge as people install operators: run first by scripts/test-helm, before the
whole e2e suite runs through the installed operator."""

from __future__ import annotations

import time

import yaml

from tests.e2e.helm.chart import CHART, NAMESPACE, RELEASE, helm, install, leader, operator_pods, values_args
from tests.e2e.kube import Cluster, eventually


def test_lint_is_clean(cluster: Cluster) -> None:
    result = helm(cluster, "lint", "--strict", str(CHART), *values_args())
    assert "0 chart(s) failed" in result.stdout, result.stdout


def test_invalid_values_fail_at_install_naming_the_field(cluster: Cluster) -> None:
    for setting, field in (("replicaCount=-1", "replicaCount"), ("logLevel=LOUD", "logLevel"),
                           ("metrics.port=70000", "port"), ("watchNamespaces[0]=Not_A_Name", "watchNamespaces")):
        result = helm(cluster, "install", "bad-values", str(CHART), "-n", "barge-bad", "--create-namespace",
                      "--set", setting, check=False)
        assert result.returncode != 0, f"{setting} was accepted"
        assert field in result.stderr and "values don't meet the specifications of the schema" in result.stderr, \
            result.stderr
    assert "bad-values" not in helm(cluster, "list", "-A", "-q").stdout


def test_every_pod_runs_non_root_read_only_with_no_capabilities(cluster: Cluster) -> None:
    rendered = list(yaml.safe_load_all(helm(cluster, "template", RELEASE, str(CHART), *values_args()).stdout))
    [deployment] = [d for d in rendered if d and d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert pod["containers"][0]["resources"]["limits"]["memory"]


def test_install_runs_two_replicas_on_the_real_node_one_leading(cluster: Cluster) -> None:
    started = time.monotonic()
    install(cluster)
    print(f"\nhelm install --wait: {time.monotonic() - started:.1f}s")
    pods = eventually(lambda: (p := operator_pods(cluster)) and len(p) == 2
                      and all(x.status.phase == "Running" for x in p) and p, 120,
                      message="two running operator pods")
    for pod in pods:
        assert pod.spec.service_account_name == RELEASE
        assert pod.metadata.labels["app.kubernetes.io/instance"] == RELEASE
        node = cluster.core.read_node(pod.spec.node_name)
        assert node.metadata.labels.get("barge.dev/pool") == "real", "the operator runs in a real container"
        assert pod.spec.containers[0].security_context.run_as_non_root is not False
    names = {p.metadata.name for p in pods}
    eventually(lambda: leader(cluster) in names, 60, message="one of the replicas to hold the lease")
    assert cluster.kubectl("get", "crd", "batchjobs.barge.dev", "-o", "name").stdout.strip()
    assert NAMESPACE in cluster.kubectl("get", "namespace", NAMESPACE, "-o", "name").stdout
