"""Status conditions: one pure setter, as Kubernetes' meta.SetStatusCondition and Kueue's workload
setters do. lastTransitionTime moves only when the condition's status does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict


class Condition(TypedDict):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


def set_condition(conditions: Sequence[dict[str, Any]], type_: str, status: bool, reason: str, message: str,
                  generation: int, now: str) -> tuple[list[dict[str, Any]], bool]:
    """`conditions` with `type_` set; and whether anything but the time changed. The input is not modified."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.get("type") == type_), None)
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == value else None
    new: Condition = {"type": type_, "status": value, "reason": reason, "message": message[:1024],
                      "lastTransitionTime": since or now, "observedGeneration": generation}
    changed = old is None or (old.get("status"), old.get("reason"), old.get("message"),
                              old.get("observedGeneration")) != (value, reason, new["message"], generation)
    merged = [dict(new) if c.get("type") == type_ else c for c in conditions]
    if old is None:
        merged.append(dict(new))
    return merged, changed
