"""What every AWS shape shares: refusing what cannot map (naming the field), times, tags. Pure."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Mapping
from typing import Any

from barge.awsapi.errors import client_error
from barge.awsapi.names import TAGS_ANNOTATION


def refuse(field: str, why: str = "has no equivalent on Kubernetes in Barge") -> Exception:
    return client_error(f"{field} {why}")


def only(request: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """Every field given (and not null) must be one Barge maps."""
    for key in request:
        if key not in allowed and request[key] not in (None, [], {}):
            raise refuse(f"{where}{key}")


def epoch_ms(rfc3339: str | None) -> int | None:
    if not rfc3339:
        return None
    text = rfc3339.rstrip("Z").split("+")[0]
    whole, _, fraction = text.partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000 + int((fraction + "000")[:3])


def tags_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Tags kept beside an object that has no tags field (and added after submission on one that has)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(TAGS_ANNOTATION)
    return dict(json.loads(text)) if text else {}


def check_tags(tags: Any, field: str = "tags") -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise client_error(f"{field}: must be a map of string to string")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise client_error(f"{field}: key {key!r}: keys are 1 to 128 characters, values at most 256")
    return dict(tags)
