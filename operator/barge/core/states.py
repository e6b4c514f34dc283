"""Barge's vocabulary, written once: the API group, job states, label and annotation keys, and the
reason strings that users and retry rules match on."""

from __future__ import annotations

GROUP = "barge.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# --- job states, in the order a job goes through them --------------------------------------------
SUBMITTED = "SUBMITTED"
PENDING = "PENDING"
RUNNABLE = "RUNNABLE"
STARTING = "STARTING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
JOB_STATES = (SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED)
TERMINAL = frozenset({SUCCEEDED, FAILED})
ACTIVE = frozenset({STARTING, RUNNING})  # an attempt exists and holds quota
UNADMITTED: frozenset[str | None] = frozenset({None, SUBMITTED})  # None: no status written yet
PLACEABLE: frozenset[str | None] = UNADMITTED | {RUNNABLE}  # a placement may be assumed but not written
# The Finished condition's reason and the Event reason of each state (CamelCase, as Kubernetes has them).
STATE_REASONS = {state: state.capitalize() for state in JOB_STATES}

# --- compute environments and queues ------------------------------------------------------------
ENABLED = "ENABLED"
DISABLED = "DISABLED"
VALID = "VALID"
INVALID = "INVALID"

# --- labels and annotations on the pods and Jobs Barge creates ------------------------------------
JOB_ID_LABEL = f"{GROUP}/job-id"
BATCHJOB_LABEL = f"{GROUP}/batchjob"
ATTEMPT_LABEL = f"{GROUP}/attempt"
QUEUE_LABEL = f"{GROUP}/queue"
ENVIRONMENT_LABEL = f"{GROUP}/compute-environment"
ENVIRONMENT_ANNOTATION = ENVIRONMENT_LABEL  # the placement in full, even when too long for a label
TAGS_ANNOTATION = f"{GROUP}/tags"  # propagateTags: every tag of the job, as JSON, on its pods
ARRAY_INDEX_LABEL = f"{GROUP}/array-index"
NODE_INDEX_LABEL = f"{GROUP}/node-index"  # a multi-node job's pod: its node
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
MANAGED_BY = f"{GROUP}/operator"
FINALIZER = f"{GROUP}/finalizer"

# --- reasons -------------------------------------------------------------------------------------
ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
DEPENDENT_FAILED = "Dependent Job failed"
CANCELLED_BY_USER = "Cancelled by user"
TERMINATED_BY_USER = "Terminated by user"
POD_DELETED = "PodDeleted"
# Why a RUNNABLE job waits (AWS's statusReason categories); the first three may carry a time limit.
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
JOB_RESOURCE_REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
ENVIRONMENT_UNAVAILABLE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_UNAVAILABLE"
QUEUE_NOT_FOUND = "MISCONFIGURATION:JOB_QUEUE_NOT_FOUND"
TIME_LIMITED_REASONS = (CAPACITY, MAX_RESOURCE, JOB_RESOURCE_REQUIREMENT)
# Beyond AWS: held back by a concurrency cap, or by a fair-share queue's missing scheduling policy.
QUEUE_MAX_RUNNING = "LIMIT:JOB_QUEUE_MAX_RUNNING_JOBS"
ARRAY_MAX_PARALLEL = "LIMIT:ARRAY_MAX_PARALLEL"
POLICY_NOT_FOUND = "MISCONFIGURATION:SCHEDULING_POLICY_NOT_FOUND"
