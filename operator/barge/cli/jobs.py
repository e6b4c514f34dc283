"""`barge submit|list|describe|logs|cancel|terminate|wait|queues|envs`: Barge from the terminal.

Uses the current kubeconfig and namespace like kubectl. Exit codes scripts can rely on:
0 done (for `wait`/`submit --wait`: the job SUCCEEDED), 1 the job FAILED, 2 bad input,
3 not found, 4 the API failed or a wait timed out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from typing import Any

import kubernetes
import yaml

from barge.core import fairshare
from barge.core.states import ARRAY_INDEX_LABEL, ATTEMPT_LABEL, GROUP, JOB_ID_LABEL, TERMINAL, VERSION
from barge.core.states import JOB_STATES as STATES

OK, FAILED, BAD_INPUT, NOT_FOUND, API_ERROR = 0, 1, 2, 3, 4


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Api:
    def __init__(self, namespace: str | None) -> None:
        try:
            kubernetes.config.load_kube_config()
            _, context = kubernetes.config.list_kube_config_contexts()
            default_ns = (context or {}).get("context", {}).get("namespace") or "default"
        except (kubernetes.config.ConfigException, FileNotFoundError, TypeError) as exc:
            raise CliError(f"no cluster: cannot load the kubeconfig ({exc}); set KUBECONFIG", API_ERROR) from exc
        self.namespace = namespace or default_ns
        self.custom: Any = kubernetes.client.CustomObjectsApi()
        self.core: Any = kubernetes.client.CoreV1Api()

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                raise CliError("not found", NOT_FOUND) from exc
            detail = exc.body if isinstance(exc.body, str) else exc.reason
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                detail = json.loads(detail).get("message", detail)
            code = BAD_INPUT if exc.status in (400, 409, 422) else API_ERROR
            raise CliError(f"the API refused: {detail}", code) from exc
        except OSError as exc:
            raise CliError(f"cannot reach the cluster: {exc}", API_ERROR) from exc

    def job(self, name: str) -> dict[str, Any]:
        try:
            return self.call(self.custom.get_namespaced_custom_object, GROUP, VERSION, self.namespace,
                             "batchjobs", name)
        except CliError as exc:
            if exc.code != NOT_FOUND:
                raise
            names = [j["metadata"]["name"] for j in self.jobs()][:10]
            hint = f"; jobs here: {', '.join(names)}" if names else "; there are no BatchJobs here"
            raise CliError(f"BatchJob '{name}' not found in namespace '{self.namespace}'{hint}", NOT_FOUND) from exc

    def jobs(self, all_namespaces: bool = False, selector: str = "") -> list[dict[str, Any]]:
        if all_namespaces:
            result = self.call(self.custom.list_cluster_custom_object, GROUP, VERSION, "batchjobs",
                               label_selector=selector)
        else:
            result = self.call(self.custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                               "batchjobs", label_selector=selector)
        return result["items"]

    def cluster_objects(self, plural: str) -> list[dict[str, Any]]:
        return self.call(self.custom.list_cluster_custom_object, GROUP, VERSION, plural)["items"]


# --- formatting --------------------------------------------------------------------------

def age(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    seconds = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")))
    s = int(seconds.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def status(job: dict[str, Any]) -> dict[str, Any]:
    return job.get("status") or {}


def state(job: dict[str, Any]) -> str:
    return str(status(job).get("state") or "SUBMITTED")


# --- commands ----------------------------------------------------------------------------

def _key_values(items: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} expects NAME=VALUE, got '{item}'", BAD_INPUT)
        result[key] = value
    return result


def _dependency(text: str) -> dict[str, str]:
    """name[:N_TO_N|SEQUENTIAL][:Succeeded|Failed|Finished], or SEQUENTIAL alone."""
    if text.upper() == "SEQUENTIAL":
        return {"type": "SEQUENTIAL"}
    parts = text.split(":")
    dependency = {"jobName": parts[0]}
    for part in parts[1:]:
        if part.upper() in ("N_TO_N", "SEQUENTIAL"):
            dependency["type"] = part.upper()
        elif part.capitalize() in ("Succeeded", "Failed", "Finished"):
            dependency["condition"] = part.capitalize()
        else:
            raise CliError(f"--depends-on '{text}': '{part}' is neither a type (N_TO_N, SEQUENTIAL) "
                           "nor a condition (Succeeded, Failed, Finished)", BAD_INPUT)
    return dependency


def _check_references(api: Api, queue: str, definition: str) -> None:
    queues = [q["metadata"]["name"] for q in api.cluster_objects("jobqueues")]
    if queue not in queues:
        raise CliError(f"queue '{queue}' not found; queues: {', '.join(sorted(queues)) or 'none'}", NOT_FOUND)
    definitions = [d["metadata"]["name"] for d in api.call(api.custom.list_namespaced_custom_object, GROUP,
                                                           VERSION, api.namespace, "jobdefinitions")["items"]]
    if definition not in definitions:
        raise CliError(f"job definition '{definition}' not found in namespace '{api.namespace}'; "
                       f"definitions: {', '.join(sorted(definitions)) or 'none'}", NOT_FOUND)


def submit(api: Api, args: argparse.Namespace) -> int:
    _check_references(api, args.job_queue, args.job_definition)
    overrides: dict[str, Any] = {}
    if args.override_command:
        overrides["command"] = args.override_command
    if args.env:
        overrides["env"] = [{"name": k, "value": v} for k, v in _key_values(args.env, "--env").items()]
    for field in ("vcpus", "memory", "gpus"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    spec: dict[str, Any] = {"jobDefinition": args.job_definition, "jobQueue": args.job_queue}
    if args.parameters:
        spec["parameters"] = _key_values(args.parameters, "--parameters")
    if overrides:
        spec["overrides"] = overrides
    if args.array_size:
        spec["arrayProperties"] = {"size": args.array_size}
    if args.depends_on:
        spec["dependsOn"] = [_dependency(d) for d in args.depends_on]
    if args.attempts:
        spec["retryStrategy"] = {"attempts": args.attempts}
    if args.timeout:
        spec["timeout"] = {"attemptDurationSeconds": args.timeout}
    metadata = {"name": args.name} if args.name else {"generateName": f"{args.job_name or args.job_definition}-"}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BatchJob", "metadata": metadata, "spec": spec}
    created = api.call(api.custom.create_namespaced_custom_object, GROUP, VERSION, api.namespace, "batchjobs", body)
    name = created["metadata"]["name"]
    print(name)
    if args.wait:
        return wait_for(api, name, "finished", args.wait_timeout, progress=sys.stderr.isatty())
    return OK


def list_jobs(api: Api, args: argparse.Namespace) -> int:
    jobs = api.jobs(args.all_namespaces, args.selector or "")
    if args.queue:
        jobs = [j for j in jobs if j["spec"].get("jobQueue") == args.queue]
    if args.state:
        wanted = {s.upper() for s in args.state.split(",")}
        unknown = wanted - set(STATES)
        if unknown:
            raise CliError(f"--state: unknown {', '.join(sorted(unknown))}; states: {', '.join(STATES)}", BAD_INPUT)
        jobs = [j for j in jobs if state(j) in wanted]
    jobs.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""), reverse=True)
    if args.output == "json":
        print(json.dumps({"items": jobs}, indent=2))
        return OK
    if args.output == "yaml":
        print(yaml.safe_dump({"items": jobs}, sort_keys=False))
        return OK
    rows = []
    for job in jobs:
        s = status(job)
        row = [job["metadata"]["name"], state(job), job["spec"].get("jobQueue", ""), s.get("arrayProgress") or "-",
               str(s.get("attemptCount") or 0), age(job["metadata"].get("creationTimestamp")),
               (s.get("statusReason") or "")[:80]]
        rows.append([job["metadata"]["namespace"], *row] if args.all_namespaces else row)
    header = ["NAME", "STATE", "QUEUE", "ARRAY", "ATTEMPTS", "AGE", "REASON"]
    print(table(rows, ["NAMESPACE", *header] if args.all_namespaces else header) if rows else "No BatchJobs found.")
    return OK


def _priority(job: dict[str, Any]) -> int:
    override = job["spec"].get("schedulingPriorityOverride")
    if override is not None:
        return int(override)
    return int((status(job).get("resolved") or {}).get("schedulingPriority") or 0)


def _core_policy(policy: dict[str, Any]) -> fairshare.Policy:
    spec = (policy.get("spec") or {}).get("fairsharePolicy") or {}
    entries = tuple(fairshare.ShareEntry(e["shareIdentifier"], float(e.get("weightFactor", 1.0)))
                    for e in spec.get("shareDistribution") or [])
    usage = {s["shareIdentifier"]: float(s.get("usage") or 0) for s in (policy.get("status") or {}).get("shares") or []}
    return fairshare.Policy(policy["metadata"]["name"], int(spec.get("shareDecaySeconds") or 0),
                            int(spec.get("computeReservation") or 0), entries, usage)


def queue_position(job: dict[str, Any], jobs: list[dict[str, Any]], policy: dict[str, Any] | None) -> str:
    """The job's place among its queue's RUNNABLE jobs, in the order the scheduler considers them:
    priority then submission, and on a fair-share queue each share in turn by its standing."""
    queue = job["spec"].get("jobQueue")
    waiting = [j for j in jobs if j["spec"].get("jobQueue") == queue and state(j) == "RUNNABLE"]
    waiting.sort(key=lambda j: (-_priority(j), float(status(j).get("queuedAt") or 0), j["metadata"]["namespace"],
                                j["metadata"]["name"]))
    if policy is not None:
        running = {s["shareIdentifier"]: int(float(s.get("runningvCpus") or 0) * 1000)
                   for s in (policy.get("status") or {}).get("shares") or []}
        waiting = fairshare.service_order(
            _core_policy(policy), waiting, lambda j: str(j["spec"].get("shareIdentifier") or ""),
            lambda j: float(status(j).get("queuedAt") or 0),
            lambda j: int(((status(j).get("resolved") or {}).get("request") or {}).get("cpuMilli") or 0), running)
    names = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in waiting]
    key = (job["metadata"]["namespace"], job["metadata"]["name"])
    return f"{names.index(key) + 1} of {len(names)} RUNNABLE in queue '{queue}'" if key in names else "-"


def share_line(job: dict[str, Any], policy: dict[str, Any] | None) -> str:
    """A fair-share job's share: its weight in effect, usage, what it runs and how many wait."""
    share = job["spec"].get("shareIdentifier")
    if not share:
        return "-"
    if policy is None:
        return f"{share} (the queue's scheduling policy does not exist)"
    rows = (policy.get("status") or {}).get("shares") or []
    row: dict[str, Any] = next((s for s in rows if s.get("shareIdentifier") == share), {})
    weight = row.get("weightFactor") or fairshare.weight_of(_core_policy(policy).distribution, share, ())
    return (f"{share} of policy '{policy['metadata']['name']}': weightFactor {weight}, usage "
            f"{row.get('usage', 0)} vCPU-seconds, {row.get('runningvCpus', 0)} vCPUs running, "
            f"{row.get('runnableJobs', 0)} jobs waiting")


def _policy_of(api: Api, job: dict[str, Any]) -> dict[str, Any] | None:
    queue = next((q for q in api.cluster_objects("jobqueues") if q["metadata"]["name"] == job["spec"].get("jobQueue")),
                 None)
    name = (queue or {}).get("spec", {}).get("schedulingPolicy")
    return next((p for p in api.cluster_objects("schedulingpolicies") if p["metadata"]["name"] == name), None)


def _queue_position(api: Api, job: dict[str, Any], policy: dict[str, Any] | None) -> str:
    return queue_position(job, api.jobs(True), policy)


def _waits_for(api: Api, job: dict[str, Any]) -> str:
    s, current = status(job), state(job)
    if current == "PENDING" and job["spec"].get("dependsOn") and not s.get("arrayProperties", {}).get(
            "succeededIndices"):
        return f"a dependency: {s.get('statusReason')}"
    if current == "RUNNABLE":
        queue = next((q for q in api.cluster_objects("jobqueues") if q["metadata"]["name"] == job["spec"]["jobQueue"]),
                     None)
        if queue is not None and queue["spec"].get("state") == "DISABLED":
            return f"nothing new is accepted by DISABLED queue '{queue['metadata']['name']}'; queued jobs still run"
        return f"capacity: {s.get('statusReason')}"
    if current == "STARTING":
        return f"its container to start: {s.get('statusReason')}"
    return "-"


def describe(api: Api, args: argparse.Namespace) -> int:
    job = api.job(args.name)
    s, spec = status(job), job["spec"]
    policy = _policy_of(api, job) if spec.get("shareIdentifier") else None
    lines = [f"Name:           {job['metadata']['name']}", f"Namespace:      {job['metadata']['namespace']}",
             f"Job ID:         {s.get('jobId', '-')}", f"State:          {state(job)}",
             f"Status reason:  {s.get('statusReason', '-')}", f"Queue:          {spec.get('jobQueue')}",
             f"Definition:     {spec.get('jobDefinition')}",
             f"Environment:    {s.get('computeEnvironment') or '-'}",
             f"Priority:       {_priority(job)}"]
    if spec.get("shareIdentifier"):
        lines.append(f"Share:          {share_line(job, policy)}")
    if state(job) == "RUNNABLE":
        lines.append(f"Queue position: {_queue_position(api, job, policy)}")
    lines.append(f"Waits for:      {_waits_for(api, job)}")
    lines += [f"Created:        {s.get('createdAt', '-')}", f"Started:        {s.get('startedAt', '-')}",
              f"Stopped:        {s.get('stoppedAt', '-')}"]
    if spec.get("dependsOn"):
        lines.append("Dependencies:")
        for dependency in spec["dependsOn"]:
            name = dependency.get("jobName")
            dep_state = "-"
            if name:
                try:
                    dep_state = state(api.job(name))
                except CliError:
                    dep_state = "does not exist yet"
            kind = dependency.get("type") or "job"
            what = name or (f"jobId {dependency['jobId']}" if dependency.get("jobId") else "(own children)")
            lines.append(f"  {what}  {kind}  condition {dependency.get('condition', 'Succeeded')}"
                         f"  -> {dep_state}")
    array = s.get("arrayProperties")
    if array:
        summary = array.get("statusSummary") or {}
        lines.append(f"Array:          size {array.get('size')}, "
                     + ", ".join(f"{k} {summary.get(k, 0)}" for k in STATES))
        lines.append(f"Failed indices: {array.get('failedIndices') or '-'}")
        for index, child in sorted((array.get("children") or {}).items(), key=lambda kv: int(kv[0]))[:20]:
            for n, attempt in enumerate(child.get("attempts") or [], 1):
                lines.append(f"  child {index} attempt {n}: exit {attempt.get('exitCode', '-')}, "
                             f"{attempt.get('statusReason', '')}, pod {attempt.get('podName', '-')} "
                             f"on {attempt.get('nodeName', '-')}")
    attempts = s.get("attempts") or []
    if attempts:
        lines.append("Attempts:")
        for n, attempt in enumerate(attempts, 1):
            lines.append(f"  {n}: exit {attempt.get('exitCode', '-')}  {attempt.get('statusReason', '')}"
                         f"  pod {attempt.get('podName', '-')}  node {attempt.get('nodeName', '-')}"
                         f"  {attempt.get('startedAt', '-')} -> {attempt.get('stoppedAt', '-')}")
    if s.get("jobId"):
        pods = api.call(api.core.list_namespaced_pod, job["metadata"]["namespace"],
                        label_selector=f"{JOB_ID_LABEL}={s['jobId']}").items
        if pods:
            lines.append("Pods:")
            for pod in sorted(pods, key=lambda p: p.metadata.name)[:20]:
                lines.append(f"  {pod.metadata.name}  {pod.status.phase}  node {pod.spec.node_name or '-'}")
    print("\n".join(lines))
    return OK


def logs(api: Api, args: argparse.Namespace) -> int:
    job = api.job(args.name)
    job_id = status(job).get("jobId")
    if not job_id:
        raise CliError(f"BatchJob '{args.name}' has not started yet ({state(job)})", NOT_FOUND)
    selector = f"{JOB_ID_LABEL}={job_id}"
    if args.index is not None:
        selector += f",{ARRAY_INDEX_LABEL}={args.index}"
    elif status(job).get("arrayProperties"):
        raise CliError(f"'{args.name}' is an array: choose a child with --index", BAD_INPUT)
    pods = api.call(api.core.list_namespaced_pod, api.namespace, label_selector=selector).items
    if args.attempt:
        pods = [p for p in pods if p.metadata.labels.get(ATTEMPT_LABEL) == str(args.attempt)]
    if not pods:
        raise CliError(f"no pod found for {args.name}" + (f" index {args.index}" if args.index is not None else "")
                       + (f" attempt {args.attempt}" if args.attempt else "")
                       + " (pods of finished jobs are removed after --kubernetes-job-ttl)", NOT_FOUND)
    pod = max(pods, key=lambda p: int(p.metadata.labels.get(ATTEMPT_LABEL, "1")))
    if args.follow:
        stream = api.call(api.core.read_namespaced_pod_log, pod.metadata.name, api.namespace, follow=True,
                          _preload_content=False)
        for chunk in stream.stream():
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
        return OK
    sys.stdout.write(api.call(api.core.read_namespaced_pod_log, pod.metadata.name, api.namespace))
    return OK


def stop(api: Api, args: argparse.Namespace, field: str) -> int:
    job = api.job(args.name)
    if job["spec"].get(field) is not None:
        print(f"{args.name}: {field} was already requested ({job['spec'][field].get('reason')})")
        return OK
    api.call(api.custom.patch_namespaced_custom_object, GROUP, VERSION, api.namespace, "batchjobs", args.name,
             {"spec": {field: {"reason": args.reason}}})
    current = state(job)
    if field == "cancel" and current in ("STARTING", "RUNNING"):
        print(f"{args.name}: cancel recorded; a {current} job runs on (no more retries). "
              f"Use `barge terminate {args.name}` to stop it.")
    else:
        print(f"{args.name}: {field} requested")
    return OK


def _progress_line(job: dict[str, Any], width: int = 30) -> str:
    s = status(job)
    array = s.get("arrayProperties")
    if array:
        summary = array.get("statusSummary") or {}
        done = summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0)
        total = int(array.get("size") or 1)
        filled = int(width * done / total)
        return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} children done "
                f"({summary.get('RUNNING', 0)} running, {summary.get('FAILED', 0)} failed)  {state(job)}")
    return f"{state(job)}: {s.get('statusReason') or ''}"


def wait_for(api: Api, name: str, target: str, timeout: float, progress: bool) -> int:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        job = api.job(name)
        current = state(job)
        line = _progress_line(job)
        if progress:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
        elif line != last:
            print(line, file=sys.stderr, flush=True)
        last = line
        reached = current in TERMINAL if target == "finished" else current == target
        if reached or (current in TERMINAL and target != "finished"):
            if progress:
                sys.stderr.write("\n")
            if current == "FAILED" and target in ("finished", "SUCCEEDED"):
                return FAILED
            return OK if reached else FAILED
        if time.monotonic() > deadline:
            if progress:
                sys.stderr.write("\n")
            raise CliError(f"timed out after {timeout:.0f}s waiting for {name} ({current})", API_ERROR)
        time.sleep(1)


def wait(api: Api, args: argparse.Namespace) -> int:
    target = args.state.upper() if args.state.lower() != "finished" else "finished"
    if target != "finished" and target not in STATES:
        raise CliError(f"--for: unknown state '{args.state}'; states: finished, {', '.join(STATES)}", BAD_INPUT)
    api.job(args.name)
    return wait_for(api, args.name, target, args.timeout, progress=sys.stderr.isatty() and not args.plain)


def queues(api: Api, args: argparse.Namespace) -> int:
    rows = []
    for queue in sorted(api.cluster_objects("jobqueues"), key=lambda q: -int(q["spec"].get("priority", 0))):
        counts = (queue.get("status") or {}).get("jobCounts") or {}
        envs = ",".join(o["computeEnvironment"] for o in sorted(queue["spec"].get("computeEnvironmentOrder") or [],
                                                                   key=lambda o: o["order"]))
        rows.append([queue["metadata"]["name"], str(queue["spec"].get("priority", 0)),
                     queue["spec"].get("state", "ENABLED"), envs, *[str(counts.get(s, 0)) for s in STATES]])
    print(table(rows, ["QUEUE", "PRIORITY", "STATE", "ENVIRONMENTS", *STATES]) if rows else "No job queues found.")
    return OK


def envs(api: Api, args: argparse.Namespace) -> int:
    rows = []
    for env in sorted(api.cluster_objects("computeenvironments"), key=lambda e: e["metadata"]["name"]):
        spec, s = env["spec"]["computeResources"], env.get("status") or {}
        usage = s.get("usage") or {}
        quota = f"{spec.get('maxvCpus')} vCPU" + (f", {spec['maxMemory']}" if spec.get("maxMemory") else "") + (
            f", {spec['maxGpus']} GPU" if spec.get("maxGpus") else "")
        used = f"{usage.get('vcpus', '0')} vCPU, {usage.get('memory', '0')}, {usage.get('gpus', 0)} GPU"
        counts = s.get("jobCounts") or {}
        rows.append([env["metadata"]["name"], env["spec"].get("state", "ENABLED"), s.get("status", "-"), quota, used,
                     str(counts.get("RUNNING", 0)), ",".join(s.get("queues") or []) or "-"])
    header = ["ENVIRONMENT", "STATE", "STATUS", "QUOTA", "IN USE", "RUNNING", "QUEUES"]
    print(table(rows, header) if rows else "No compute environments found.")
    return OK


COMMANDS = {"submit": submit, "list": list_jobs, "describe": describe, "logs": logs,
            "cancel": lambda api, a: stop(api, a, "cancel"), "terminate": lambda api, a: stop(api, a, "terminate"),
            "wait": wait, "queues": queues, "envs": envs}


def add_parsers(sub: Any) -> None:
    def command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text,
                                                         epilog=f"example: {example}")
        parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig's)")
        return parser

    p = command("submit", "submit a BatchJob from a job definition, AWS submit-job style",
                "barge submit --job-definition render --job-queue high --parameters frame=7 --array-size 10 --wait")
    p.add_argument("--job-definition", required=True)
    p.add_argument("--job-queue", required=True)
    p.add_argument("--name", help="exact name of the BatchJob")
    p.add_argument("--job-name", help="a name prefix, AWS style (a suffix makes it unique)")
    p.add_argument("--parameters", nargs="*", default=[], metavar="NAME=VALUE")
    p.add_argument("--command", nargs="+", dest="override_command", help="override the main container's command")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE")
    p.add_argument("--vcpus", type=float)
    p.add_argument("--memory", type=int, help="MiB")
    p.add_argument("--gpus", type=int)
    p.add_argument("--array-size", type=int)
    p.add_argument("--depends-on", nargs="*", default=[], metavar="JOB[:TYPE][:CONDITION]",
                   help="e.g. prep, prep:Failed, other-array:N_TO_N, SEQUENTIAL")
    p.add_argument("--attempts", type=int)
    p.add_argument("--timeout", type=int, help="attemptDurationSeconds (>= 60)")
    p.add_argument("--wait", action="store_true", help="follow the job to its end; exit 1 if it FAILED")
    p.add_argument("--wait-timeout", type=float, default=86400)

    p = command("list", "list BatchJobs, newest first", "barge list --queue high --state RUNNABLE,RUNNING")
    p.add_argument("--queue")
    p.add_argument("--state", help="comma-separated states")
    p.add_argument("-l", "--selector", help="label selector")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")

    p = command("describe", "why a job is where it is: state, reason, queue position, dependencies, attempts",
                "barge describe render-7")
    p.add_argument("name")

    p = command("logs", "a job's container logs", "barge logs big-array --index 7 --attempt 2 -f")
    p.add_argument("name")
    p.add_argument("--attempt", type=int, help="default: the latest")
    p.add_argument("--index", type=int, help="the array child")
    p.add_argument("-f", "--follow", action="store_true")

    for verb, what in (("cancel", "cancel a SUBMITTED, PENDING or RUNNABLE job (AWS CancelJob)"),
                       ("terminate", "terminate a job in any state, stopping its pods (AWS TerminateJob)")):
        p = command(verb, what, f"barge {verb} render-7 --reason 'wrong input'")
        p.add_argument("name")
        p.add_argument("--reason", required=True)

    p = command("wait", "wait for a job to reach a state, with a progress bar on a terminal",
                "barge wait big-array --for finished --timeout 3600")
    p.add_argument("name")
    p.add_argument("--for", dest="state", default="finished", help="finished (default) or a state")
    p.add_argument("--timeout", type=float, default=86400)
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")

    command("queues", "job queues with their jobs per state", "barge queues")
    command("envs", "compute environments with quota, use and the queues that share them", "barge envs")


def run(args: argparse.Namespace) -> int:
    try:
        api = Api(getattr(args, "namespace", None))
        return int(COMMANDS[args.command](api, args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
