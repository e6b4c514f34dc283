"""Timestamps as the API writes them (RFC 3339, UTC, microseconds) from and to the injected clock's
seconds since the epoch."""

from __future__ import annotations

import datetime as dt


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
