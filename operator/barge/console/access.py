"""Who the console acts as: the user's own Kubernetes credentials for every call.

Two modes. Token mode: the user enters a bearer token at login; the console keeps it server-side in
memory under a random session id (an HttpOnly cookie), and every call it makes for that user carries
that token, so RBAC decides. Local mode (only on a loopback address, one person on their own
machine): the local kubeconfig's credentials. Tokens never appear in URLs or logs.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes

SESSION_COOKIE = "barge_console_session"
SESSION_SECONDS = 8 * 3600
REVIEW_SECONDS = 30


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def loopback_host(host: str) -> bool:
    """The Host header names this machine (so a page of another site, its name rebound to 127.0.0.1,
    cannot read the local-mode console, which needs no sign-in)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    return is_loopback(name.strip("[]"))


def base_configuration(kubeconfig: str | None = None) -> Any:
    """Where the API server is (and its CA), from the pod's service account or the kubeconfig."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


def token_configuration(base: Any, token: str) -> Any:
    """The API server of `base`, with only the user's bearer token as credentials."""
    configuration = copy.copy(base)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.api_key_prefix = {}
    configuration.cert_file = configuration.key_file = None
    configuration.username = configuration.password = None
    configuration.refresh_api_key_hook = None
    return configuration


@dataclass
class Session:
    id: str
    api_client: Any
    user: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    created: float = field(default_factory=time.monotonic)
    reviews: dict[tuple[str, str, str], tuple[float, bool]] = field(default_factory=dict)

    def expired(self) -> bool:
        return time.monotonic() - self.created > SESSION_SECONDS


class LoginError(Exception):
    pass


class Access:
    def __init__(self, base: Any, local: bool) -> None:
        self.base = base
        self.local = local
        self.sessions: dict[str, Session] = {}
        self._local: Session | None = None

    def local_session(self) -> Session:
        """The one session of local mode: the kubeconfig's owner, on their own machine."""
        if self._local is None:
            self._local = Session(secrets.token_urlsafe(32), kubernetes.client.ApiClient(self.base), "kubeconfig")
            self._local.created = float("inf")  # never expires
        return self._local

    async def login(self, token: str) -> Session:
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise LoginError("Enter a bearer token (a service account token or your OIDC id token).")
        api_client = kubernetes.client.ApiClient(token_configuration(self.base, token))
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": {"group": "barge.dev", "resource": "batchjobs", "verb": "list"}}}
        authorization: Any = kubernetes.client.AuthorizationV1Api(api_client)
        try:
            await asyncio.to_thread(authorization.create_self_subject_access_review, review)
        except kubernetes.client.ApiException as exc:
            raise LoginError("The API server did not accept this token." if exc.status == 401
                             else f"The API server refused the login ({exc.status} {exc.reason}).") from None
        except OSError as exc:
            raise LoginError(f"Cannot reach the API server: {type(exc).__name__}") from None
        session = Session(secrets.token_urlsafe(32), api_client, await self._whoami(api_client))
        for stale in [s for s in self.sessions.values() if s.expired()]:
            self.sessions.pop(stale.id, None)
        self.sessions[session.id] = session
        return session

    @staticmethod
    async def _whoami(api_client: Any) -> str:
        authentication: Any = kubernetes.client.AuthenticationV1Api(api_client)
        try:
            review = await asyncio.to_thread(authentication.create_self_subject_review,
                                             {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            return str(review.status.user_info.username or "")
        except (kubernetes.client.ApiException, OSError, AttributeError):
            return ""

    def session(self, session_id: str | None) -> Session | None:
        session = self.sessions.get(session_id or "")
        if session is not None and session.expired():
            self.sessions.pop(session.id, None)
            return None
        return session

    def logout(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    async def may(self, session: Session, verb: str, resource: str, namespace: str = "") -> bool:
        """RBAC's answer for this user (a SelfSubjectAccessReview with their credentials), cached briefly."""
        review_key = (verb, resource, namespace)
        cached = session.reviews.get(review_key)
        if cached and time.monotonic() - cached[0] < REVIEW_SECONDS:
            return cached[1]
        attributes = {"group": "barge.dev", "resource": resource, "verb": verb}
        if namespace:
            attributes["namespace"] = namespace
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes}}
        authorization: Any = kubernetes.client.AuthorizationV1Api(session.api_client)
        try:
            result = await asyncio.to_thread(authorization.create_self_subject_access_review, body)
            allowed = bool(result.status.allowed)
        except (kubernetes.client.ApiException, OSError):
            allowed = False
        session.reviews[review_key] = (time.monotonic(), allowed)
        return allowed
