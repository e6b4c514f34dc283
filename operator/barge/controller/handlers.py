"""kopf registrations: thin. Indexes parse each object once; event handlers call the controller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from barge.api.models import GROUP, VERSION
from barge.config import Settings
from barge.controller.controller import Controller
from barge.controller.records import EnvironmentRecord, JobRecord, QueueRecord
from barge.core.jobspec import JOB_ID_LABEL
from barge.core.lifecycle import observe_kube_job, observe_pod
from barge.kube import Kube

INDEX_NAMES = ("batchjobs", "batchjob_keys", "dependents", "jobdefinitions", "computeenvironments", "jobqueues",
               "pods", "jobs")
_state: dict[str, Any] = {}


def configure(settings: Settings) -> None:
    _state["settings"] = settings


def controller() -> Controller:
    return _state["controller"]


def _capture(kwargs: dict[str, Any]) -> Controller:
    ctl = controller()
    if not ctl.store.ready:
        ctl.store.capture({name: kwargs[name] for name in INDEX_NAMES})
        ctl.kick()
    return ctl


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    ours: Settings = _state["settings"]
    settings.posting.enabled = False  # Barge posts its own Events; kopf's log lines are not for users
    settings.persistence.finalizer = "barge.dev/finalizer"
    settings.peering.standalone = ours.standalone
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.batching.idle_timeout = 2  # a worker task per recently active object: keep few alive
    kube = Kube(ours.api_concurrency)
    ctl = Controller(ours, kube)
    _state["controller"] = ctl
    _state["scheduler"] = asyncio.get_running_loop().create_task(ctl.run_scheduler())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    task = _state.get("scheduler")
    if task is not None:
        task.cancel()
    if "controller" in _state:
        controller().kube.close()


@kopf.index(GROUP, VERSION, "batchjobs")
def batchjobs(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): JobRecord.from_body(body)}


@kopf.index(GROUP, VERSION, "batchjobs")
def batchjob_keys(namespace: str, name: str, uid: str, **_: Any) -> dict[Any, Any]:
    return {uid: (namespace, name)}


@kopf.index(GROUP, VERSION, "batchjobs")
def dependents(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    """(namespace, dependency name) -> the jobs that depend on it, to wake them when it changes."""
    return {(namespace, str(d["jobName"])): (namespace, name) for d in spec.get("dependsOn") or [] if d.get("jobName")}


@kopf.index(GROUP, VERSION, "jobdefinitions")
def jobdefinitions(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body.get("spec") or {})}


@kopf.index(GROUP, VERSION, "computeenvironments")
def computeenvironments(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: EnvironmentRecord.from_body(body)}


@kopf.index(GROUP, VERSION, "jobqueues")
def jobqueues(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: QueueRecord.from_body(body)}


@kopf.index("", "v1", "pods", labels={JOB_ID_LABEL: kopf.PRESENT})
def pods(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {labels[JOB_ID_LABEL]: observe_pod(dict(body))}


@kopf.index("batch", "v1", "jobs", labels={JOB_ID_LABEL: kopf.PRESENT})
def jobs(labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {labels[JOB_ID_LABEL]: observe_kube_job(dict(body))}


@kopf.on.event(GROUP, VERSION, "batchjobs")
async def batchjob_event(event: dict[str, Any], namespace: str, name: str, **kwargs: Any) -> None:
    ctl = _capture(kwargs)
    if event["type"] == "DELETED":
        ctl.forget((namespace, name))
        return
    await ctl.reconcile_job((namespace, name))


async def _owned_event(labels: kopf.Labels, kwargs: dict[str, Any]) -> None:
    ctl = _capture(kwargs)
    key = ctl.store.job_key_by_uid(labels.get(JOB_ID_LABEL, ""))
    if key is not None:
        await ctl.reconcile_job(key)


@kopf.on.event("", "v1", "pods", labels={JOB_ID_LABEL: kopf.PRESENT})
async def pod_event(labels: kopf.Labels, **kwargs: Any) -> None:
    await _owned_event(labels, kwargs)


@kopf.on.event("batch", "v1", "jobs", labels={JOB_ID_LABEL: kopf.PRESENT})
async def job_event(labels: kopf.Labels, **kwargs: Any) -> None:
    await _owned_event(labels, kwargs)


@kopf.on.event(GROUP, VERSION, "computeenvironments")
async def environment_event(**kwargs: Any) -> None:
    _capture(kwargs).kick()


@kopf.on.event(GROUP, VERSION, "jobqueues")
async def queue_event(**kwargs: Any) -> None:
    _capture(kwargs).kick()


@kopf.on.event(GROUP, VERSION, "jobdefinitions")
async def definition_event(**kwargs: Any) -> None:
    _capture(kwargs)


def log_level(name: str) -> int:
    return getattr(logging, name.upper(), logging.INFO)
