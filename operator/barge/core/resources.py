"""Resource amounts, quotas, Kubernetes quantity parsing and human formatting."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"

# Capacity.free() reports this much memory when the environment has no memory quota.
UNLIMITED = sys.maxsize

Quantity = str | int | float


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of compute: milli-vCPU, bytes of memory and whole GPUs."""

    cpu_milli: int = 0
    memory: int = 0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory + other.memory,
            self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli - other.cpu_milli,
            self.memory - other.memory,
            self.gpus - other.gpus,
        )

    def times(self, n: int) -> Resources:
        return Resources(self.cpu_milli * n, self.memory * n, self.gpus * n)

    def is_zero(self) -> bool:
        return self.cpu_milli == 0 and self.memory == 0 and self.gpus == 0

    def fits_within(self, capacity: Capacity, used: Resources) -> bool:
        """True if adding this amount to `used` stays within `capacity`."""
        if used.cpu_milli + self.cpu_milli > capacity.cpu_milli:
            return False
        if used.gpus + self.gpus > capacity.gpus:
            return False
        return capacity.memory is None or used.memory + self.memory <= capacity.memory

    def describe(self) -> str:
        """E.g. "2 vCPU, 4Gi memory, 1 GPU"; zero memory and GPU parts are left out."""
        parts = [format_vcpu(self.cpu_milli)]
        if self.memory:
            parts.append(format_memory(self.memory))
        if self.gpus:
            parts.append(format_gpus(self.gpus))
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Capacity:
    """The quota of a compute environment. memory None means no memory quota;
    gpus 0 means the environment provides no GPUs at all."""

    cpu_milli: int
    memory: int | None
    gpus: int

    def free(self, used: Resources) -> Resources:
        """What is left; never negative. Memory is UNLIMITED when there is no quota."""
        memory = UNLIMITED if self.memory is None else max(0, self.memory - used.memory)
        return Resources(
            max(0, self.cpu_milli - used.cpu_milli),
            memory,
            max(0, self.gpus - used.gpus),
        )


# --- Kubernetes quantities -------------------------------------------------

_SUFFIX_MULTIPLIERS: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}

# The exponent alternative comes first so "1E3" is 1000 while "1E" is one exa.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:[eE](?P<exponent>[+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?"
)

# Larger exponents are never meaningful for requests and would make exact
# arithmetic arbitrarily slow.
_MAX_EXPONENT = 30


def _invalid(q: object, why: str = "") -> ValueError:
    detail = f": {why}" if why else ""
    return ValueError(f"invalid quantity {q!r}{detail}")


def parse_quantity(q: Quantity) -> Fraction:
    """Exact value of a Kubernetes quantity ("500m", "1.5Gi", "1e3", 2)."""
    if isinstance(q, bool):
        raise _invalid(q)
    if isinstance(q, int):
        value = Fraction(q)
    elif isinstance(q, float):
        if not math.isfinite(q):
            raise _invalid(q)
        value = Fraction(str(q))
    elif isinstance(q, str):
        value = _parse_quantity_text(q)
    else:
        raise _invalid(q)
    if value < 0:
        raise _invalid(q, "must not be negative")
    return value


def _parse_quantity_text(q: str) -> Fraction:
    match = _QUANTITY.fullmatch(q.strip())
    if match is None:
        raise _invalid(q)
    number = Fraction(match["number"])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise _invalid(q, "exponent out of range")
        return number * Fraction(10) ** exponent
    return number * _SUFFIX_MULTIPLIERS[match["suffix"] or ""]


def parse_cpu_milli(q: Quantity) -> int:
    """CPU quantity in milli-vCPU, rounded up: "500m" -> 500, "1.5" -> 1500."""
    return math.ceil(parse_quantity(q) * 1000)


def parse_bytes(q: Quantity) -> int:
    """Memory quantity in bytes, rounded up: "512Mi", "1G", "1e3", "0.5Gi"."""
    return math.ceil(parse_quantity(q))


def parse_count(q: Quantity) -> int:
    """A whole count such as a GPU request; fractions are rejected, as Kubernetes does."""
    value = parse_quantity(q)
    if value.denominator != 1:
        raise _invalid(q, "must be a whole number")
    return int(value)


# --- Pod requests ----------------------------------------------------------


def _container_requests(container: Mapping[str, Any]) -> Resources:
    """Requests of one container; a resource with only a limit is requested at
    its limit, which is the default Kubernetes applies."""
    resources = container.get("resources") or {}
    amounts = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return _resources_from_amounts(amounts)


def _resources_from_amounts(amounts: Mapping[str, Quantity]) -> Resources:
    return Resources(
        cpu_milli=parse_cpu_milli(amounts.get("cpu", 0)),
        memory=parse_bytes(amounts.get("memory", 0)),
        gpus=parse_count(amounts.get(GPU_RESOURCE, 0)),
    )


def _elementwise_max(a: Resources, b: Resources) -> Resources:
    return Resources(max(a.cpu_milli, b.cpu_milli), max(a.memory, b.memory), max(a.gpus, b.gpus))


def _total(amounts: Iterable[Resources]) -> Resources:
    total = Resources()
    for amount in amounts:
        total = total + amount
    return total


def pod_requests(pod_spec: Mapping[str, Any]) -> Resources:
    """Effective requests of a pod spec, per Kubernetes' rule: per resource, the
    max of (all app containers + sidecars) and each init container's peak.

    Sidecars (init containers with restartPolicy Always) keep running, so they
    add to the app containers and to every init container started after them.
    Pod overhead, when set, is added on top, as the scheduler and quotas do.
    """
    sidecars_so_far = Resources()
    init_peak = Resources()
    for init in pod_spec.get("initContainers") or []:
        requests = _container_requests(init)
        if init.get("restartPolicy") == "Always":
            sidecars_so_far = sidecars_so_far + requests
            init_peak = _elementwise_max(init_peak, sidecars_so_far)
        else:
            init_peak = _elementwise_max(init_peak, sidecars_so_far + requests)
    containers = pod_spec.get("containers") or []
    running = _total(_container_requests(c) for c in containers) + sidecars_so_far
    overhead = _resources_from_amounts(pod_spec.get("overhead") or {})
    return _elementwise_max(running, init_peak) + overhead


# --- Human formatting ------------------------------------------------------

_BINARY_UNITS = (
    ("Ei", 2**60),
    ("Pi", 2**50),
    ("Ti", 2**40),
    ("Gi", 2**30),
    ("Mi", 2**20),
    ("Ki", 2**10),
)


def _trim_decimal(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_cpu(milli: int) -> str:
    """Milli-vCPU as vCPU: 2000 -> "2", 500 -> "0.5", 1 -> "0.001"."""
    if milli < 0:
        return "-" + format_cpu(-milli)
    whole, fraction = divmod(milli, 1000)
    return _trim_decimal(f"{whole}.{fraction:03d}")


def format_bytes(n: int) -> str:
    """Bytes in the largest binary unit, at most two decimals: "512Mi", "1.5Gi"."""
    if n < 0:
        return "-" + format_bytes(-n)
    for unit, size in _BINARY_UNITS:
        if n >= size:
            return _trim_decimal(f"{n / size:.2f}") + unit
    return str(n)


def format_vcpu(milli: int) -> str:
    return f"{format_cpu(milli)} vCPU"


def format_memory(n: int) -> str:
    return f"{format_bytes(n)} memory"


def format_gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"
