"""Teams that share a cluster: a queue takes jobs only from the namespaces its namespaceSelector
selects, and a BatchJob reaches only its own namespace's definitions and jobs; RBAC decides who may
submit or stop what (users are impersonated, as kubectl --as does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.barge_objects import Barge, batch_job, compute_environment, job_definition, job_queue
from tests.e2e.kube import GROUP, VERSION, Cluster, eventually

TEAM_LABEL = "barge.dev/test-team"


@pytest.fixture
def other_namespace(barge: Barge) -> Iterator[str]:
    name = f"{barge.namespace}-b"
    barge.cluster.kubectl("create", "namespace", name)
    yield name
    barge.cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def label_namespace(cluster: Cluster, namespace: str, team: str) -> None:
    cluster.kubectl("label", "namespace", namespace, f"{TEAM_LABEL}={team}", "--overwrite")


def test_a_queue_takes_jobs_only_from_the_namespaces_it_selects(barge: Barge) -> None:
    ce, jq, team = barge.name("ce"), barge.name("q"), barge.name("team")
    barge.apply(compute_environment(ce, 4), job_definition("work", cpu="1"),
                job_queue(jq, [ce], namespaceSelector={"matchLabels": {TEAM_LABEL: team}}))
    barge.apply(batch_job("outsider", "work", jq))
    status = barge.wait_state("outsider", "FAILED")
    assert status["statusReason"] == (f"Job queue '{jq}' does not accept jobs from namespace '{barge.namespace}' "
                                      f"(its namespaceSelector selects {TEAM_LABEL}={team})")
    assert not barge.cluster.batch.list_namespaced_job(barge.namespace).items  # nothing ran

    label_namespace(barge.cluster, barge.namespace, team)
    barge.apply(batch_job("member", "work", jq))
    assert barge.wait_state("member", "SUCCEEDED")["computeEnvironment"] == ce


def test_a_job_reaches_only_its_own_namespaces_definitions_and_jobs(barge: Barge, other_namespace: str) -> None:
    ce, jq = barge.name("ce"), barge.name("q")
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), job_definition("work", cpu="1"))
    barge.cluster.apply([job_definition("theirs", cpu="1"), batch_job("their-job", "theirs", jq)], other_namespace)
    barge.apply(batch_job("borrower", "theirs", jq),
                batch_job("follower", "work", jq, dependsOn=[{"jobName": "their-job"}]))
    status = barge.wait_state("borrower", "FAILED", timeout=60)
    assert status["statusReason"] == f"Job definition 'theirs' does not exist in namespace '{barge.namespace}'"
    # B's job finishes; A's dependent waits for a job of A's own namespace of that name, not for B's.
    eventually(lambda: (barge.cluster.batchjob(other_namespace, "their-job").get("status") or {}).get("state")
               == "SUCCEEDED", 90, message="the other namespace's job to succeed")
    follower = barge.status("follower")
    assert follower.get("state") == "PENDING"
    assert "'their-job' (it does not exist yet)" in follower["statusReason"]


def test_a_user_of_one_namespace_cannot_stop_anothers_jobs(barge: Barge, other_namespace: str) -> None:
    """A team's role (edit on BatchJobs of its own namespace) does not reach another namespace's jobs."""
    ce, jq = barge.name("ce"), barge.name("q")
    user = f"alice-{barge.namespace}"
    barge.apply(compute_environment(ce, 4), job_queue(jq, [ce]), job_definition("work", cpu="1", delay="30s"))
    barge.cluster.apply([job_definition("work", cpu="1", delay="30s"), batch_job("theirs", "work", jq)],
                        other_namespace)
    barge.cluster.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "batch-user"},
         "rules": [{"apiGroups": [GROUP], "resources": ["batchjobs"],
                    "verbs": ["get", "list", "create", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "alice"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "batch-user"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
    ], barge.namespace)
    cancel = '{"spec":{"cancel":{"reason":"not mine"}}}'
    as_alice = ("--as", user)
    mine = barge.cluster.kubectl(*as_alice, "apply", "-n", barge.namespace, "-f", "-", check=False,
                                 input_text=f"apiVersion: {GROUP}/{VERSION}\nkind: BatchJob\nmetadata: {{name: mine}}\n"
                                            f"spec: {{jobDefinition: work, jobQueue: {jq}}}\n")
    assert mine.returncode == 0, mine.stderr
    refused = barge.cluster.kubectl(*as_alice, "patch", "batchjob", "theirs", "-n", other_namespace,
                                    "--type=merge", "-p", cancel, check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr
    assert "cancel" not in barge.cluster.batchjob(other_namespace, "theirs")["spec"]
    allowed = barge.cluster.kubectl(*as_alice, "patch", "batchjob", "mine", "-n", barge.namespace,
                                    "--type=merge", "-p", cancel, check=False)
    assert allowed.returncode == 0, allowed.stderr
