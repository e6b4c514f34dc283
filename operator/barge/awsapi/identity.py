"""Who may call the API: the credentials file (access keys and the Kubernetes user each one acts as)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    secret_access_key: str
    username: str
    groups: tuple[str, ...] = ()


class CredentialsError(ValueError):
    """A credentials file the server cannot start with; the message names the entry and field."""


def parse_credentials(data: Any, source: str = "credentials") -> dict[str, Identity]:
    """A YAML list of {accessKeyId, secretAccessKey, username, groups}, keyed by access key id."""
    if not isinstance(data, list) or not data:
        raise CredentialsError(f"{source}: must be a non-empty YAML list of "
                               "{accessKeyId, secretAccessKey, username, groups}")
    keys: dict[str, Identity] = {}
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where}: must be a mapping")
        unknown = set(entry) - {"accessKeyId", "secretAccessKey", "username", "groups"}
        if unknown:
            raise CredentialsError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        for field in ("accessKeyId", "secretAccessKey", "username"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                raise CredentialsError(f"{where}.{field}: required, a non-empty string")
        groups = entry.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise CredentialsError(f"{where}.groups: must be a list of non-empty strings")
        if entry["accessKeyId"] in keys:
            raise CredentialsError(f"{where}.accessKeyId: {entry['accessKeyId']!r} appears twice")
        keys[entry["accessKeyId"]] = Identity(entry["accessKeyId"], entry["secretAccessKey"], entry["username"],
                                              tuple(groups))
    return keys


def load_credentials(path: Path) -> dict[str, Identity]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"{path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CredentialsError(f"{path}: not YAML: {exc}") from None
    return parse_credentials(data, str(path))
