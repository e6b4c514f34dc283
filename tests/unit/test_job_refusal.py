"""A Job the API server refuses ends the BatchJob with the server's own message on one line, not a
dump of its answer."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from barge.controller.jobs import PodRefused, quota_exceeded, refusal


def api_error(status: int, body: str | None, reason: str = "Unprocessable Entity") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = body
    return error


@pytest.mark.parametrize(("error", "expected"), [
    (api_error(422, json.dumps({"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
                                "message": 'Job.batch "j-1" is invalid: spec.template.spec.nodeSelector:\n'
                                           ' Invalid value: "a b": name part must consist of alphanumeric'})),
     'Kubernetes refused the Job: Job.batch "j-1" is invalid: spec.template.spec.nodeSelector: '
     'Invalid value: "a b": name part must consist of alphanumeric'),
    (api_error(403, "not json", reason="Forbidden"), "Kubernetes refused the Job: Forbidden"),
    (api_error(404, None, reason="Not Found"), "Kubernetes refused the Job: Not Found"),
])
def test_the_reason_is_the_servers_message_on_one_line(error: ApiException, expected: str) -> None:
    assert refusal(error) == expected
    assert "\n" not in refusal(error)


def test_a_long_message_is_cut_to_the_status_reason_limit() -> None:
    error = api_error(422, json.dumps({"message": "x" * 5000}))
    assert len(refusal(error)) == 1024


def test_a_refused_pod_says_pod() -> None:
    error = PodRefused(api_error(403, json.dumps({"message": 'pods "j-1-bcdfg" is forbidden: violates PodSecurity'}),
                                 reason="Forbidden"))
    assert refusal(error) == 'Kubernetes refused the pod: pods "j-1-bcdfg" is forbidden: violates PodSecurity'
    assert not quota_exceeded(error)


def test_a_namespace_quota_is_waited_for_not_a_refusal() -> None:
    body = json.dumps({"message": 'pods "j-1-bcdfg" is forbidden: exceeded quota: q, requested: cpu=1'})
    assert quota_exceeded(PodRefused(api_error(403, body, reason="Forbidden")))
    assert not quota_exceeded(api_error(422, body))
