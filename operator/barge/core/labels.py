"""Kubernetes label keys and values: one grammar for the CRD schemas (OpenAPI patterns and CEL),
the operator's checks of objects stored before those rules, and the tags it turns into labels."""

from __future__ import annotations

import re
from typing import Any

# Label keys and values (also taint keys): [.] rather than an escaped dot, so the same text is a
# Python regex, an OpenAPI pattern and a CEL string.
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = rf"^({DNS_SUBDOMAIN}/)?{LABEL_NAME}$"
LABEL_VALUE_PATTERN = rf"^({LABEL_NAME})?$"
LABEL_PREFIX_MAX = 253
LABEL_KEY_MAX = LABEL_PREFIX_MAX + 1 + 63
LABEL_KEY_WORDS = ("a label key: an optional DNS subdomain prefix of at most 253 characters and '/', then a name "
                   "of at most 63 characters, [A-Za-z0-9] at both ends and [-_.A-Za-z0-9] inside")
LABEL_VALUE_WORDS = "a label value: at most 63 characters, [A-Za-z0-9] at both ends and [-_.A-Za-z0-9] inside, or empty"

_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)


def label_key_problem(key: Any) -> str | None:
    """Why `key` is not a label key, or None when it is."""
    if (isinstance(key, str) and _LABEL_KEY.fullmatch(key)
            and ("/" not in key or key.index("/") <= LABEL_PREFIX_MAX)):
        return None
    return f"{key!r} is not {LABEL_KEY_WORDS}"


def label_value_problem(value: Any) -> str | None:
    """Why `value` is not a label value, or None when it is."""
    if isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.fullmatch(value):
        return None
    return f"{value!r} is not {LABEL_VALUE_WORDS}"


