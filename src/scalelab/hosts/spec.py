"""What a scenario says about its hosts: ``hosts: [{name, cpus, memory}]``, parsed into `HostSpec`.

Pure data (no Docker): the scenario model validates with it, the simulator and the report read
it. `scalelab.hosts.dind` starts the hosts themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HostSpec", "parse_memory", "format_memory", "host_specs", "check_names", "NAME_PATTERN", "MIN_MEMORY_BYTES"]

#: a host's name: letters, digits, '-' and '_' (it becomes part of a container name)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$"
#: below this a host's own Docker daemon does not start
MIN_MEMORY_BYTES = 256 * 2**20
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class HostSpec:
    """One host: its name (``A``, ``B``) and the capacity its container is capped at."""

    name: str
    cpus: float
    memory_bytes: int

    @property
    def memory(self) -> str:
        """The memory as Docker takes it (``--memory 1g``)."""
        return format_memory(self.memory_bytes)


def parse_memory(value: object) -> int:
    """``1g``, ``1.5g``, ``512m``, ``2GiB``, or a number of bytes -> bytes (ValueError naming the forms)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an amount of memory; write it like 1g or 512m")
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an amount of memory; write it like 1g, 1.5g or 512m")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_memory(nbytes: int) -> str:
    """Bytes -> the shortest exact Docker form (``1g``, ``1536m``, ``300k``, bytes)."""
    for unit in ("g", "m", "k"):
        if nbytes % _UNITS[unit] == 0:
            return f"{nbytes // _UNITS[unit]}{unit}"
    return str(nbytes)


def check_names(names: Iterable[str]) -> None:
    """ValueError when two hosts share a name (case does not count: ``a`` and ``A`` are one host)."""
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise ValueError(f"two hosts are called '{name}': give every host its own name (A, B, ...)")
        seen.add(name.lower())


def host_specs(scenario: Any) -> list[HostSpec]:
    """The scenario's hosts in their order (empty: the scenario has no ``hosts:``, one machine as always)."""
    hosts: Sequence[Any] = getattr(scenario, "hosts", None) or ()
    return [HostSpec(h.name, float(h.cpus), int(h.memory_bytes)) for h in hosts]
