"""AWS Batch's API served by `barge aws-api` on the local cluster, driven by boto3 and the aws CLI
from PyPI; every response is checked against botocore's own `batch` model (tests/awsmodel.py)."""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
import requests
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.awsmodel import assert_valid
from tests.e2e.barge_objects import DELAY
from tests.e2e.kube import Cluster, eventually

REGION = "eu-west-2"
RBAC = "rbac.authorization.k8s.io/v1"
HERE = Path(__file__).parent


@dataclass
class Server:
    endpoint: str
    namespace: str
    key: str
    secret: str
    denied_key: str
    environment: str
    queue: str

    def client(self, key: str | None = None, secret: str | None = None, validate: bool = True) -> Any:
        return boto3.client("batch", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=key or self.key, aws_secret_access_key=secret or self.secret,
                            config=Config(parameter_validation=validate, retries={"max_attempts": 1}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rbac(namespace: str, user: str) -> list[dict[str, Any]]:
    """What a Batch user needs: Barge's kinds, and reading pods (array children's states)."""
    name = f"{namespace}-aws"
    return [
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": ["barge.dev"], "resources": ["*"], "verbs": ["*"]},
                   {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user},
                      {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"{namespace}-team"}]},
    ]


@pytest.fixture
def server(operator: Cluster, namespace: str, tmp_path: Path) -> Iterator[Server]:
    user = f"{namespace}-batch-user"
    operator.apply(rbac(namespace, user))
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text(yaml.safe_dump([
        {"accessKeyId": "AKIDBARGE", "secretAccessKey": "barge-secret", "username": user, "groups": ["batch-users"]},
        {"accessKeyId": "AKIDNOBODY", "secretAccessKey": "nobody-secret", "username": f"{namespace}-nobody"},
        {"accessKeyId": "AKIDTEAM", "secretAccessKey": "team-secret", "username": f"{namespace}-member",
         "groups": ["other-group", f"{namespace}-team"]},
    ]))
    port = free_port()
    log = tmp_path / "aws-api.log"
    env = {**os.environ, "KUBECONFIG": str(operator.kubeconfig)}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "barge.cli.main", "aws-api", "--port", str(port),
                                    "--namespace", namespace, "--credentials", str(credentials)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return requests.post(endpoint + "/v1/describejobqueues", timeout=2).status_code == 403
        except requests.ConnectionError:
            return False

    try:
        eventually(listening, 30, message="barge aws-api listening")
        yield Server(endpoint, namespace, "AKIDBARGE", "barge-secret", "AKIDNOBODY", f"{namespace}-ce",
                     f"{namespace}-q")
    finally:
        process.terminate()
        process.wait(10)
        print(f"\n--- aws-api log ---\n{log.read_text()[-3000:]}")
        for plural, name in (("jobqueues", f"{namespace}-q"), ("computeenvironments", f"{namespace}-ce")):
            operator.kubectl("delete", f"{plural}.barge.dev", name, "--wait=false", check=False)
        for kind in ("clusterrolebinding", "clusterrole"):
            operator.kubectl("delete", kind, f"{namespace}-aws", check=False)


def make_queue(server: Server, cluster: Cluster) -> Any:
    """A compute environment and a queue through the API; the environment's nodes are chosen with
    kubectl, as for any UNMANAGED environment."""
    batch = server.client()
    assert_valid("CreateComputeEnvironment", batch.create_compute_environment(
        computeEnvironmentName=server.environment, type="UNMANAGED", unmanagedvCpus=4, tags={"team": "a"}))
    cluster.kubectl("patch", "computeenvironments.barge.dev", server.environment, "--type=merge",
                    "-p", json.dumps({"spec": {"computeResources": {"nodeSelector": {"barge.dev/pool": "cpu"}}}}))
    created = assert_valid("CreateJobQueue", batch.create_job_queue(
        jobQueueName=server.queue, priority=5,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": server.environment}]))
    assert created["jobQueueArn"] == f"arn:aws:batch:{REGION}:000000000000:job-queue/{server.queue}"

    def valid() -> bool:
        queues = assert_valid("DescribeJobQueues", batch.describe_job_queues(jobQueues=[server.queue]))
        environments = assert_valid("DescribeComputeEnvironments", batch.describe_compute_environments(
            computeEnvironments=[f"arn:aws:batch:{REGION}:000000000000:compute-environment/{server.environment}"]))
        return (queues["jobQueues"][0]["status"] == "VALID"
                and environments["computeEnvironments"][0]["status"] == "VALID")

    eventually(valid, 60, message="queue and compute environment VALID")
    return batch


QUICK = {"image": "busybox", "command": ["sh", "-c", "echo Ref::greeting"],
         "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]}


def slow_definition(seconds: int) -> dict[str, Any]:
    """eksProperties carry pod annotations: here kwok's run time."""
    return {"podProperties": {"containers": [{"image": "busybox", "command": ["sleep", "600"],
                                              "resources": {"requests": {"cpu": "1"}}}],
                              "metadata": {"annotations": {DELAY: f"{seconds}s"}}}}


def describe(batch: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = assert_valid("DescribeJobs", batch.describe_jobs(jobs=ids))["jobs"]
    return {job["jobId"]: job for job in found}


def wait_status(batch: Any, ids: list[str], *states: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
    def reached() -> dict[str, dict[str, Any]] | None:
        jobs = describe(batch, ids)
        return jobs if len(jobs) == len(ids) and all(j["status"] in states for j in jobs.values()) else None

    return eventually(reached, timeout, interval=1, message=f"jobs {ids} in {states}")


def test_boto3_registers_submits_arrays_dependencies_and_lists_until_succeeded(
        server: Server, operator: Cluster) -> None:
    batch = make_queue(server, operator)
    first = assert_valid("RegisterJobDefinition", batch.register_job_definition(
        jobDefinitionName="report_def", type="container", containerProperties=QUICK,
        parameters={"greeting": "hello"}, retryStrategy={"attempts": 2}))
    second = assert_valid("RegisterJobDefinition", batch.register_job_definition(
        jobDefinitionName="report_def", type="container", containerProperties=QUICK))
    assert (first["revision"], second["revision"]) == (1, 2)
    assert second["jobDefinitionArn"].endswith(":job-definition/report_def:2")
    assert_valid("DeregisterJobDefinition", batch.deregister_job_definition(jobDefinition="report_def:2"))
    shown = assert_valid("DescribeJobDefinitions", batch.describe_job_definitions(jobDefinitionName="report_def"))
    assert [(d["revision"], d["status"]) for d in shown["jobDefinitions"]] == [(1, "ACTIVE"), (2, "INACTIVE")]
    assert shown["jobDefinitions"][0]["containerProperties"]["command"] == QUICK["command"]

    single = assert_valid("SubmitJob", batch.submit_job(jobName="single", jobQueue=server.queue,
                                                        jobDefinition="report_def", tags={"run": "1"}))
    array = assert_valid("SubmitJob", batch.submit_job(jobName="array", jobQueue=server.queue,
                                                       jobDefinition=first["jobDefinitionArn"],
                                                       arrayProperties={"size": 3}))
    after = assert_valid("SubmitJob", batch.submit_job(
        jobName="after", jobQueue=f"arn:aws:batch:{REGION}:000000000000:job-queue/{server.queue}",
        jobDefinition="report_def:1", dependsOn=[{"jobId": single["jobId"]}, {"jobId": array["jobId"]}],
        containerOverrides={"command": ["sh", "-c", "echo after"], "environment": [{"name": "X", "value": "1"}]},
        parameters={"greeting": "bye"}))
    ids = [single["jobId"], array["jobId"], after["jobId"]]
    assert describe(batch, [after["jobId"]])[after["jobId"]]["dependsOn"] == [
        {"jobId": single["jobId"]}, {"jobId": array["jobId"]}]
    done = wait_status(batch, ids, "SUCCEEDED", "FAILED")
    assert {i: done[i]["status"] for i in ids} == dict.fromkeys(ids, "SUCCEEDED")
    assert done[after["jobId"]]["startedAt"] >= max(done[single["jobId"]]["stoppedAt"],
                                                    done[array["jobId"]]["stoppedAt"])
    assert done[single["jobId"]]["container"]["exitCode"] == 0
    assert done[single["jobId"]]["jobDefinition"].endswith("job-definition/report_def:1")
    assert done[array["jobId"]]["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    assert done[after["jobId"]]["container"]["command"] == ["sh", "-c", "echo after"]

    children = describe(batch, [f"{array['jobId']}:{i}" for i in range(3)])
    assert sorted((c["arrayProperties"]["index"], c["status"]) for c in children.values()) == [
        (0, "SUCCEEDED"), (1, "SUCCEEDED"), (2, "SUCCEEDED")]
    listed = assert_valid("ListJobs", batch.list_jobs(arrayJobId=array["jobId"], jobStatus="SUCCEEDED"))
    assert sorted(s["jobId"] for s in listed["jobSummaryList"]) == sorted(children)

    pages, token = [], None
    while True:
        answer = assert_valid("ListJobs", batch.list_jobs(jobQueue=server.queue, jobStatus="SUCCEEDED",
                                                          maxResults=2, **({"nextToken": token} if token else {})))
        pages.append([s["jobId"] for s in answer["jobSummaryList"]])
        token = answer.get("nextToken")
        if not token:
            break
    assert len(pages) == 2 and sorted(i for page in pages for i in page) == sorted(ids)
    assert assert_valid("ListJobs", batch.list_jobs(jobQueue=server.queue))["jobSummaryList"] == []  # RUNNING only
    named = assert_valid("ListJobs", batch.list_jobs(jobQueue=server.queue, jobStatus="RUNNING",  # ignored
                                                     filters=[{"name": "JOB_NAME", "values": ["sing*"]}]))
    assert [s["jobId"] for s in named["jobSummaryList"]] == [single["jobId"]]

    assert_valid("TagResource", batch.tag_resource(resourceArn=single["jobArn"], tags={"owner": "me"}))
    tags = assert_valid("ListTagsForResource", batch.list_tags_for_resource(resourceArn=single["jobArn"]))
    assert tags["tags"] == {"run": "1", "owner": "me"}
    assert_valid("UntagResource", batch.untag_resource(resourceArn=single["jobArn"], tagKeys=["owner"]))
    queue_arn = f"arn:aws:batch:{REGION}:000000000000:job-queue/{server.queue}"
    assert_valid("TagResource", batch.tag_resource(resourceArn=queue_arn, tags={"tier": "gold"}))
    assert assert_valid("ListTagsForResource", batch.list_tags_for_resource(resourceArn=queue_arn))["tags"] == {
        "tier": "gold"}


def test_cancel_and_terminate_and_the_queue_snapshot(server: Server, operator: Cluster) -> None:
    batch = make_queue(server, operator)
    assert_valid("RegisterJobDefinition", batch.register_job_definition(
        jobDefinitionName="slow", type="container", eksProperties=slow_definition(120)))
    running = assert_valid("SubmitJob", batch.submit_job(jobName="long", jobQueue=server.queue, jobDefinition="slow"))
    waiting = assert_valid("SubmitJob", batch.submit_job(jobName="waits", jobQueue=server.queue, jobDefinition="slow",
                                                         dependsOn=[{"jobId": running["jobId"]}]))
    wait_status(batch, [running["jobId"]], "RUNNING")
    assert describe(batch, [waiting["jobId"]])[waiting["jobId"]]["status"] == "PENDING"
    snapshot = assert_valid("GetJobQueueSnapshot", batch.get_job_queue_snapshot(jobQueue=server.queue))
    assert snapshot["frontOfQueue"]["jobs"] == []  # nothing RUNNABLE

    assert_valid("CancelJob", batch.cancel_job(jobId=waiting["jobId"], reason="not needed"))
    cancelled = wait_status(batch, [waiting["jobId"]], "FAILED")[waiting["jobId"]]
    assert cancelled["isCancelled"] and cancelled["statusReason"] == "not needed"
    assert_valid("TerminateJob", batch.terminate_job(jobId=running["jobId"], reason="stop it"))
    terminated = wait_status(batch, [running["jobId"]], "FAILED", timeout=60)[running["jobId"]]
    assert terminated["isTerminated"] and terminated["statusReason"] == "stop it"
    assert terminated["startedAt"] <= terminated["stoppedAt"]


def test_a_fair_share_queue_made_and_used_through_the_api(server: Server, operator: Cluster) -> None:
    batch = make_queue(server, operator)
    policy = f"{server.namespace}-fair"
    created = assert_valid("CreateSchedulingPolicy", batch.create_scheduling_policy(
        name=policy, fairsharePolicy={"shareDecaySeconds": 600, "computeReservation": 0, "shareDistribution": [
            {"shareIdentifier": "teamA", "weightFactor": 1}, {"shareIdentifier": "teamB*", "weightFactor": 0.5}]}))
    try:
        fair_queue = f"{server.queue}-fair"
        assert_valid("CreateJobQueue", batch.create_job_queue(
            jobQueueName=fair_queue, priority=1, schedulingPolicyArn=created["arn"],
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": server.environment}]))
        assert_valid("RegisterJobDefinition", batch.register_job_definition(
            jobDefinitionName="fair_def", type="container", containerProperties=QUICK,
            parameters={"greeting": "hi"}))
        jobs = [assert_valid("SubmitJob", batch.submit_job(
            jobName=f"share-{share}", jobQueue=fair_queue, jobDefinition="fair_def", shareIdentifier=share,
            schedulingPriorityOverride=priority))["jobId"] for share, priority in (("teamA", 1), ("teamB1", 5))]
        done = wait_status(batch, jobs, "SUCCEEDED", "FAILED")
        assert [(done[j]["status"], done[j]["shareIdentifier"]) for j in jobs] == [
            ("SUCCEEDED", "teamA"), ("SUCCEEDED", "teamB1")]
        refused = error_of(lambda: batch.submit_job(jobName="no-share", jobQueue=fair_queue, jobDefinition="fair_def"))
        assert refused[0] == "ClientException" and "shareIdentifier" in refused[2]
        shown = assert_valid("DescribeSchedulingPolicies", batch.describe_scheduling_policies(arns=[created["arn"]]))
        assert shown["schedulingPolicies"][0]["fairsharePolicy"]["shareDistribution"][1] == {
            "shareIdentifier": "teamB*", "weightFactor": 0.5}
        assert "still used by job queue(s)" in error_of(lambda: batch.delete_scheduling_policy(arn=created["arn"]))[2]
        batch.update_job_queue(jobQueue=fair_queue, state="DISABLED")
        batch.delete_job_queue(jobQueue=fair_queue)
        eventually(lambda: not operator.kubectl("get", "jobqueues.barge.dev", fair_queue, "--ignore-not-found",
                                                check=False).stdout.strip(), 60, message="fair queue deleted")
        assert_valid("DeleteSchedulingPolicy", batch.delete_scheduling_policy(arn=created["arn"]))
    finally:
        operator.kubectl("delete", "schedulingpolicies.barge.dev", policy, "--ignore-not-found", check=False)


def test_an_unmodified_aws_batch_script_and_the_aws_cli(server: Server, operator: Cluster) -> None:
    batch = make_queue(server, operator)
    batch.register_job_definition(jobDefinitionName="nightly", type="container", containerProperties=QUICK)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
           "AWS_ENDPOINT_URL_BATCH": server.endpoint, "AWS_ACCESS_KEY_ID": server.key,
           "AWS_SECRET_ACCESS_KEY": server.secret, "AWS_DEFAULT_REGION": REGION}
    script = subprocess.run([sys.executable, str(HERE / "aws_batch_script.py"), server.queue, "nightly"], env=env,
                            capture_output=True, text=True, timeout=150)
    assert script.returncode == 0, script.stdout + script.stderr
    assert "status SUCCEEDED exitCode 0" in script.stdout

    aws = str(Path(sys.executable).parent / "aws")
    submitted = subprocess.run([aws, "batch", "submit-job", "--job-name", "from-cli", "--job-queue", server.queue,
                                "--job-definition", "nightly:1", "--array-properties", "size=2"],
                               env=env, capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = assert_valid("SubmitJob", json.loads(submitted.stdout))
    shown = subprocess.run([aws, "batch", "describe-jobs", "--jobs", job["jobId"]], env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    detail = assert_valid("DescribeJobs", json.loads(shown.stdout))["jobs"][0]
    assert detail["jobName"] == "from-cli" and detail["arrayProperties"]["size"] == 2
    explicit = subprocess.run([aws, "batch", "describe-job-queues", "--endpoint-url", server.endpoint,
                               "--job-queues", server.queue],
                              env={k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL_BATCH"},
                              capture_output=True, text=True, timeout=60)
    assert explicit.returncode == 0, explicit.stderr
    queues = assert_valid("DescribeJobQueues", json.loads(explicit.stdout))["jobQueues"]
    assert [q["jobQueueName"] for q in queues] == [server.queue]
    bad = subprocess.run([aws, "batch", "submit-job", "--job-name", "x", "--job-queue", "no-such-queue",
                          "--job-definition", "nightly"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "ClientException" in bad.stderr and "no-such-queue" in bad.stderr


def error_of(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]


def signed(server: Server, path: str, body: bytes, secret: str, age: float = 0) -> requests.Response:
    """A request signed by botocore's signer, `age` seconds ago."""
    request = AWSRequest(method="POST", url=server.endpoint + path, data=body,
                         headers={"Content-Type": "application/json"})
    then = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=age)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        SigV4Auth(Credentials(server.key, secret), "batch", REGION).add_auth(request)
    return requests.post(server.endpoint + path, data=body, headers=dict(request.headers.items()), timeout=10)


def test_bad_requests_get_aws_errors_never_a_500(server: Server, operator: Cluster) -> None:
    batch = make_queue(server, operator)
    batch.register_job_definition(jobDefinitionName="ok", type="container", containerProperties=QUICK)
    loose = server.client(validate=False)  # lets a request the model refuses reach the server
    cases = {
        "unknown queue": (lambda: batch.submit_job(jobName="x", jobQueue="no-such-queue", jobDefinition="ok"),
                          "no-such-queue"),
        "missing field": (lambda: loose.submit_job(jobName="x", jobQueue=server.queue), "jobDefinition"),
        "bad revision": (lambda: batch.submit_job(jobName="x", jobQueue=server.queue, jobDefinition="ok:7"), "ok:7"),
        "unknown dependency": (lambda: batch.submit_job(
            jobName="x", jobQueue=server.queue, jobDefinition="ok:1",
            dependsOn=[{"jobId": "00000000-0000-0000-0000-000000000000"}]), "dependsOn[0].jobId"),
        "unmappable field": (lambda: batch.register_job_definition(
            jobDefinitionName="logs", type="container",
            containerProperties={**QUICK, "logConfiguration": {"logDriver": "awslogs"}}),
            "containerProperties.logConfiguration"),
        "wrong type": (lambda: loose.submit_job(jobName="x", jobQueue=server.queue, jobDefinition="ok",
                                                arrayProperties={"size": "three"}), "arrayProperties.size"),
        "unknown job": (lambda: batch.cancel_job(jobId="00000000-0000-0000-0000-000000000000", reason="r"),
                        "does not exist"),
        "inactive revision": (lambda: (batch.deregister_job_definition(jobDefinition="ok:1"),
                                       batch.submit_job(jobName="x", jobQueue=server.queue, jobDefinition="ok:1")),
                              "INACTIVE"),
    }
    for what, (call, named) in cases.items():
        code, status, message = error_of(call)
        assert (code, status) == ("ClientException", 400), what
        assert named in message, f"{what}: {message}"

    code, status, _ = error_of(lambda: server.client(key=server.denied_key, secret="nobody-secret")
                               .describe_job_queues())
    assert (code, status) == ("AccessDeniedException", 403)
    by_group = server.client(key="AKIDTEAM", secret="team-secret").describe_job_queues(jobQueues=[server.queue])
    assert [q["jobQueueName"] for q in by_group["jobQueues"]] == [server.queue]  # RBAC through its second group
    assert error_of(lambda: server.client(secret="wrong").describe_job_queues())[:2] == (
        "InvalidSignatureException", 403)
    assert error_of(lambda: server.client(key="AKIDUNKNOWN").describe_job_queues())[:2] == (
        "UnrecognizedClientException", 403)

    unsigned = requests.post(server.endpoint + "/v1/describejobqueues", data=b"{}", timeout=10)
    assert (unsigned.status_code, unsigned.headers["x-amzn-ErrorType"]) == (403, "MissingAuthenticationTokenException")
    expired = signed(server, "/v1/describejobqueues", b"{}", server.secret, age=3600)
    assert expired.status_code == 403 and "Signature expired" in expired.json()["message"]
    good = signed(server, "/v1/describejobqueues", b"{}", server.secret)
    assert good.status_code == 200, good.text
    not_json = signed(server, "/v1/describejobqueues", b"{not json", server.secret)
    assert (not_json.status_code, not_json.headers["x-amzn-ErrorType"]) == (400, "ClientException")
