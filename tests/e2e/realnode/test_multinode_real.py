"""A multi-node parallel job in real containers: node 1 reaches the main node at the address Barge
gives it (AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.barge_objects import API, Barge, batch_job, compute_environment, job_queue
from tests.e2e.realnode.test_real_containers import WORKER, logs

MAIN = "nc -l -p 5000 > /tmp/got; cat /tmp/got; sleep 3; grep -q 'hello from 1' /tmp/got"
OTHER = ('for i in $(seq 1 30); do echo "hello from $AWS_BATCH_JOB_NODE_INDEX" '
         '| nc -w 2 "$AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" 5000 && exit 0; sleep 1; done; exit 1')


def _template(script: str) -> dict[str, Any]:
    container = {"name": "main", "image": WORKER, "imagePullPolicy": "Never", "command": ["sh", "-c", script],
                 "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
    return {"spec": {"containers": [container], "terminationGracePeriodSeconds": 5}}


@pytest.fixture
def real_queue(barge: Barge, real_node: str) -> str:
    ce, jq = barge.name("real-ce"), barge.name("real-q")
    barge.apply(compute_environment(ce, 4, pool="real"), job_queue(jq, [ce]))
    return jq


def test_node_one_reaches_the_main_node_at_the_address_it_is_given(barge: Barge, real_queue: str) -> None:
    jq = real_queue
    definition = {"apiVersion": API, "kind": "JobDefinition", "metadata": {"name": "pair"}, "spec": {
        "nodeProperties": {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": [
            {"targetNodes": "0", "template": _template(MAIN)}, {"targetNodes": "1", "template": _template(OTHER)}]}}}
    barge.apply(definition, batch_job("pair", "pair", jq))
    status = barge.wait_state("pair", "SUCCEEDED", "FAILED", timeout=120)
    assert status["state"] == "SUCCEEDED", status
    main, other = status["nodeProperties"]["nodes"]
    assert main["exitCode"] == 0 and other["exitCode"] == 0, status["nodeProperties"]
    assert main["nodeName"] == other["nodeName"] == "barge-real"
    assert logs(barge, main["podName"]).strip() == "hello from 1"
