"""Generate docs/api-reference.md from the same schemas as the CRDs: `python -m barge.api.docgen`.

Every field of every kind's spec and status, with its type, default, limits and meaning. A meaning
comes from the model's `description`, else from MEANINGS below (keyed by the field's path, or by the
end of it for shapes that repeat, such as `conditions[].reason`). tests/unit/test_api_reference.py
fails when the file is stale or a field has no meaning.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from barge.api import crdgen

OUT = Path(__file__).resolve().parents[3] / "docs" / "api-reference.md"

KIND_MEANINGS = {
    "ComputeEnvironment": "A node pool (nodeSelector, tolerations, affinity) with a capacity quota. AWS: compute "
                          "environment.",
    "JobQueue": "An ordered list of compute environments, a priority and a state. AWS: job queue.",
    "JobDefinition": "A pod template plus retry, timeout and parameter defaults. AWS: job definition (a BatchJob "
                     "resolves it once, at submission, instead of AWS's revisions).",
    "BatchJob": "One submitted job, or one array of jobs. AWS: SubmitJob, and what DescribeJobs reports.",
    "SchedulingPolicy": "A fair-share policy that job queues name in spec.schedulingPolicy. AWS: scheduling policy.",
}

MEANINGS: dict[str, str] = {
    # Multi-node parallel jobs
    "JobDefinition.spec.nodeProperties.nodeRangeProperties[].template": "The pod template of the nodes in "
                                                                        "targetNodes (a PodTemplateSpec).",
    "BatchJob.spec.nodeOverrides": "Changes to a multi-node definition for this job (AWS's nodeOverrides).",
    "BatchJob.status.nodeProperties": "A multi-node job's gang, as its current (or last) attempt runs it.",
    "BatchJob.status.nodeProperties.numNodes": "How many nodes the gang has.",
    "BatchJob.status.nodeProperties.mainNode": "The index of the main node, whose exit decides the job.",
    "BatchJob.status.nodeProperties.nodes[].nodeIndex": "The node's index, as AWS_BATCH_JOB_NODE_INDEX.",
    "BatchJob.status.nodeProperties.nodes[].podName": "The node's pod.",
    "BatchJob.status.nodeProperties.nodes[].nodeName": "The Kubernetes node it ran on.",
    "BatchJob.status.nodeProperties.nodes[].podIP": "The pod's IP (the main node's is given to the others).",
    "BatchJob.status.nodeProperties.nodes[].exitCode": "The main container's exit code, once it ended.",
    "BatchJob.status.nodeProperties.nodes[].reason": "Why the node's pod ended (Kubernetes' reason).",
    # SchedulingPolicy
    "SchedulingPolicy.spec": "The policy's desired state.",
    "SchedulingPolicy.spec.fairsharePolicy": "How a fair-share queue orders the shares of its waiting jobs "
                                             "(AWS's fairsharePolicy).",
    "SchedulingPolicy.spec.fairsharePolicy.shareDistribution": "The weight of each share identifier (a trailing * "
                                                               "is a prefix); an identifier none names weighs 1.",
    "SchedulingPolicy.status": "What the operator observed: the shares' usage, kept across restarts.",
    "SchedulingPolicy.status.shares": "One entry per share seen on the policy's queues.",
    "SchedulingPolicy.status.shares[].shareIdentifier": "The share, as jobs name it in spec.shareIdentifier.",
    "SchedulingPolicy.status.shares[].runningvCpus": "vCPUs its jobs hold now (STARTING or RUNNING).",
    "SchedulingPolicy.status.shares[].runnableJobs": "Its jobs waiting in RUNNABLE.",
    "SchedulingPolicy.status.activeShares": "How many shares have jobs waiting or running.",
    # ComputeEnvironment
    "ComputeEnvironment.spec": "The environment's desired state.",
    "ComputeEnvironment.spec.type": "UNMANAGED (the nodes that already match the selector) or MANAGED. Immutable.",
    "ComputeEnvironment.spec.state": "ENABLED, or DISABLED: no new placements; running jobs finish.",
    "spec.computeResources": "The pool and its quota.",
    "computeResources.minvCpus": "vCPUs a MANAGED environment keeps even when idle (preemptible placeholder "
                                  "pods on its nodes).",
    "computeResources.desiredvCpus": "AWS's initial size of a MANAGED environment; Karpenter sizes it from its "
                                     "jobs instead, so set, it makes the environment INVALID (status.desiredvCpus "
                                     "reports the size needed).",
    "computeResources.nodeSelector": "Node labels that select the pool's nodes; added to every pod placed here.",
    "computeResources.tolerations": "Tolerations added to every pod placed here (for tainted pools).",
    "tolerations[].key": "The taint key tolerated; empty with operator Exists tolerates every taint.",
    "tolerations[].operator": "Equal (the default: key and value match) or Exists (any value).",
    "tolerations[].value": "The taint value, for operator Equal.",
    "tolerations[].effect": "The taint effect tolerated; empty: every effect.",
    "tolerations[].tolerationSeconds": "How long a NoExecute taint is tolerated before the pod is evicted.",
    "ComputeEnvironment.status": "What the operator observed.",
    "ComputeEnvironment.status.state": "The spec's state, as last acted on.",
    "ComputeEnvironment.status.status": "VALID, or INVALID when the spec cannot be used (the reason says why).",
    "ComputeEnvironment.status.statusReason": "Why the environment is VALID or INVALID, naming the field at fault.",
    "status.usage": "Requests of the pods admitted here now.",
    "usage.vcpus": "vCPUs in use (a quantity, e.g. \"1500m\").",
    "usage.memory": "Memory in use (a quantity).",
    "usage.gpus": "GPUs in use.",
    "ComputeEnvironment.status.desiredvCpus": "The vCPUs this environment needs now, capped at maxvCpus.",
    "ComputeEnvironment.status.jobCounts": "Jobs placed here, per state.",
    "ComputeEnvironment.status.queues": "The job queues that use this environment.",
    "status.observedGeneration": "The metadata.generation the status was written for.",
    "status.conditions": "Kubernetes conditions (metav1.Condition).",
    "conditions[].type": "The condition's type (CamelCase), e.g. Ready or Finished.",
    "conditions[].status": "True, False or Unknown.",
    "conditions[].reason": "Why, in one CamelCase word.",
    "conditions[].message": "Why, in words.",
    "conditions[].lastTransitionTime": "When the status last changed (RFC 3339).",
    "conditions[].observedGeneration": "The metadata.generation the condition was set for.",
    # JobQueue
    "JobQueue.spec": "The queue's desired state.",
    "JobQueue.spec.priority": "Higher is served first among queues that share a compute environment.",
    "JobQueue.spec.state": "ENABLED, or DISABLED: new jobs are refused; queued ones still run.",
    "spec.computeEnvironmentOrder": "The compute environments jobs may run in, tried in ascending order.",
    "computeEnvironmentOrder[].order": "Position in the order (unique; lower is tried first).",
    "computeEnvironmentOrder[].computeEnvironment": "The ComputeEnvironment's name.",
    "spec.jobStateTimeLimitActions": "What to do with jobs stuck RUNNABLE for a reason too long (AWS's).",
    "jobStateTimeLimitActions[].reason": "The statusReason category it applies to.",
    "jobStateTimeLimitActions[].state": "The state it watches: RUNNABLE.",
    "jobStateTimeLimitActions[].maxTimeSeconds": "How long a job may wait for that reason (600..86400).",
    "jobStateTimeLimitActions[].action": "CANCEL: the job ends FAILED, its reason saying why.",
    "namespaceSelector.matchLabels": "Namespace labels that must all match.",
    "namespaceSelector.matchExpressions": "Label requirements that must all hold.",
    "matchExpressions[].key": "The namespace label key.",
    "matchExpressions[].operator": "In, NotIn, Exists or DoesNotExist.",
    "matchExpressions[].values": "The values for In and NotIn.",
    "JobQueue.status": "What the operator observed.",
    "JobQueue.status.state": "The spec's state, as last acted on.",
    "JobQueue.status.status": "VALID, or INVALID when the queue cannot be used (the reason says why).",
    "JobQueue.status.statusReason": "Why the queue is VALID or INVALID.",
    "JobQueue.status.jobCounts": "Jobs of this queue per state (the RUNNABLE and RUNNING printer columns).",
    # JobDefinition
    "JobDefinition.spec": "The definition.",
    "JobDefinition.spec.template": "A PodTemplateSpec, as a Kubernetes Job's; the first container is the main one.",
    "template.metadata": "Labels and annotations for the job's pods.",
    "template.spec": "A PodSpec; fields not listed here pass through to the pod unchanged.",
    "template.spec.containers": "The pod's containers; overrides apply to the first.",
    "template.spec.initContainers": "Init containers, as in a PodSpec.",
    "containers[].name": "The container's name.",
    "initContainers[].name": "The container's name.",
    "containers[].command": "Entrypoint; `Ref::name` placeholders are replaced by parameters.",
    "initContainers[].command": "Entrypoint, as in a PodSpec.",
    "containers[].args": "Arguments; `Ref::name` placeholders are replaced by parameters.",
    "initContainers[].args": "Arguments, as in a PodSpec.",
    "containers[].env": "Environment variables; names starting with AWS_BATCH are refused (Barge sets those).",
    "initContainers[].env": "Environment variables; names starting with AWS_BATCH are refused.",
    "env[].value": "The variable's value.",
    "resources.requests": "Requested resources (cpu, memory, nvidia.com/gpu, ...): what quotas count.",
    "resources.limits": "Resource limits; a resource with only a limit is requested at the limit.",
    "JobDefinition.spec.parameters": "Defaults for `Ref::name` placeholders in command and args.",
    "spec.retryStrategy": "How many attempts, and which failures to retry.",
    "retryStrategy.attempts": "Attempts in all, 1..10 (1: no retry).",
    "retryStrategy.evaluateOnExit": "Up to 5 rules; the first that matches decides; none matching: RETRY while "
                                    "attempts remain.",
    "evaluateOnExit[].onStatusReason": "Matches the attempt's statusReason; a trailing `*` matches a prefix.",
    "evaluateOnExit[].onReason": "Matches the container's reason (Error, OOMKilled, ...); a trailing `*` matches a "
                                 "prefix.",
    "evaluateOnExit[].onExitCode": "Matches the exit code; a trailing `*` matches a prefix.",
    "evaluateOnExit[].action": "RETRY or EXIT.",
    "spec.timeout": "A limit on each attempt's duration.",
    "timeout.attemptDurationSeconds": "Seconds an attempt may run (>= 60) from its start; then it is stopped and the "
                                      "job FAILED, never retried.",
    "JobDefinition.spec.schedulingPriority": "Orders jobs inside a queue (higher first); 0..9999.",
    "JobDefinition.spec.propagateTags": "Copy tags onto the job's pods as labels.",
    "spec.tags": "Key-value tags (AWS's limits: key 1..128, value up to 256 characters).",
    "JobDefinition.status": "Unused; kept for tools that write one.",
    # BatchJob
    "BatchJob.spec": "What was submitted; immutable once submitted, but for cancel, terminate and "
                     "schedulingPriorityOverride.",
    "BatchJob.spec.jobDefinition": "The JobDefinition's name, in the job's namespace.",
    "BatchJob.spec.jobQueue": "The JobQueue's name.",
    "BatchJob.spec.parameters": "Values for `Ref::name` placeholders; override the definition's defaults.",
    "spec.overrides": "Changes to the main container.",
    "overrides.command": "Replaces the main container's command.",
    "overrides.args": "Replaces the main container's args.",
    "overrides.env": "Added to (or replacing by name) the main container's environment; no AWS_BATCH names.",
    "overrides.resources": "Replaces the main container's requests and limits, resource by resource.",
    "spec.arrayProperties": "Makes the job an array: one BatchJob, `size` children.",
    "arrayProperties.size": "How many children (2..100000); each gets AWS_BATCH_JOB_ARRAY_INDEX.",
    "spec.dependsOn": "Jobs this one waits for (up to 20); a job that does not exist yet is waited for.",
    "dependsOn[].jobName": "The BatchJob waited for, in the same namespace (not for SEQUENTIAL).",
    "dependsOn[].jobId": "The job waited for, by its jobId (status.jobId), in the same namespace: AWS depends "
                         "by id. Give jobName or jobId.",
    "dependsOn[].type": "For arrays: N_TO_N (child i waits for child i of jobName) or SEQUENTIAL (child i waits "
                        "for child i-1; no jobName).",
    "dependsOn[].condition": "Succeeded (the default, AWS's), Failed or Finished: the dependency's end that "
                             "releases this job.",
    "spec.schedulingPriorityOverride": "Replaces the definition's schedulingPriority; may change while the job waits.",
    "spec.shareIdentifier": "The fair-share identifier, for a queue with a scheduling policy.",
    "spec.cancel": "Request to cancel (AWS CancelJob): ends SUBMITTED, PENDING and RUNNABLE jobs. Final.",
    "cancel.reason": "Why; recorded in the statusReason.",
    "spec.terminate": "Request to terminate (AWS TerminateJob): also stops STARTING and RUNNING jobs. Final.",
    "terminate.reason": "Why; recorded in the statusReason.",
    "BatchJob.status": "What happened, kept after the pods are gone.",
    "BatchJob.status.jobId": "The job's id: its metadata.uid (AWS_BATCH_JOB_ID in the pods).",
    "BatchJob.status.state": "SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED (AWS's seven).",
    "BatchJob.status.statusReason": "Why the job is where it is, in words a user can act on.",
    "BatchJob.status.createdAt": "When the operator first saw the job (RFC 3339).",
    "BatchJob.status.startedAt": "When the first attempt started running.",
    "BatchJob.status.stoppedAt": "When the job finished.",
    "BatchJob.status.attempts": "Each attempt of a one-pod job (array children keep theirs under the child).",
    "attempts[].startedAt": "When the attempt's container started.",
    "attempts[].stoppedAt": "When it stopped.",
    "attempts[].exitCode": "The main container's exit code.",
    "attempts[].statusReason": "Why the attempt ended (AWS's words, e.g. Essential container in task exited).",
    "attempts[].podName": "The attempt's pod.",
    "attempts[].nodeName": "The node it ran on.",
    "BatchJob.status.attemptCount": "Attempts so far.",
    "BatchJob.status.computeEnvironment": "Where the current or last attempt was placed.",
    "BatchJob.status.jobQueue": "The queue the job was admitted to.",
    "BatchJob.status.kubernetesJob": "The Kubernetes Job created for the current or last attempt.",
    "BatchJob.status.isCancelled": "True once a cancel ended the job (as DescribeJobs says).",
    "BatchJob.status.isTerminated": "True once a terminate ended the job.",
    "BatchJob.status.arrayProgress": "done/size, for the printer column.",
    "BatchJob.status.arrayProperties": "An array's children, summarised (small whatever the size).",
    "status.arrayProperties.size": "How many children.",
    "arrayProperties.statusSummary": "Children per state; all seven keys, zeros included.",
    "arrayProperties.failedIndices": "Indices of failed children as ranges, e.g. 7,500-502.",
    "resolved.template": "The pod template, parameters and overrides applied.",
    "resolved.retryStrategy": "The retry strategy in force.",
    "resolved.timeoutSeconds": "The attempt timeout in force.",
    "resolved.labels": "Labels put on the job's pods.",
    "resolved.request": "What one pod requests, as the quota counts it.",
    "request.cpuMilli": "CPU in millicores.",
    "request.memory": "Memory in bytes.",
    "request.gpus": "GPUs.",
    "BatchJob.status.waiting": "What the job waits for, and since when (for jobStateTimeLimitActions).",
}


def meaning(kind: str, path: str, node: dict[str, Any]) -> str:
    if node.get("description"):
        return str(node["description"])
    if f"{kind}.{path}" in MEANINGS:
        return MEANINGS[f"{kind}.{path}"]
    parts = path.split(".")
    for start in range(len(parts)):
        suffix = ".".join(parts[start:])
        if suffix in MEANINGS:
            return MEANINGS[suffix]
    return ""


def type_of(node: dict[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "quantity (integer or string)"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type")
    if kind == "array":
        return f"list of {type_of(node.get('items') or {})}"
    if kind == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
        return f"map of string to {type_of(node['additionalProperties'])}"
    free_form = not kind and node.get("x-kubernetes-preserve-unknown-fields")
    if (kind == "object" and "properties" not in node) or free_form:
        return "object (free-form)" if kind else "any (a quantity: 2, 0.5, \"500m\")" if "pattern" in node else "any"
    return str(kind or "any")


def limits(node: dict[str, Any]) -> str:
    found = []
    strict = {"minimum": node.get("exclusiveMinimum") is True, "maximum": node.get("exclusiveMaximum") is True}
    for key, words in (("minimum", "> {}" if strict["minimum"] else ">= {}"),
                       ("maximum", "< {}" if strict["maximum"] else "<= {}"), ("minLength", "length >= {}"),
                       ("maxLength", "length <= {}"), ("minItems", ">= {} items"), ("maxItems", "<= {} items"),
                       ("maxProperties", "<= {} entries")):
        if key in node:
            found.append(words.format(node[key]))
    items = node.get("items") or {}
    if node.get("type") == "array" and "maxLength" in items:
        found.append(f"each length <= {items['maxLength']}")
    if "pattern" in node and len(node["pattern"]) <= 40:
        found.append(f"pattern `{node['pattern']}`")
    found += [rule.get("message", "") for rule in node.get("x-kubernetes-validations") or []]
    return "; ".join(f for f in found if f)


def fields(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any], bool]]:
    """(path, schema node, required) of every field below `node`, depth first."""
    found = []
    if node.get("type") == "array" and node.get("items", {}).get("properties"):
        return fields(node["items"], f"{path}[]")
    required = set(node.get("required") or [])
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        found.append((child_path, child, name in required))
        found += fields(child, child_path)
    return found


def kind_fields(kind: str) -> list[tuple[str, dict[str, Any], bool]]:
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [f for f in fields(schema) if f[0].split(".")[0] in ("spec", "status")]


def missing_meanings() -> list[str]:
    return [f"{kind}.{path}" for kind in crdgen.KINDS for path, node, _ in kind_fields(kind)
            if not meaning(kind, path, node)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = ["# API reference (barge.dev/v1alpha1)", "",
             "Generated by `python -m barge.api.docgen` from `operator/barge/api/models.py`, the same source as "
             "the CRDs in `crds/`. Do not edit by hand.", "",
             "Every kind also has `metadata` (a Kubernetes ObjectMeta). A field's limits are enforced at "
             "`kubectl apply`; the message names the field.", ""]
    for kind in crdgen.KINDS:
        lines.append(f"- [{kind}](#{kind.lower()})")
    for kind, info in crdgen.KINDS.items():
        short = ", ".join(info.get("short") or [])
        lines += ["", f"## {kind}", "", f"{KIND_MEANINGS.get(kind, '')} Scope: {info['scope']}; plural "
                  f"`{info['plural']}`" + (f"; short name `{short}`" if short else "") + ".", "",
                  "| field | type | default | limits | meaning |", "|---|---|---|---|---|"]
        for path, node, required in kind_fields(kind):
            default = "required" if required else (f"`{node['default']}`" if "default" in node else "-")
            lines.append(f"| `{path}` | {_cell(type_of(node))} | {_cell(default)} | {_cell(limits(node))} | "
                         f"{_cell(meaning(kind, path, node))} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}")
    sys.exit(0)
