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

Kept as written: any limit already set in either form (also `${VAR}`). A `deploy`
inherited through `<<:` is never edited through the service: that service is skipped.
Options: profile `resources.memory`, `.cpus`, `.pids`, `.form` (auto | short | deploy);
`x-harden: {memory:, cpus:, pids:}`; `--skip resources`.
"""

from __future__ import annotations

from typing import Any

from ..model import Change, Op, Skip
from ..declared import Declared, declared, memory_text
from ..settings import Settings, evidence
from ..values import memory_bytes
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
        return [Skip(ID, service.name, "deploy is inherited through a merge key; set limits in the anchor", service.line_of("deploy"))]
    deploy = data.get("deploy")
    if form == "deploy" and deploy is not None and not isinstance(deploy, dict):
        return [Skip(ID, service.name, "deploy is not a mapping; left to the author", service.line_of("deploy"))]
    limits = deploy_limits(data)
    needs = declared(dict(data))
    out: list[Change | Skip] = []
    for name, (value, source, reason) in _wanted(settings, needs).items():
        if data.get(SHORT[name]) is not None or limits.get(name) is not None:
            continue
        if name == "memory" and needs.unknown and source != "x-harden":
            out.append(Skip(ID, service.name, f"no memory limit: the service sizes itself through a variable ({', '.join(needs.unknown)})", service.line))
            continue
        if name == "cpus" and needs.cpus_conflict and source != "x-harden":
            out.append(Skip(ID, service.name, f"no cpus limit: {needs.cpus_conflict}", service.line_of("cpu_quota")))
            continue
        if name == "pids" and swarm and not service.stack_pids:
            out.append(Skip(ID, service.name, "no pids limit: docker stack deploy takes deploy.resources.limits.pids from file format 3.9 on", service.line))
            continue
        if form == "deploy":
            path = ("deploy", "resources", "limits", name)
            new = str(value).upper() if name == "memory" else str(value) if name == "cpus" and swarm else value
        else:
            path, new = (SHORT[name],), value
        out.append(Change(ID, service.name, path, Op.SET, new, reason, line=service.line, evidence=source,
                          caveat="the service is killed / throttled beyond this" if name != "cpus" else None))
    return out


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
