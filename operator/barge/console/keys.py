"""Typed keys of what the console's app and requests carry."""

from __future__ import annotations

from aiohttp import web

from barge.console.access import Access, Session
from barge.console.store import Store
from barge.console.views import Views

ACCESS = web.AppKey("access", Access)
STORE = web.AppKey("store", Store)
VIEWS = web.AppKey("views", Views)
SESSION = web.RequestKey("session", Session)
