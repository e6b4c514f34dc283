"""The Kubernetes calls the console makes for a user, each with that user's credentials."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import kubernetes

from barge.core.states import ARRAY_INDEX_LABEL, GROUP, JOB_ID_LABEL, VERSION


class CallError(Exception):
    """The API server refused or could not be reached; the message is the API server's, for the user."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except kubernetes.client.ApiException as exc:
        detail = exc.body if isinstance(exc.body, str) else exc.reason
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            detail = json.loads(detail).get("message", detail)
        raise CallError(str(detail), exc.status or 0) from None
    except OSError as exc:
        raise CallError(f"cannot reach the API server: {type(exc).__name__}") from None


def _custom(api_client: Any) -> Any:
    return kubernetes.client.CustomObjectsApi(api_client)


async def create_job(api_client: Any, body: dict[str, Any]) -> dict[str, Any]:
    namespace = body["metadata"]["namespace"]
    return dict(await _call(_custom(api_client).create_namespaced_custom_object, GROUP, VERSION, namespace,
                            "batchjobs", body))


async def get_job(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(await _call(_custom(api_client).get_namespaced_custom_object, GROUP, VERSION, namespace,
                            "batchjobs", name))


async def stop_job(api_client: Any, namespace: str, name: str, verb: str, reason: str) -> None:
    """verb: cancel or terminate, written into the spec as the contract says."""
    await _call(_custom(api_client).patch_namespaced_custom_object, GROUP, VERSION, namespace, "batchjobs", name,
                {"spec": {verb: {"reason": reason}}})


async def job_pods(api_client: Any, namespace: str, job_id: str) -> list[Any]:
    result = await _call(kubernetes.client.CoreV1Api(api_client).list_namespaced_pod, namespace,
                         label_selector=f"{JOB_ID_LABEL}={job_id}")
    return list(result.items)


def live_children(pods: list[Any]) -> dict[int, str]:
    """Array index -> STARTING or RUNNING, from the children's pods that are still alive."""
    children = {}
    for pod in pods:
        index = (pod.metadata.labels or {}).get(ARRAY_INDEX_LABEL)
        if index is None or pod.status.phase not in ("Pending", "Running"):
            continue
        children[int(index)] = "RUNNING" if pod.status.phase == "Running" else "STARTING"
    return children


async def pod_log(api_client: Any, namespace: str, pod: str, job_id: str, tail_lines: int = 2000) -> str:
    """A pod's log, only for a pod of this job (so the page cannot be used to read any pod)."""
    found = await _call(kubernetes.client.CoreV1Api(api_client).read_namespaced_pod, pod, namespace)
    if (found.metadata.labels or {}).get(JOB_ID_LABEL) != job_id:
        raise CallError(f"pod {pod} does not belong to this job", 404)
    return str(await _call(kubernetes.client.CoreV1Api(api_client).read_namespaced_pod_log, pod, namespace,
                           tail_lines=tail_lines))
