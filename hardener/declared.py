"""What a service declares about its own needs: heap sizes, memory flags, reservations.

A JVM started with `-Xmx4g` under a 256m limit is killed before it serves; memcached
started with `-m 512` under 256m evicts silently; the engine refuses a memory limit below
`mem_reservation` and `cpus` beside `cpu_quota`. The service's own environment, command
and reservations are evidence of what it needs: limits are never set below them. Pure
functions over the plain service data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .values import as_list, cpus, is_variable, memory_bytes, with_defaults

MIB = 1024 * 1024
_ROUND = 64 * MIB

# A JVM needs room beyond its heap (metaspace, threads, code cache, direct buffers).
_HEAP_FACTOR = 1.5
_XMX = re.compile(r"(?<![\w-])-Xmx(\S+)")
_OLD_SPACE = re.compile(r"--max-old-space-size[= ](\S+)")
_MAXMEMORY = re.compile(r"--maxmemory[= ](\S+)")
_MEMCACHED = re.compile(r"(?:^|\s)(?:-m|--memory-limit(?:=|\s))\s*(\S+)")
# Environment variables that hold a heap size by themselves (no -Xmx around it).
_HEAP_VARS = ("MAX_HEAP_SIZE", "ES_HEAP_SIZE", "HEAP_SIZE")


@dataclass(frozen=True)
class Declared:
    """Floors and conflicts the service declares; `evidence` says where each came from."""

    memory: int | None = None  # bytes the limit must not go below
    memory_evidence: str | None = None  # e.g. "declared:environment.ES_JAVA_OPTS -Xmx4g"
    cpus: float | None = None
    cpus_evidence: str | None = None
    cpus_conflict: str | None = None  # why `cpus` must not be written at all
    unknown: tuple[str, ...] = field(default=())  # sizes written with a variable Compose fills in


def _environment(service: dict[str, Any]) -> list[tuple[str, str]]:
    env = service.get("environment")
    if isinstance(env, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in env.items()]
    out = []
    for item in as_list(env):
        key, _, value = str(item).partition("=")
        out.append((key.strip(), value))
    return out


def _command(service: dict[str, Any], key: str) -> str:
    value = service.get(key)
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _size(raw: str, unit: str = "") -> int | None:
    text = with_defaults(raw).strip("\"'{}")
    if not text or is_variable(text):
        return None
    if unit and text.isdigit():
        text += unit
    value = memory_bytes(text)
    return int(value) if value else None


def _round_up(value: float) -> int:
    return int(math.ceil(value / _ROUND) * _ROUND)


def declared(service: dict[str, Any]) -> Declared:
    """The floors of one service (plain data as Compose reads it)."""
    floors: list[tuple[int, str]] = []
    unknown: list[str] = []

    def heap(raw: str, where: str, flag: str, unit: str = "", factor: float = _HEAP_FACTOR) -> None:
        size = _size(raw, unit)
        if size is None:
            unknown.append(f"{where} {flag}{raw}")
        else:
            floors.append((_round_up(size * factor), f"declared:{where} {flag}{raw}"))

    for key, value in _environment(service):
        where = f"environment.{key}"
        text = value
        for match in _XMX.finditer(text):
            heap(match.group(1), where, "-Xmx")
        for match in _OLD_SPACE.finditer(text):
            heap(match.group(1), where, "--max-old-space-size=", unit="m")
        if key.upper() in _HEAP_VARS and text.strip():
            heap(text.strip(), where, "")
    for key in ("entrypoint", "command"):
        text = _command(service, key)
        for match in _XMX.finditer(text):
            heap(match.group(1), key, "-Xmx")
        for match in _OLD_SPACE.finditer(text):
            heap(match.group(1), key, "--max-old-space-size=", unit="m")
        for match in _MAXMEMORY.finditer(text):
            heap(match.group(1), key, "--maxmemory ")
        if _memcached(service, text):
            for match in _MEMCACHED.finditer(" " + text):
                heap(match.group(1), key, "-m ", unit="m", factor=1.25)
    reservation = _reservation(service)
    if reservation is not None:
        floors.append(reservation)
    memory, memory_evidence = max(floors) if floors else (None, None)
    cpu_floor, cpu_evidence = _cpu_reservation(service)
    return Declared(memory, memory_evidence, cpu_floor, cpu_evidence, _cpu_conflict(service), tuple(unknown))


def _memcached(service: dict[str, Any], command: str) -> bool:
    """memcached, or a server speaking its protocol on its port (11211): `-m` is item memory in MB."""
    if "memcache" in command or "memcache" in str(service.get("image", "")):
        return True
    ports = [str(p.get("target", "")) if isinstance(p, dict) else str(p) for p in as_list(service.get("ports")) + as_list(service.get("expose"))]
    return any(p.rsplit(":", 1)[-1].split("/")[0] == "11211" for p in ports)


def _deploy(service: dict[str, Any], *path: str) -> Any:
    node: Any = service.get("deploy")
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _reservation(service: dict[str, Any]) -> tuple[int, str] | None:
    for value, where in ((service.get("mem_reservation"), "mem_reservation"),
                         (_deploy(service, "resources", "reservations", "memory"), "deploy.resources.reservations.memory")):
        size = memory_bytes(value) if value is not None and not is_variable(value) else None
        if size:
            return int(size), f"declared:{where} {value}"
    return None


def _cpu_reservation(service: dict[str, Any]) -> tuple[float | None, str | None]:
    value = _deploy(service, "resources", "reservations", "cpus")
    amount = cpus(value) if value is not None and not is_variable(value) else None
    return (amount, f"declared:deploy.resources.reservations.cpus {value}") if amount else (None, None)


def _cpu_conflict(service: dict[str, Any]) -> str | None:
    for key in ("cpu_quota", "cpu_period"):
        if service.get(key) is not None:
            return f"{key} is set; the engine refuses cpus beside it"
    return None


def memory_text(size: int, deploy: bool) -> str:
    """A byte count as Compose writes it: `768m` (or `768M` under deploy), `2g` when whole."""
    unit, value = ("g", size // (1024 * MIB)) if size % (1024 * MIB) == 0 else ("m", size // MIB)
    return f"{value}{unit.upper() if deploy else unit}"
