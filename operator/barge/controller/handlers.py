"""kopf registrations: thin. kopf indexes the few, small kinds (compute environments, queues, job
definitions) and runs the operator; BatchJobs, their Jobs and pods come through informer.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from barge.config import Settings
from barge.controller.operator import Operator
from barge.controller.records import EnvironmentRecord, PolicyRecord, QueueRecord, node_from_body
from barge.core.states import FINALIZER, GROUP, VERSION
from barge.kube import Kube

INDEX_NAMES = ("jobdefinitions", "computeenvironments", "jobqueues", "schedulingpolicies", "namespaces", "nodes")
_state: dict[str, Any] = {}


class NoDiffBase(kopf.DiffBaseStorage):
    """Barge registers no on.create/update/field handlers, so kopf never reads a diff-base. Its
    default storage deep-copies every object on every event to build one: about a tenth of the
    operator's CPU under load, spent on nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure(settings: Settings) -> None:
    _state["settings"] = settings


def operator() -> Operator:
    return _state["operator"]


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    ours: Settings = _state["settings"]
    settings.posting.enabled = False  # Barge posts its own Events; kopf's log lines are not for users
    settings.persistence.finalizer = FINALIZER
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.peering.standalone = ours.standalone
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.batching.idle_timeout = 2  # a worker task per recently active object: keep few alive
    # kopf waits this long for more events of one object before handling them (default 0.1 s). The
    # small kinds rarely change in bursts, and an enabled compute environment should dispatch at once.
    settings.batching.batch_window = 0.02
    kube = Kube(ours.api_concurrency)
    barge_operator = Operator(ours, kube)
    barge_operator.store.capture({name: kwargs[name] for name in INDEX_NAMES})  # live: kopf fills them later
    _state["operator"] = barge_operator
    loop = asyncio.get_running_loop()
    _state["list"] = loop.create_task(barge_operator.initial_list())
    _state["scheduler"] = loop.create_task(barge_operator.run_scheduler())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    for name in ("scheduler", "list"):
        task = _state.get(name)
        if task is not None:
            task.cancel()
    if "operator" in _state:
        operator().informer.stop()
        operator().kube.close()


@kopf.index(GROUP, VERSION, "jobdefinitions")
def jobdefinitions(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): dict(body.get("spec") or {})}


@kopf.index(GROUP, VERSION, "computeenvironments")
def computeenvironments(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: EnvironmentRecord.from_body(body)}


@kopf.index(GROUP, VERSION, "jobqueues")
def jobqueues(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: QueueRecord.from_body(body)}


@kopf.index(GROUP, VERSION, "schedulingpolicies")
def schedulingpolicies(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {name: PolicyRecord.from_body(body)}


@kopf.on.event(GROUP, VERSION, "schedulingpolicies")
async def policy_event(**_: Any) -> None:
    operator().kick()


@kopf.index("v1", "namespaces")
def namespaces(name: str, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
    """Namespaces' labels, for queues' namespaceSelector."""
    return {name: dict(labels)}


@kopf.index("v1", "nodes")
def nodes(name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Nodes as the scheduler sees them (the room on an environment's nodes)."""
    return {name: node_from_body(body)}


@kopf.on.event("v1", "nodes")
async def node_event(name: str, body: kopf.Body, type: str | None, **_: Any) -> None:
    store = operator().store
    if type == "DELETED":
        store.node_gone(name)
        operator().kick()
    elif store.node_changed(node_from_body(body)):
        operator().kick()


@kopf.on.event(GROUP, VERSION, "computeenvironments")
async def environment_event(**_: Any) -> None:
    operator().kick()


@kopf.on.event(GROUP, VERSION, "jobqueues")
async def queue_event(**_: Any) -> None:
    operator().kick()


def log_level(name: str) -> int:
    return getattr(logging, name.upper(), logging.INFO)
