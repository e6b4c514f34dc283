"""The API server, called as the signer's Kubernetes user (impersonation), so RBAC decides.

aiohttp rather than the kubernetes client: requests stay on the event loop, and Impersonate-Group
is sent once per group, as the API server reads it. The kubernetes package only loads the config
(kubeconfig or in-cluster) and refreshes its token."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import kubernetes
from multidict import CIMultiDict

from barge.awsapi.identity import Identity
from barge.core.states import GROUP, VERSION


@dataclass
class KubeError(Exception):
    status: int
    reason: str
    message: str


def load_configuration() -> kubernetes.client.Configuration:
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=config)
    return config


def _ssl_context(config: kubernetes.client.Configuration) -> ssl.SSLContext | bool:
    if not config.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=config.ssl_ca_cert or None)
    if not config.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file)
    return context


def path_of(plural: str, namespace: str | None = None, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}"
    if namespace is not None:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return base + (f"/{name}" if name else "")


class KubeApi:
    def __init__(self, config: kubernetes.client.Configuration) -> None:
        self.config = config
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=_ssl_context(self.config), limit=64)
        self.session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _headers(self, who: Identity, content_type: str | None) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict({"Accept": "application/json", "Impersonate-User": who.username})
        for group in who.groups:
            headers.add("Impersonate-Group", group)
        token = self.config.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, who: Identity, method: str, path: str, body: Any = None,
                      params: dict[str, str] | None = None, content_type: str = "application/json") -> Any:
        assert self.session is not None, "start() first"
        url = self.config.host.rstrip("/") + path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body)
        async with self.session.request(method, url, data=data,
                                        headers=self._headers(who, content_type if data else None)) as response:
            text = await response.text()
            payload = json.loads(text) if text else {}
            if response.status >= 400:
                raise KubeError(response.status, str(payload.get("reason") or response.reason),
                                str(payload.get("message") or text))
            return payload

    async def get(self, who: Identity, path: str) -> dict[str, Any]:
        return dict(await self.request(who, "GET", path))

    async def list(self, who: Identity, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every item, following `continue` pages."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self.request(who, "GET", path, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    async def create(self, who: Identity, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request(who, "POST", path, body))

    async def merge_patch(self, who: Identity, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.request(who, "PATCH", path, patch, content_type="application/merge-patch+json"))

    async def delete(self, who: Identity, path: str) -> None:
        await self.request(who, "DELETE", path)
