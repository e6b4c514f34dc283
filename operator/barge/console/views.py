"""Server-rendered HTML (Jinja2 templates, escaped by default); a page is also served as the fragment
that live updates swap in (`?fragment=1`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from barge.core.states import JOB_STATES

TEMPLATES = Path(__file__).parent / "templates"


class Views:
    def __init__(self) -> None:
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.ChainableUndefined,
                                      autoescape=jinja2.select_autoescape(["html"]))
        self.env.globals["job_states"] = JOB_STATES

    def page(self, template: str, http_status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(**context)
        return web.Response(text=html, status=http_status, content_type="text/html")
