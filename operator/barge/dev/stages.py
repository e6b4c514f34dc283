"""kwok's configuration: its options and the stages that make simulated pods run, succeed or fail.

The stages are kwok's own files from its module (same names, same annotations, so anyone who
knows kwok knows them), with three changes:
- no default jitter: kwok treats a jitter as an upper bound of the whole delay, so a default
  jitter below an annotated delay would silently shorten it;
- pod-complete skips pods labelled to fail, so kwok never picks between the two at random;
- a failing stage keyed on the completion index of an Indexed Job, so one annotation on a
  template can list the children that fail and with which exit code;
- a stage that leaves the main container waiting with a reason (ErrImagePull,
  CreateContainerConfigError, ...) instead of running it, for tests of containers that cannot start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FAIL_LABEL = "pod-container-running-failed.stage.kwok.x-k8s.io"
INDEX_FAIL_ANNOTATION = "pod-fail-by-index.stage.barge.dev/exit-codes"
ATTEMPT_FAIL_ANNOTATION = "pod-fail-by-attempt.stage.barge.dev/exit-codes"
WAITING_REASON_ANNOTATION = "pod-waiting.stage.barge.dev/reason"
WAITING_MESSAGE_ANNOTATION = "pod-waiting.stage.barge.dev/message"
WAITING_INDICES_ANNOTATION = "pod-waiting.stage.barge.dev/indices"

NODE_STAGES = ("node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml")
POD_STAGES = (
    "pod/general/pod-create.yaml",
    "pod/general/pod-init-container-running.yaml",
    "pod/general/pod-init-container-completed.yaml",
    "pod/general/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "pod/general/pod-delete.yaml",
    "pod/chaos/pod-container-running-failed.yaml",
)


def kwok_options(lease_seconds: int) -> dict[str, Any]:
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "enableCRDs": [],
            "nodeLeaseDurationSeconds": lease_seconds,
            # With a config file kwok refuses zero values here.
            "nodeLeaseParallelism": 16,
            "podPlayStageParallelism": 16,
            "nodePlayStageParallelism": 4,
            "podsOnNodeSyncParallelism": 4,
        },
    }


def _drop_default_jitter(stage: dict[str, Any]) -> None:
    stage["spec"].get("delay", {}).pop("jitterDurationMilliseconds", None)


def _exclude_failing_pods(stage: dict[str, Any]) -> None:
    stage["spec"]["selector"]["matchExpressions"].append(
        {"key": f'.metadata.labels["{FAIL_LABEL}"]', "operator": "NotIn", "values": ["true"]}
    )
    for annotation in (INDEX_FAIL_ANNOTATION, ATTEMPT_FAIL_ANNOTATION):
        stage["spec"]["selector"]["matchExpressions"].append(
            {"key": f'.metadata.annotations["{annotation}"]', "operator": "DoesNotExist"})


def _fail_by_key(failed_stage: dict[str, Any], complete_stage: dict[str, Any], name: str, annotation: str,
                 key_path: str, key_expression: str) -> dict[str, Any]:
    """Pods carrying `annotation: "7=3,500=3"` fail with that exit code when their key (completion
    index, attempt) is listed, and succeed otherwise.

    The annotation is a comma-separated list of key=exitCode; kwok's selectors match whole
    values, so the template does the lookup and the stage applies to every annotated pod.
    """
    # Inside `range`, `.` is the element: bind the key before it.
    codes = f'(index $annotations "{annotation}")'
    lookup = (
        "{{ $key := " + key_expression + ' }}{{ $code := "0" }}{{ range $pair := splitList "," ' + codes + " }}"
        '{{ $kv := splitList "=" (trim $pair) }}{{ if eq (index $kv 0) $key }}'
        "{{ $code = index $kv 1 }}{{ end }}{{ end }}"
    )
    selector = [
        {"key": f'.metadata.annotations["{annotation}"]', "operator": "Exists"},
        {"key": key_path, "operator": "Exists"},
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
    ]
    template = failed_stage["spec"]["next"]["statusTemplate"]
    template = template.replace(
        "{{ $failureExitCode := or ( index $annotations "
        '"pod-container-running-failed.stage.kwok.x-k8s.io/exit-code" ) $defaultExitCode }}',
        lookup + "{{ $failureExitCode := $code }}",
    )
    # exit code 0 means the child succeeds: reuse pod-complete's terminal status for it.
    template = template.replace("phase: Failed", 'phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}')
    template = template.replace(
        "reason: {{ $failureReason }}", 'reason: {{ if eq $code "0" }}Completed{{ else }}{{ $failureReason }}{{ end }}'
    )
    return {
        "apiVersion": failed_stage["apiVersion"],
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": failed_stage["spec"]["resourceRef"],
            "selector": {"matchExpressions": selector},
            "delay": dict(complete_stage["spec"]["delay"]),
            "weight": 10000,
            "next": {"statusTemplate": template},
        },
    }


# The template of the pod-waiting stage: `$waits` says whether this pod waits (no indices listed, or
# its completion index is listed); then the main container waits, else pod-ready's template follows.
WAITING_TEMPLATE = """{{ $annotations := or .metadata.annotations dict }}
{{ $reason := index $annotations "@REASON@" }}
{{ $message := or ( index $annotations "@MESSAGE@" ) ( printf "%s (simulated by kwok)" $reason ) }}
{{ $indices := or ( index $annotations "@INDICES@" ) "" }}
{{ $key := or ( index $annotations "batch.kubernetes.io/job-completion-index" ) "" }}
{{ $waits := true }}
{{ if $indices }}{{ $waits = false }}{{ end }}
{{ range $listed := splitList "," $indices }}{{ if eq ( trim $listed ) $key }}{{ $waits = true }}{{ end }}{{ end }}
{{ if $waits }}
{{ $now := Now }}
containerStatuses:
{{ range $index, $item := .spec.containers }}
- image: {{ $item.image | Quote }}
  name: {{ $item.name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
{{ if eq $index 0 }}
      reason: {{ $reason | Quote }}
      message: {{ $message | Quote }}
{{ else }}
      reason: ContainerCreating
{{ end }}
{{ end }}
startTime: {{ $now | Quote }}
{{ else }}
@READY@
{{ end }}
"""


def _waiting(ready_stage: dict[str, Any]) -> dict[str, Any]:
    """Pods annotated `pod-waiting.stage.barge.dev/reason: ErrImagePull` (and optionally `/message`)
    keep their main container waiting with that reason, as a kubelet reports a container that cannot
    start; with `/indices: "1,3"` only those completion indices wait and the others run as usual.

    It replaces pod-ready for annotated pods (pod-ready skips them). startTime is set as a kubelet
    sets it when it accepts a pod, and marks the pod as done with.
    """
    template = (WAITING_TEMPLATE.replace("@REASON@", WAITING_REASON_ANNOTATION)
                .replace("@MESSAGE@", WAITING_MESSAGE_ANNOTATION).replace("@INDICES@", WAITING_INDICES_ANNOTATION)
                .replace("@READY@", ready_stage["spec"]["next"]["statusTemplate"]))
    selector = [
        {"key": f'.metadata.annotations["{WAITING_REASON_ANNOTATION}"]', "operator": "Exists"},
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
        {"key": '.status.conditions.[] | select( .type == "Initialized" ) | .status', "operator": "In",
         "values": ["True"]},
        {"key": ".status.startTime", "operator": "DoesNotExist"},
    ]
    return {
        "apiVersion": ready_stage["apiVersion"],
        "kind": "Stage",
        "metadata": {"name": "pod-waiting"},
        "spec": {
            "resourceRef": ready_stage["spec"]["resourceRef"],
            "selector": {"matchExpressions": selector},
            "delay": dict(ready_stage["spec"]["delay"]),
            "next": {"statusTemplate": template},
        },
    }


def _exclude_waiting_pods(ready_stage: dict[str, Any]) -> None:
    ready_stage["spec"]["selector"]["matchExpressions"].append(
        {"key": f'.metadata.annotations["{WAITING_REASON_ANNOTATION}"]', "operator": "DoesNotExist"})


def _terminate_on_delete(api_version: str) -> dict[str, Any]:
    """What a kubelet does when a running pod is deleted: stop it and report a terminal phase.

    kwok deletes only pods without finalizers, and the Job controller removes its tracking
    finalizer only from terminal pods: without this stage a deleted running pod of a Job (a
    namespace being deleted, say) would wait forever.
    """
    template = (
        "{{ $now := Now }}\n"
        "containerStatuses:\n"
        "{{ range $index, $item := .spec.containers }}\n"
        "- image: {{ $item.image | Quote }}\n"
        "  name: {{ $item.name | Quote }}\n"
        "  ready: false\n"
        "  restartCount: 0\n"
        "  started: false\n"
        "  state:\n"
        "    terminated:\n"
        "      exitCode: 137\n"
        "      reason: Error\n"
        "      message: stopped because the pod was deleted\n"
        "      startedAt: {{ $now | Quote }}\n"
        "      finishedAt: {{ $now | Quote }}\n"
        "{{ end }}\n"
        "phase: Failed\n"
    )
    return {
        "apiVersion": api_version,
        "kind": "Stage",
        "metadata": {"name": "pod-terminate-on-delete"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "Exists"},
                {"key": ".metadata.finalizers", "operator": "Exists"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending", "Running"]},
            ]},
            "delay": {"durationMilliseconds": 200},
            "next": {"statusTemplate": template},
        },
    }


def build_config(stage_root: Path, lease_seconds: int = 10) -> str:
    """stage_root: kwok's `kustomize/stage` folder, copied next to the kwok binary at build."""
    stages: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for rel in NODE_STAGES + POD_STAGES:
        for doc in yaml.safe_load_all((stage_root / rel).read_text()):
            if doc:
                _drop_default_jitter(doc)
                stages.append(doc)
                by_name[doc["metadata"]["name"]] = doc
    _exclude_failing_pods(by_name["pod-complete"])
    stages.append(_waiting(by_name["pod-ready"]))
    _exclude_waiting_pods(by_name["pod-ready"])
    failed, complete = by_name["pod-container-running-failed"], by_name["pod-complete"]
    stages.append(_fail_by_key(
        failed, complete, "pod-fail-by-index", INDEX_FAIL_ANNOTATION,
        '.metadata.annotations["batch.kubernetes.io/job-completion-index"]',
        '(index $annotations "batch.kubernetes.io/job-completion-index")'))
    stages.append(_fail_by_key(
        failed, complete, "pod-fail-by-attempt", ATTEMPT_FAIL_ANNOTATION,
        '.metadata.labels["barge.dev/attempt"]', '(index .metadata.labels "barge.dev/attempt")'))
    stages.append(_terminate_on_delete(failed["apiVersion"]))
    return yaml.safe_dump_all([kwok_options(lease_seconds), *stages], sort_keys=False)
