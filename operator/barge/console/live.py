"""Live updates: the store's watch events, as server-sent events, to each browser that may see them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from barge.console.access import Access, Session
from barge.console.keys import ACCESS, SESSION, STORE
from barge.console.store import Store

HEARTBEAT_SECONDS = 15
CLUSTER_KINDS = ("jobqueues", "computeenvironments")


async def _visible(access: Access, session: Session, kind: str, obj: dict[str, Any]) -> bool:
    namespace = (obj.get("metadata") or {}).get("namespace", "")
    if kind in CLUSTER_KINDS:
        return await access.may(session, "list", kind)
    return await access.may(session, "list", kind, namespace)


async def events(request: web.Request) -> web.StreamResponse:
    """`text/event-stream`: one `change` event per watched change the user may see (kind, namespace,
    name and state only: the page fetches what it shows with the user's rights)."""
    store: Store = request.app[STORE]
    access: Access = request.app[ACCESS]
    session: Session = request[SESSION]
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(maxsize=10000)

    def listener(kind: str, event: str, obj: dict[str, Any]) -> None:
        def put() -> None:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait((kind, event, obj))
        loop.call_soon_threadsafe(put)

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    unsubscribe = store.subscribe(listener)
    try:
        await response.write(b"retry: 2000\n\n")
        while True:
            try:
                kind, event, obj = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if event != "RELISTED" and not await _visible(access, session, kind, obj):
                continue
            meta = obj.get("metadata") or {}
            data = {"kind": kind, "event": event, "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                    "state": (obj.get("status") or {}).get("state")}
            await response.write(f"event: change\ndata: {json.dumps(data)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        unsubscribe()
    return response
