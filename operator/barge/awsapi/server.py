"""`barge aws-api`: the aiohttp application. Routes come from botocore's own `batch` model (each
operation's HTTP method and requestUri); every request is signed (SigV4), validated against the
operation's input shape, and run as the signer's Kubernetes user."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from botocore.model import OperationModel, ServiceModel
from botocore.session import get_session
from botocore.validate import ParamValidator

from barge.awsapi import definitions, environments, jobs, queues, scheduling_policies, tags
from barge.awsapi.context import Context
from barge.awsapi.errors import AwsError, client_error, server_error, unknown_operation
from barge.awsapi.identity import Identity
from barge.awsapi.kubeapi import KubeApi
from barge.awsapi.names import Arns
from barge.awsapi.sigv4 import verify

log = logging.getLogger("barge.awsapi")
Operation = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]

OPERATIONS: dict[str, Operation] = {
    "SubmitJob": jobs.submit, "DescribeJobs": jobs.describe, "ListJobs": jobs.list_jobs,
    "CancelJob": jobs.cancel, "TerminateJob": jobs.terminate, "CancelJobs": jobs.cancel_each,
    "TerminateJobs": jobs.terminate_each, "GetJobQueueSnapshot": jobs.snapshot,
    "RegisterJobDefinition": definitions.register, "DescribeJobDefinitions": definitions.describe,
    "DeregisterJobDefinition": definitions.deregister,
    "CreateJobQueue": queues.create, "UpdateJobQueue": queues.update, "DescribeJobQueues": queues.describe,
    "DeleteJobQueue": queues.delete,
    "CreateComputeEnvironment": environments.create, "UpdateComputeEnvironment": environments.update,
    "DescribeComputeEnvironments": environments.describe, "DeleteComputeEnvironment": environments.delete,
    "CreateSchedulingPolicy": scheduling_policies.create, "UpdateSchedulingPolicy": scheduling_policies.update,
    "DescribeSchedulingPolicies": scheduling_policies.describe,
    "ListSchedulingPolicies": scheduling_policies.list_policies, "DeleteSchedulingPolicy": scheduling_policies.delete,
    "TagResource": tags.tag, "UntagResource": tags.untag, "ListTagsForResource": tags.list_tags,
}


def service_model() -> ServiceModel:
    return get_session().get_service_model("batch")


def _aiohttp_path(uri: str) -> str:
    return uri.replace("}", ":.+}")  # a path parameter (an ARN) holds '/' and ':'


def _params(operation: OperationModel, request: web.Request, body: bytes) -> dict[str, Any]:
    """The operation's input: the JSON body, plus the members bound to the path and the query."""
    try:
        params = json.loads(body) if body.strip() else {}
    except ValueError:
        raise client_error("the request body is not JSON") from None
    if not isinstance(params, dict):
        raise client_error("the request body must be a JSON object")
    shape = operation.input_shape
    if shape is None:
        return params
    query = parse_qs(request.query_string)
    for name, member in shape.members.items():
        location, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if location == "uri" and wire in request.match_info:
            params[name] = request.match_info[wire]
        elif location == "querystring" and wire in query:
            params[name] = query[wire] if member.type_name == "list" else query[wire][0]
    return params


def _validate(operation: OperationModel, params: dict[str, Any]) -> None:
    if operation.input_shape is None:
        return
    report = ParamValidator().validate(params, operation.input_shape)
    if report.has_errors():
        raise client_error(report.generate_report().replace("Invalid type for parameter", "Invalid type for field"))


class AwsApi:
    def __init__(self, kube: KubeApi, identities: dict[str, Identity], namespace: str, account_id: str,
                 clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.kube = kube
        self.identities = identities
        self.namespace = namespace
        self.account_id = account_id
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self.model = service_model()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        for name in OPERATIONS:
            operation = self.model.operation_model(name)
            app.router.add_route(operation.http["method"], _aiohttp_path(operation.http["requestUri"]),
                                 self._handler(operation))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        app.on_startup.append(lambda _: self.kube.start())
        app.on_cleanup.append(lambda _: self.kube.close())
        return app

    def _secret_of(self, access_key: str) -> str | None:
        identity = self.identities.get(access_key)
        return identity.secret_access_key if identity else None

    async def _authenticate(self, request: web.Request, body: bytes) -> tuple[Identity, str]:
        signer = verify(request.method, request.raw_path, request.headers, body, self._secret_of, self.clock())
        return self.identities[signer.access_key], signer.region

    async def _unknown(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            await self._authenticate(request, body)
            raise unknown_operation(request.method, request.path)
        except AwsError as error:
            return _error_response(error)

    def _handler(self, operation: OperationModel) -> Callable[[web.Request], Awaitable[web.Response]]:
        run = OPERATIONS[operation.name]

        async def handle(request: web.Request) -> web.Response:
            try:
                body = await request.read()
                who, region = await self._authenticate(request, body)
                params = _params(operation, request, body)
                _validate(operation, params)
                ctx = Context(self.kube, who, Arns(region, self.account_id), self.namespace)
                result = await run(ctx, params)
            except AwsError as error:
                if error.status >= 500:
                    log.error("%s: %s", operation.name, error)
                return _error_response(error)
            except Exception:
                log.exception("%s failed", operation.name)
                return _error_response(server_error("An internal error occurred; the server's log has the detail."))
            return web.json_response(result)

        return handle


def _error_response(error: AwsError) -> web.Response:
    return web.Response(status=error.status, body=error.body(), headers=error.headers())
