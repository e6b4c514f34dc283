"""The console's routes: login, overview, jobs list, job page, submit, cancel and terminate, logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from barge.console import calls, forms, live, queries
from barge.console.access import SESSION_COOKIE, SESSION_SECONDS, Access, LoginError, Session, loopback_host
from barge.console.keys import ACCESS, SESSION, STORE, VIEWS
from barge.console.store import Store
from barge.console.views import Views
from barge.core.states import JOB_STATES

STATIC = Path(__file__).parent / "static"
PUBLIC = ("/login", "/static/", "/healthz")


def _cookie(response: web.StreamResponse, session: Session, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="Strict", secure=secure,
                        max_age=SESSION_SECONDS, path="/")


@web.middleware
async def sessions(request: web.Request, handler: Any) -> web.StreamResponse:
    access: Access = request.app[ACCESS]
    if access.local:
        if not loopback_host(request.host):
            raise web.HTTPForbidden(text="The local console answers only to 127.0.0.1, localhost or [::1].")
        session: Session | None = access.local_session()
    else:
        session = access.session(request.cookies.get(SESSION_COOKIE))
    if session is None and not request.path.startswith(PUBLIC):
        raise web.HTTPSeeOther("/login")
    if session is not None:
        request[SESSION] = session
    if request.method == "POST" and session is not None and request.path != "/login":
        form = await request.post()
        if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            raise web.HTTPForbidden(text="This form has expired; reload the page and try again.")
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _views(request: web.Request) -> Views:
    views: Views = request.app[VIEWS]
    return views


def _render(request: web.Request, template: str, http_status: int = 200, **context: Any) -> web.Response:
    session: Session | None = request.get(SESSION)
    return _views(request).page(template, http_status=http_status, fragment=request.query.get("fragment") == "1",
                                session=session, local=request.app[ACCESS].local, path=request.path,
                                query=request.query, **context)


# --- login -------------------------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    if request.app[ACCESS].local:
        raise web.HTTPSeeOther("/")
    return _render(request, "login.html", error="")


async def login(request: web.Request) -> web.Response:
    access: Access = request.app[ACCESS]
    form = await request.post()
    try:
        session = await access.login(str(form.get("token", "")))
    except LoginError as exc:
        return _render(request, "login.html", http_status=401, error=str(exc))
    response = web.HTTPSeeOther("/")
    _cookie(response, session, request.secure)
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[ACCESS].logout(request[SESSION].id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# --- pages -------------------------------------------------------------------------------------

async def overview(request: web.Request) -> web.Response:
    access: Access = request.app[ACCESS]
    store: Store = request.app[STORE]
    session = request[SESSION]
    allowed = {kind: await access.may(session, "list", kind) for kind in ("jobqueues", "computeenvironments")}
    queues = sorted(store.items("jobqueues"), key=lambda q: (-int(q["spec"].get("priority", 0)), q["metadata"]["name"]))
    environments = []
    for env in sorted(store.items("computeenvironments"), key=lambda e: e["metadata"]["name"]):
        status = env.get("status") or {}
        used = queries.cpu_number((status.get("usage") or {}).get("vcpus"))
        maximum = int(env["spec"]["computeResources"].get("maxvCpus") or 0)
        environments.append({"env": env, "used": used, "max": maximum,
                             "percent": min(100, round(100 * used / maximum)) if maximum else 0})
    throughput = []
    if await access.may(session, "list", "batchjobs"):
        throughput = queries.throughput(store.items("batchjobs"), dt.datetime.now(dt.UTC))
    return _render(request, "overview.html", queues=queues if allowed["jobqueues"] else None,
                   environments=environments if allowed["computeenvironments"] else None,
                   throughput=throughput, peak=max([t["succeeded"] + t["failed"] for t in throughput] or [1]) or 1)


async def jobs(request: web.Request) -> web.Response:
    access: Access = request.app[ACCESS]
    store: Store = request.app[STORE]
    query = request.query
    try:
        page = int(query.get("page", "1") or 1)
    except ValueError:
        page = 0
    wanted = queries.JobFilter(namespace=query.get("namespace", "").strip(), queue=query.get("queue", "").strip(),
                               state=query.get("state", "").strip().upper(), name=query.get("name", "").strip(),
                               sort=query.get("sort", "newest") or "newest", page=page)
    problems = wanted.problems()
    denied = "" if await access.may(request[SESSION], "list", "batchjobs", wanted.namespace) else (
        f"You may not list BatchJobs in namespace '{wanted.namespace}'." if wanted.namespace else
        "You may not list BatchJobs in every namespace: choose a namespace.")
    result = queries.Page([], 0, 1, 1)
    if not problems and not denied:
        result = queries.page_of(store.jobs_sorted(wanted.sort), wanted)
    params = {k: v for k, v in {"namespace": wanted.namespace, "queue": wanted.queue, "state": wanted.state,
                                 "name": wanted.name, "sort": wanted.sort}.items() if v}

    def page_link(number: int) -> str:
        return "/jobs?" + urlencode({**params, "page": number})

    return _render(request, "jobs.html", http_status=400 if problems else 200, filter=wanted, problems=problems,
                   denied=denied, result=result, states=JOB_STATES, sorts=queries.SORTS, page_link=page_link,
                   queues=sorted(q["metadata"]["name"] for q in store.items("jobqueues")),
                   namespaces=sorted({j["metadata"].get("namespace", "") for j in store.items("jobdefinitions")}))


async def job(request: web.Request) -> web.Response:
    access: Access = request.app[ACCESS]
    store: Store = request.app[STORE]
    session: Session = request[SESSION]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    fetched, may_list, may_list_all = await asyncio.gather(
        calls.get_job(session.api_client, namespace, name), access.may(session, "list", "batchjobs", namespace),
        access.may(session, "list", "batchjobs"), return_exceptions=True)
    if isinstance(fetched, calls.CallError):
        return _render(request, "error.html", http_status=fetched.status or 502,
                       message=f"BatchJob {namespace}/{name}: {fetched}")
    if isinstance(fetched, BaseException):
        raise fetched
    found: dict[str, Any] = fetched
    status = found.get("status") or {}
    namespace_jobs = store.namespace_jobs(namespace) if may_list is True else []
    position = None
    if may_list_all is True:
        queue = found["spec"].get("jobQueue")
        position = queries.queue_position(found, (j for j in store.items("batchjobs")
                                                   if j.get("spec", {}).get("jobQueue") == queue))
    pods: list[Any] = []
    if status.get("jobId"):
        try:
            pods = await calls.job_pods(session.api_client, namespace, status["jobId"])
        except calls.CallError:
            pods = []
    children = queries.array_children(found, calls.live_children(pods))
    dependencies = []
    for dependency in found["spec"].get("dependsOn") or []:
        other = store.get("batchjobs", namespace, dependency.get("jobName", "")) if dependency.get("jobName") else None
        dependencies.append({**dependency, "state": queries.state(other) if other else
                             ("-" if not dependency.get("jobName") else "does not exist yet")})
    upstream = {d["jobName"]: d["state"] for d in dependencies if d.get("jobName")}
    attempts = list(status.get("attempts") or [])
    child_attempts = [(index, n, a) for index, child in sorted(((status.get("arrayProperties") or {}).get("children")
                                                               or {}).items(), key=lambda kv: int(kv[0]))
                      for n, a in enumerate(child.get("attempts") or [], 1)]
    live_pods = sorted((p.metadata.name for p in pods), reverse=True)[:50]
    return _render(request, "job.html", job=found, status=status, state=queries.state(found), position=position,
                   waits_for=queries.waits_for(found, upstream), attempts=attempts,
                   child_attempts=child_attempts[:200],
                   graph=queries.dependency_graph(found, namespace_jobs) if may_list is True else queries.Graph(),
                   dependencies=dependencies, children=children, pods=live_pods,
                   timeline=_timeline(found), node_size=(queries.NODE_W, queries.NODE_H))


def _timeline(found: dict[str, Any]) -> list[tuple[str, str]]:
    status = found.get("status") or {}
    steps = [("Submitted", status.get("createdAt") or found["metadata"].get("creationTimestamp"))]
    for n, attempt in enumerate(status.get("attempts") or [], 1):
        steps.append((f"Attempt {n} started", attempt.get("startedAt")))
        steps.append((f"Attempt {n} stopped (exit {attempt.get('exitCode', '-')})", attempt.get("stoppedAt")))
    if not status.get("attempts"):
        steps.append(("Started", status.get("startedAt")))
    steps.append((f"{queries.state(found).capitalize()}" if status.get("stoppedAt") else "Stopped",
                  status.get("stoppedAt")))
    return [(label, when) for label, when in steps if when]


async def pod_log(request: web.Request) -> web.Response:
    session: Session = request[SESSION]
    namespace, name, pod = request.match_info["namespace"], request.match_info["name"], request.match_info["pod"]
    try:
        found = await calls.get_job(session.api_client, namespace, name)
        text = await calls.pod_log(session.api_client, namespace, pod, (found.get("status") or {}).get("jobId", ""))
    except calls.CallError as exc:
        if exc.status == 404:
            text = (f"No log: {exc}. Pods of finished jobs are removed after the operator's --kubernetes-job-ttl; "
                    "the attempts above keep the exit codes and reasons.")
        else:
            return web.Response(status=exc.status or 502, text=str(exc))
    return web.Response(text=text, content_type="text/plain")


async def stop(request: web.Request) -> web.Response:
    session: Session = request[SESSION]
    namespace, name, verb = request.match_info["namespace"], request.match_info["name"], request.match_info["verb"]
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    if not reason:
        raise web.HTTPSeeOther(f"/jobs/{namespace}/{name}?" + urlencode({"error": f"{verb}: a reason is required"}))
    try:
        await calls.stop_job(session.api_client, namespace, name, verb, reason[:1024])
    except calls.CallError as exc:
        raise web.HTTPSeeOther(f"/jobs/{namespace}/{name}?" + urlencode({"error": f"{verb}: {exc}"})) from None
    raise web.HTTPSeeOther(f"/jobs/{namespace}/{name}?" + urlencode({"done": f"{verb} requested: {reason}"}))


# --- submit ------------------------------------------------------------------------------------

def _choices(store: Store) -> dict[str, Any]:
    definitions: dict[str, list[str]] = {}
    for definition in store.items("jobdefinitions"):
        definitions.setdefault(definition["metadata"].get("namespace", ""), []).append(definition["metadata"]["name"])
    return {"definitions": {ns: sorted(names) for ns, names in sorted(definitions.items())},
            "queue_names": sorted(q["metadata"]["name"] for q in store.items("jobqueues")),
            "labels": forms.LABELS}


async def submit_page(request: web.Request) -> web.Response:
    values = {"namespace": request.query.get("namespace", "default")}
    return _render(request, "submit.html", values=values, errors={}, yaml_text="", **_choices(request.app[STORE]))


async def submit(request: web.Request) -> web.Response:
    session: Session = request[SESSION]
    form = await request.post()
    if "yaml" in form:
        result = forms.yaml_submission(str(form.get("yaml", "")), str(form.get("namespace", "")))
    else:
        result = forms.submission({k: str(v) for k, v in form.items() if k != "csrf"})
        if result.body is not None:
            store: Store = request.app[STORE]
            definitions = {d["metadata"]["name"] for d in store.items("jobdefinitions")
                           if d["metadata"].get("namespace") == result.namespace}
            result.errors.update(forms.reference_problems(
                result.body, definitions, {q["metadata"]["name"] for q in store.items("jobqueues")}))
            if result.errors:
                result.body = None
    if result.body is not None:
        try:
            created = await calls.create_job(session.api_client, result.body)
        except calls.CallError as exc:
            result.errors["yaml" if "yaml" in form else "form"] = f"the API server refused it: {exc}"
        else:
            raise web.HTTPSeeOther(f"/jobs/{created['metadata']['namespace']}/{created['metadata']['name']}")
    return _render(request, "submit.html", http_status=400, values=result.values, errors=result.errors,
                   yaml_text=str(form.get("yaml", "")), **_choices(request.app[STORE]))


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(access: Access, store: Store) -> web.Application:
    app = web.Application(middlewares=[sessions])
    app[ACCESS], app[STORE], app[VIEWS] = access, store, Views()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", overview)
    app.router.add_get("/jobs", jobs)
    app.router.add_get("/jobs/{namespace}/{name}", job)
    app.router.add_get("/jobs/{namespace}/{name}/logs/{pod}", pod_log)
    app.router.add_post("/jobs/{namespace}/{name}/{verb:cancel|terminate}", stop)
    app.router.add_get("/submit", submit_page)
    app.router.add_post("/submit", submit)
    app.router.add_get("/events", live.events)
    app.router.add_static("/static/", STATIC)
    return app
