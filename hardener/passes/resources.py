"""resources: memory, CPU and PID limits.

Why: without limits one service (or one fork bomb, or one leak) takes the host's memory,
CPU and process table from every other service. CIS Docker Benchmark 5.10 (memory), 5.11
(CPU), 5.28 (PIDs cgroup limit); OWASP Docker Security Cheat Sheet rule #7 ("Limit
resources").

Before → after (the service and file use neither form yet):

    web:                      web:
      image: myapp              image: myapp
                                mem_limit: 256m
                                cpus: 0.5
                                pids_limit: 100

or, where the service or the file already writes limits under `deploy`:

      deploy:                   deploy:
        replicas: 2               replicas: 2
                                  resources:
                                    limits:
                                      memory: 256M ...

Limits are written in one form only: the one the service already uses, else the one
the file's other services use, else `mem_limit` / `cpus` / `pids_limit`. Compose rejects
a file where both forms are set and differ. Values come from the profile; image
knowledge raises the memory floor where an image needs more (JVM images).

What can break: a service that needs more memory is OOM-killed; a service that forks
many workers hits the PID limit.

Kept as written: any limit already set in either form (also `${VAR}`); one that means
no limit (`pids_limit: 0` or `-1`, `mem_limit: 0`, `cpus: 0`) is kept and reported. A
`deploy` inherited through `<<:` is never edited through the service: that service is
skipped.

Never a limit the engine refuses beside what the service sets: the memory limit is at
least the memory reservation (`mem_reservation`, `deploy.resources.reservations.memory`),
raised by `shm_size` where that is as large (what /dev/shm holds counts against it), at most `memswap_limit` (the engine
refuses a memory limit above it); none where a reservation or `memswap_limit` is a
variable, none below the engine's 6m; no `cpus` beside `cpu_quota` / `cpu_period`.
Options: profile `resources.memory`, `.cpus`, `.pids`, `.form` (auto | short | deploy);
`x-harden: {memory:, cpus:, pids:}`; `--skip resources`.
"""

from __future__ import annotations

from typing import Any

import math

from ..model import Change, Op, Skip
from ..declared import Declared, declared, memory_text
from ..settings import Settings, evidence
from ..values import cpus as cpu_amount, is_variable, memory_bytes, pids as pid_limit
from ..view import ServiceView

ID = "resources"
SUMMARY = "Memory, CPU and PID limits, in the form the file already uses."
#: A value resting on the profile default alone can stop a service: reports list it for review.
REVIEW = True
SHORT = {"memory": "mem_limit", "cpus": "cpus", "pids": "pids_limit"}

#: Schema of the profile section this pass reads (`profile.schema.json` gets it).
PROFILE = {
    "resources": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "memory": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[bkmgBKMG]?$"},
            "cpus": {"type": "number", "exclusiveMinimum": 0},
            "pids": {"type": "integer", "minimum": 1},
            "form": {"enum": ["auto", "short", "deploy"]},
        },
    }
}
#: Schema of the `x-harden` keys this pass reads (`x-harden.schema.json` gets it).
X_HARDEN = {
    "memory": {"type": ["string", "integer"], "minimum": 0, "pattern": r"^([0-9]+(\.[0-9]+)?[bkmgtBKMGT]?[bB]?|.*\$.*)$",
               "errorMessage": {"pattern": "must be a size like 512m or 1g, got {value}"}},
    "cpus": {"type": ["number", "string"], "minimum": 0, "pattern": r"^[0-9]+(\.[0-9]+)?$",
             "errorMessage": {"pattern": "must be a number of CPUs like 0.5, got {value}"}},
    "pids": {"type": ["integer", "string"], "minimum": -1, "pattern": "^-?[0-9]+$",
             "errorMessage": {"pattern": "must be an integer, got {value}"}},
}


def deploy_limits(data: Any) -> dict:
    deploy = data.get("deploy") if isinstance(data, dict) else None
    resources = deploy.get("resources") if isinstance(deploy, dict) else None
    limits = resources.get("limits") if isinstance(resources, dict) else None
    return limits if isinstance(limits, dict) else {}


def form_of(data: Any) -> str | None:
    if any(data.get(k) is not None for k in SHORT.values()):
        return "short"
    if deploy_limits(data):
        return "deploy"
    return None


def plan(service: ServiceView, settings: Settings) -> list[Change | Skip]:
    data = service.data
    swarm = service.target == "swarm"
    form = "deploy" if swarm else form_of(data) or (settings.form if settings.form != "auto" else service.file_form) or "short"
    if form == "deploy" and service.inherited("deploy"):
        return [Skip(ID, service.name, "deploy is inherited through a merge key; set limits in the anchor", line=service.line_of("deploy"))]
    deploy = data.get("deploy")
    if form == "deploy" and deploy is not None and not isinstance(deploy, dict):
        return [Skip(ID, service.name, "deploy is not a mapping; left to the author", line=service.line_of("deploy"))]
    limits = deploy_limits(data)
    needs = declared(dict(data))
    out: list[Change | Skip] = []
    for name, (value, source, reason) in _wanted(settings, needs).items():
        if data.get(SHORT[name]) is not None or limits.get(name) is not None:
            written = (SHORT[name], data.get(SHORT[name])) if data.get(SHORT[name]) is not None else (f"deploy.resources.limits.{name}", limits.get(name))
            if _no_limit(name, written[1]):
                out.append(Skip(ID, service.name, f"{written[0]}: {written[1]} means no {name} limit; kept as written", line=service.line_of(written[0].split(".")[0])))
            continue
        if name == "memory" and needs.unknown and source != "x-harden":
            out.append(Skip(ID, service.name, f"no memory limit: the service sizes itself through a variable ({', '.join(needs.unknown)})", line=service.line))
            continue
        if name == "memory":
            value, source, reason, problem = _memory_bounds(data, value, source, reason, needs, form == "deploy")
            if problem:
                out.append(Skip(ID, service.name, f"no memory limit: {problem}", line=service.line))
                continue
        if name == "cpus" and (cpu_amount(value) or 0) < 0.01:
            out.append(Skip(ID, service.name, f"no cpus limit: {value} is below the engine's minimum of 0.01", line=service.line))
            continue
        if name == "cpus" and needs.cpus_conflict and source != "x-harden":
            out.append(Skip(ID, service.name, f"no cpus limit: {needs.cpus_conflict}", line=service.line_of("cpu_quota")))
            continue
        if name == "pids" and swarm and not service.stack_pids:
            out.append(Skip(ID, service.name, "no pids limit: docker stack deploy takes deploy.resources.limits.pids from file format 3.9 on", line=service.line))
            continue
        if form == "deploy":
            path = ("deploy", "resources", "limits", name)
            new = str(value).upper() if name == "memory" else str(value) if name == "cpus" and swarm else value
        else:
            path, new = (SHORT[name],), value
        out.append(Change(ID, service.name, path, Op.SET, new, reason, line=service.line, evidence=source,
                          caveat="the service is killed / throttled beyond this" if name != "cpus" else None))
    return out


MIB = 1024 * 1024
_ENGINE_MIN_MEMORY = 6 * MIB  # the engine refuses a smaller memory limit


def _no_limit(name: str, value: Any) -> bool:
    """A limit written that the engine reads as none at all."""
    if isinstance(value, str) and is_variable(value):
        return False
    if name == "pids":
        amount = pid_limit(value)
        return amount is not None and amount <= 0
    if name == "memory":
        return memory_bytes(value) == 0
    return cpu_amount(value) == 0


def _memory_bounds(data: Any, value: Any, source: str, reason: str, needs: Declared, deploy: bool) -> tuple[Any, str, str, str | None]:
    """The memory limit kept within what the engine accepts beside the service's other
    memory settings: (value, evidence, reason, why none can be written)."""
    for key, raw in (("mem_reservation", data.get("mem_reservation")), ("memswap_limit", data.get("memswap_limit")),
                     ("deploy.resources.reservations.memory", _reservation(data))):
        if isinstance(raw, str) and is_variable(raw) and source != "x-harden":
            return value, source, reason, f"{key} is set through a variable ({raw}); a limit below it is refused by the engine"
    want = memory_bytes(value) or 0
    written = (("mem_reservation", data.get("mem_reservation")), ("deploy.resources.reservations.memory", _reservation(data)))
    reservations = [(memory_bytes(raw), key, raw) for key, raw in written if memory_bytes(raw)]
    if reservations and max(reservations)[0] > want and source != "x-harden":
        floor, key, raw = max(reservations)
        value, want = memory_text(int(math.ceil(floor / MIB) * MIB), deploy), floor
        source, reason = f"declared:{key} {raw}", f"memory limit at the service's {key} {raw} (the engine refuses less)"
    shm = memory_bytes(data.get("shm_size")) if not is_variable(data.get("shm_size")) else None
    if shm and shm >= want and source != "x-harden":  # what /dev/shm holds is charged to the memory limit
        total = int(math.ceil((want + shm) / MIB) * MIB)
        value, want = memory_text(total, deploy), total
        source, reason = f"declared:shm_size {data.get('shm_size')}", f"memory limit: {data.get('shm_size')} of shm_size (charged to it) on top of the limit"
    swap = memory_bytes(data.get("memswap_limit"))
    if swap and want > swap:
        if source == "x-harden" or (needs.memory or 0) > swap or any(r[0] > swap for r in reservations):
            return value, source, reason, f"memswap_limit {data.get('memswap_limit')} is below the memory the service needs ({value}); the engine refuses a memory limit above memswap_limit"
        value, want = memory_text(int(swap // MIB * MIB), deploy) if swap >= MIB else data.get("memswap_limit"), swap
        source, reason = f"declared:memswap_limit {data.get('memswap_limit')}", "memory limit at memswap_limit (the engine refuses a memory limit above it)"
    if 0 < want < _ENGINE_MIN_MEMORY:
        return value, source, reason, f"{value} is below the engine's minimum memory limit of 6m"
    return value, source, reason, None


def _reservation(data: Any) -> Any:
    deploy = data.get("deploy") if isinstance(data, dict) else None
    resources = deploy.get("resources") if isinstance(deploy, dict) else None
    reservations = resources.get("reservations") if isinstance(resources, dict) else None
    return reservations.get("memory") if isinstance(reservations, dict) else None


def _wanted(settings: Settings, needs: Declared) -> dict[str, tuple[Any, str, str]]:
    """name -> (value, evidence, reason): the profile's limits, raised to what the service
    declares it needs (heap flags, memory flags, reservations)."""
    memory: Any = settings.memory
    memory_source = evidence(settings, "resources.memory")
    memory_reason = f"memory limit from {settings.sources.get('resources.memory', 'the profile')}"
    if needs.memory and memory_source != "x-harden" and needs.memory > (memory_bytes(memory) or 0):
        memory, memory_source = memory_text(needs.memory, deploy=False), needs.memory_evidence or "declared"
        memory_reason = f"memory limit at what the service declares it needs ({memory_source.split(':', 1)[1]})"
    cpus: Any = settings.cpus
    cpus_source = evidence(settings, "resources.cpus")
    cpus_reason = "cpus limit from the profile"
    if needs.cpus and cpus_source != "x-harden" and needs.cpus > float(cpus):
        cpus, cpus_source = needs.cpus, needs.cpus_evidence or "declared"
        cpus_reason = f"cpus limit at the service's reservation ({cpus_source.split(':', 1)[1]})"
    return {
        "memory": (memory, memory_source, memory_reason),
        "cpus": (cpus, cpus_source, cpus_reason),
        "pids": (settings.pids, evidence(settings, "resources.pids"), f"pids limit from {settings.sources.get('resources.pids', 'the profile')}"),
    }
