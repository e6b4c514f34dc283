"""The server as boto3 sees it, over an in-memory API server: routes from botocore's model, every
response checked against the model, AWS's errors for bad requests, and no stack trace for a bug."""

from __future__ import annotations

import asyncio
import copy
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from barge.awsapi.identity import Identity
from barge.awsapi.kubeapi import KubeError
from barge.awsapi.server import AwsApi
from tests.awsmodel import assert_valid

pytestmark = pytest.mark.unit
REGION = "us-west-2"
PATH = re.compile(r"^/api(?:s/barge\.dev/v1alpha1|/v1)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)"
                  r"(?:/(?P<name>[^/?]+))?$")


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def selects(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if " in (" in selector:
        key, values = selector.split(" in (")
        return labels.get(key) in values.rstrip(")").split(",")
    key, value = selector.split("=")
    return labels.get(key) == value


class FakeKube:
    """Barge's kinds in memory, with the API server's answers the operations rely on (404, 409)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str | None, str, str], dict[str, Any]] = {}
        self.who: list[str] = []
        self.fail_with: Exception | None = None

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def _key(self, path: str) -> tuple[str | None, str, str | None]:
        match = PATH.match(path)
        assert match, path
        return match["ns"], match["plural"], match["name"]

    async def get(self, who: Identity, path: str) -> dict[str, Any]:
        self.who.append(who.username)
        if self.fail_with:
            raise self.fail_with
        ns, plural, name = self._key(path)
        obj = self.objects.get((ns, plural, name or ""))
        if obj is None:
            raise KubeError(404, "NotFound", f"{plural} {name} not found")
        return copy.deepcopy(obj)

    async def list(self, who: Identity, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        ns, plural, _ = self._key(path)
        return [copy.deepcopy(o) for (n, p, _), o in sorted(self.objects.items(), key=lambda kv: kv[0][2])
                if n == ns and p == plural and selects(label_selector, o["metadata"].get("labels") or {})]

    async def create(self, who: Identity, path: str, body: dict[str, Any]) -> dict[str, Any]:
        ns, plural, _ = self._key(path)
        obj = copy.deepcopy(body)
        metadata = obj["metadata"]
        metadata.setdefault("name", metadata.get("generateName", "") + uuid.uuid4().hex[:5])
        if (ns, plural, metadata["name"]) in self.objects:
            raise KubeError(409, "AlreadyExists", f"{metadata['name']} already exists")
        metadata |= {"uid": str(uuid.uuid4()), "creationTimestamp": "2026-11-30T10:00:00Z", "namespace": ns}
        self.objects[(ns, plural, metadata["name"])] = obj
        return copy.deepcopy(obj)

    async def merge_patch(self, who: Identity, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        ns, plural, name = self._key(path)
        merge(self.objects[(ns, plural, name or "")], patch)
        return copy.deepcopy(self.objects[(ns, plural, name or "")])

    async def delete(self, who: Identity, path: str) -> None:
        ns, plural, name = self._key(path)
        del self.objects[(ns, plural, name or "")]

    def batchjob(self, job_id: str) -> dict[str, Any]:
        return next(o for (_, p, _), o in self.objects.items() if p == "batchjobs" and o["metadata"]["uid"] == job_id)


class Served:
    def __init__(self, kube: FakeKube, endpoint: str) -> None:
        self.kube = kube
        self.endpoint = endpoint

    def client(self, secret: str = "secret", validate: bool = True) -> Any:
        return boto3.client("batch", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="AKID",
                            aws_secret_access_key=secret,
                            config=Config(parameter_validation=validate, retries={"max_attempts": 1}))


@pytest.fixture
def served() -> Iterator[Served]:
    kube = FakeKube()
    api = AwsApi(kube, {"AKID": Identity("AKID", "secret", "alice", ("team",))}, "jobs", "123456789012")  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield Served(kube, f"http://127.0.0.1:{port}")
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def error(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def setup_queue(batch: Any) -> None:
    assert_valid("CreateComputeEnvironment", batch.create_compute_environment(
        computeEnvironmentName="ce", type="MANAGED", computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 8}))
    assert_valid("CreateJobQueue", batch.create_job_queue(
        jobQueueName="q", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}]))
    assert_valid("RegisterJobDefinition", batch.register_job_definition(
        jobDefinitionName="d", type="container", containerProperties={"image": "busybox", "command": ["true"]}))


def test_a_submitted_array_its_children_and_its_dependents_as_aws_shows_them(served: Served) -> None:
    batch = served.client()
    setup_queue(batch)
    array = assert_valid("SubmitJob", batch.submit_job(jobName="a", jobQueue="q", jobDefinition="d",
                                                       arrayProperties={"size": 3}))
    after = assert_valid("SubmitJob", batch.submit_job(jobName="b", jobQueue="q", jobDefinition="d:1",
                                                       dependsOn=[{"jobId": array["jobId"], "type": "N_TO_N"}],
                                                       arrayProperties={"size": 3}))
    stored = served.kube.batchjob(after["jobId"])
    assert stored["spec"]["dependsOn"] == [{"jobId": array["jobId"], "type": "N_TO_N"}]
    assert stored["metadata"]["labels"] == {"barge.dev/job-id": after["jobId"]}
    assert set(served.kube.who) == {"alice"}
    parent = served.kube.batchjob(array["jobId"])
    parent["status"] = {"state": "SUCCEEDED", "jobId": array["jobId"], "startedAt": "2026-11-30T10:00:01Z",
                        "stoppedAt": "2026-11-30T10:00:09Z",
                        "arrayProperties": {"size": 3, "succeededIndices": "0-2",
                                            "statusSummary": {"SUCCEEDED": 3}}}
    jobs = assert_valid("DescribeJobs", batch.describe_jobs(
        jobs=[array["jobId"], f"{array['jobId']}:2", after["jobId"], "00000000-0000-0000-0000-000000000000"]))["jobs"]
    assert [j["status"] for j in jobs] == ["SUCCEEDED", "SUCCEEDED", "SUBMITTED"]
    assert jobs[1]["arrayProperties"] == {"index": 2} and jobs[0]["startedAt"] == 1796032801000
    children = assert_valid("ListJobs", batch.list_jobs(arrayJobId=array["jobId"], jobStatus="SUCCEEDED"))
    assert [c["jobId"] for c in children["jobSummaryList"]] == [f"{array['jobId']}:{i}" for i in range(3)]
    assert_valid("CancelJob", batch.cancel_job(jobId=after["jobId"], reason="no"))
    assert_valid("CancelJob", batch.cancel_job(jobId=after["jobId"], reason="again"))  # AWS: success again
    assert served.kube.batchjob(after["jobId"])["spec"]["cancel"] == {"reason": "no"}
    assert_valid("TerminateJob", batch.terminate_job(jobId=array["jobId"], reason="stop"))
    assert served.kube.batchjob(array["jobId"])["spec"]["terminate"] == {"reason": "stop"}


def test_bulk_cancel_and_terminate_answer_job_by_job(served: Served) -> None:
    batch = served.client()
    setup_queue(batch)
    ids = [batch.submit_job(jobName=f"j{i}", jobQueue="q", jobDefinition="d")["jobId"] for i in range(2)]
    unknown = "00000000-0000-0000-0000-000000000000"
    answer = assert_valid("CancelJobs", batch.cancel_jobs(jobs=[ids[0], unknown], reason="bulk"))
    assert answer["successful"] == [ids[0]]
    assert [(e["job"], e["code"]) for e in answer["errors"]] == [(unknown, "ClientException")]
    assert served.kube.batchjob(ids[0])["spec"]["cancel"] == {"reason": "bulk"}
    answer = assert_valid("TerminateJobs", batch.terminate_jobs(jobs=ids, reason="stop"))
    assert answer == {"successful": ids, "errors": []}
    assert served.kube.batchjob(ids[1])["spec"]["terminate"] == {"reason": "stop"}


def test_revisions_deregistration_and_pagination(served: Served) -> None:
    batch = served.client()
    setup_queue(batch)
    for _ in range(4):
        batch.register_job_definition(jobDefinitionName="d", type="container",
                                      containerProperties={"image": "busybox"})
    assert_valid("DeregisterJobDefinition", batch.deregister_job_definition(jobDefinition="d:5"))
    assert error(lambda: batch.deregister_job_definition(jobDefinition="d"))[0] == "ClientException"
    job = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="d")
    assert served.kube.batchjob(job["jobId"])["spec"]["jobDefinition"] == "d-4"  # latest ACTIVE
    seen, token = [], None
    while True:
        page = assert_valid("DescribeJobDefinitions", batch.describe_job_definitions(
            jobDefinitionName="d", maxResults=2, **({"nextToken": token} if token else {})))
        seen += [(d["revision"], d["status"]) for d in page["jobDefinitions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == [(1, "ACTIVE"), (2, "ACTIVE"), (3, "ACTIVE"), (4, "ACTIVE"), (5, "INACTIVE")]
    active = assert_valid("DescribeJobDefinitions", batch.describe_job_definitions(status="INACTIVE"))
    assert [d["revision"] for d in active["jobDefinitions"]] == [5]


def test_queues_and_environments_update_and_delete_as_aws_requires(served: Served) -> None:
    batch = served.client()
    setup_queue(batch)
    assert_valid("UpdateJobQueue", batch.update_job_queue(jobQueue="q", priority=9, state="DISABLED"))
    queue = assert_valid("DescribeJobQueues", batch.describe_job_queues(jobQueues=["q", "missing"]))["jobQueues"]
    assert [(q["priority"], q["state"]) for q in queue] == [(9, "DISABLED")]
    assert "must be DISABLED" in error(lambda: batch.delete_compute_environment(computeEnvironment="ce"))[2]
    batch.update_compute_environment(computeEnvironment="ce", state="DISABLED", computeResources={"maxvCpus": 4})
    assert "still used by job queue(s) q" in error(lambda: batch.delete_compute_environment(computeEnvironment="ce"))[2]
    assert_valid("DeleteJobQueue", batch.delete_job_queue(jobQueue="q"))
    assert_valid("DeleteComputeEnvironment", batch.delete_compute_environment(computeEnvironment="ce"))
    assert assert_valid("DescribeComputeEnvironments", batch.describe_compute_environments())[
        "computeEnvironments"] == []


def test_scheduling_policies_make_fair_share_queues_as_in_aws(served: Served) -> None:
    batch = served.client()
    setup_queue(batch)
    created = assert_valid("CreateSchedulingPolicy", batch.create_scheduling_policy(
        name="fair", tags={"team": "a"},
        fairsharePolicy={"shareDecaySeconds": 3600, "computeReservation": 10,
                         "shareDistribution": [{"shareIdentifier": "A", "weightFactor": 1},
                                               {"shareIdentifier": "B*", "weightFactor": 0.5}]}))
    arn = created["arn"]
    assert arn == f"arn:aws:batch:{REGION}:123456789012:scheduling-policy/fair"
    stored = served.kube.objects[(None, "schedulingpolicies", "fair")]["spec"]["fairsharePolicy"]
    assert stored["shareDistribution"][1] == {"shareIdentifier": "B*", "weightFactor": 0.5}
    assert "already exists" in error(lambda: batch.create_scheduling_policy(name="fair"))[2]
    queue = assert_valid("CreateJobQueue", batch.create_job_queue(
        jobQueueName="fq", priority=1, schedulingPolicyArn=arn,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}]))
    assert served.kube.objects[(None, "jobqueues", "fq")]["spec"]["schedulingPolicy"] == "fair"
    described = assert_valid("DescribeJobQueues", batch.describe_job_queues(jobQueues=[queue["jobQueueArn"]]))
    assert described["jobQueues"][0]["schedulingPolicyArn"] == arn

    assert_valid("UpdateSchedulingPolicy", batch.update_scheduling_policy(
        arn=arn, fairsharePolicy={"shareDistribution": [{"shareIdentifier": "C"}]}))
    policy = assert_valid("DescribeSchedulingPolicies", batch.describe_scheduling_policies(
        arns=[arn, f"arn:aws:batch:{REGION}:123456789012:scheduling-policy/missing"]))["schedulingPolicies"]
    assert [(p["name"], p["fairsharePolicy"], p["tags"]) for p in policy] == [
        ("fair", {"shareDistribution": [{"shareIdentifier": "C"}]}, {"team": "a"})]  # the update replaced it all
    assert_valid("TagResource", batch.tag_resource(resourceArn=arn, tags={"cost": "x"}))
    assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a", "cost": "x"}
    assert_valid("CreateSchedulingPolicy", batch.create_scheduling_policy(name="other"))
    first = assert_valid("ListSchedulingPolicies", batch.list_scheduling_policies(maxResults=1))
    rest = batch.list_scheduling_policies(maxResults=1, nextToken=first["nextToken"])
    assert [p["arn"].rsplit("/", 1)[1] for p in first["schedulingPolicies"] + rest["schedulingPolicies"]] == [
        "fair", "other"]
    assert "still used by job queue(s) fq" in error(lambda: batch.delete_scheduling_policy(arn=arn))[2]
    batch.update_job_queue(jobQueue="fq", state="DISABLED")
    batch.delete_job_queue(jobQueue="fq")
    assert_valid("DeleteSchedulingPolicy", batch.delete_scheduling_policy(arn=arn))
    assert "does not exist" in error(lambda: batch.delete_scheduling_policy(arn=arn))[2]
    assert "is not a scheduling-policy ARN" in error(lambda: batch.update_scheduling_policy(
        arn=f"arn:aws:batch:{REGION}:123456789012:job-queue/q"))[2]
    assert "shareIdentifier: job queue 'q' has no scheduling policy" in error(lambda: batch.submit_job(
        jobName="j", jobQueue="q", jobDefinition="d", shareIdentifier="A"))[2]


def test_bad_requests_get_client_exceptions_and_a_bug_no_stack_trace(served: Served) -> None:
    batch, loose = served.client(), served.client(validate=False)
    setup_queue(batch)
    assert error(lambda: loose.submit_job(jobName="j", jobQueue="q"))[:2] == ("ClientException", 400)
    assert "jobDefinition" in error(lambda: loose.submit_job(jobName="j", jobQueue="q"))[2]
    assert "'nope'" in error(lambda: batch.submit_job(jobName="j", jobQueue="nope", jobDefinition="d"))[2]
    assert "d:3" in error(lambda: batch.submit_job(jobName="j", jobQueue="q", jobDefinition="d:3"))[2]
    assert "jobQueueName" in error(lambda: batch.create_job_queue(
        jobQueueName="Upper_Case", priority=1, computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}]))[2]
    assert "schedulingPolicyArn: scheduling policy 'p' does not exist" in error(lambda: batch.create_job_queue(
        jobQueueName="fair", priority=1, schedulingPolicyArn="arn:aws:batch:us-west-2:1:scheduling-policy/p",
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}]))[2]
    assert error(lambda: served.client(secret="bad").describe_jobs(jobs=[]))[:2] == ("InvalidSignatureException", 403)
    served.kube.fail_with = RuntimeError("a bug")
    code, status, message = error(lambda: batch.submit_job(jobName="j", jobQueue="q", jobDefinition="d"))
    assert (code, status) == ("ServerException", 500) and "a bug" not in message and "Traceback" not in message
    served.kube.fail_with = KubeError(403, "Forbidden", 'jobqueues.barge.dev "q" is forbidden: User "alice" cannot get')
    code, status, message = error(lambda: batch.describe_job_queues(jobQueues=["q"]))
    assert (code, status) == ("AccessDeniedException", 403) and 'User "alice" cannot get' in message


def test_an_unknown_route_is_refused_after_the_signature(served: Served) -> None:
    unsigned = requests.post(served.endpoint + "/v1/nosuchthing", data=b"{}", timeout=5)
    assert (unsigned.status_code, unsigned.headers["x-amzn-ErrorType"]) == (403, "MissingAuthenticationTokenException")
