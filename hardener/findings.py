"""Risks reported with their line, never fixed automatically.

A hardened-looking service that is also `privileged: true`, shares the host's network /
PID / IPC namespace, mounts the Docker socket or turns seccomp / AppArmor off is not
hardened; saying nothing while adding `cap_drop` beside it would mislead the reader.
Configuration that relaxes the checklist for a service (a profile's skip, a capability a
profile or `x-harden` adds) is reported too (`relaxed`), naming where it asked for it.
"""

from __future__ import annotations

from .model import Finding
from .profile import Settings
from .values import as_list, cap_name, is_true, unconfined, volume_source
from .view import ServiceView

_HOST_KEYS = ("network_mode", "pid", "ipc", "userns_mode", "uts", "cgroup")


def scan(service: ServiceView, settings: Settings) -> list[Finding]:
    data, name = service.data, service.name
    out = []
    if is_true(data.get("privileged")):
        out.append(Finding("privileged", name, "privileged: true gives the container every capability and all host devices", line=service.line_of("privileged")))
    for key in _HOST_KEYS:
        if str(data.get(key, "")).strip() == "host":
            out.append(Finding("host_namespace", name, f"{key}: host shares the host's {key.split('_')[0]} namespace", line=service.line_of(key)))
    for volume in as_list(data.get("volumes")):
        source = volume_source(volume) if isinstance(volume, dict) else str(volume).split(":", 1)[0]
        if isinstance(source, str) and source.rstrip("/").endswith("docker.sock"):
            out.append(Finding("docker_socket", name, f"mounts the Docker socket ({source}): root on the host", line=service.line_of("volumes")))
    for entry in as_list(data.get("security_opt")):
        if unconfined(entry):
            out.append(Finding("unconfined", name, f"security_opt {entry} turns a kernel confinement off", line=service.line_of("security_opt")))
    dangerous = sorted({cap_name(c) for c in as_list(data.get("cap_add")) if isinstance(c, str)} & settings.dangerous_caps)
    if dangerous:
        out.append(Finding("dangerous_cap", name, f"cap_add {', '.join(dangerous)}: kept, review whether it is needed", line=service.line_of("cap_add")))
    for relaxation in settings.relaxed:
        out.append(Finding("relaxed", name, f"configuration relaxes this service: {relaxation}", line=service.line))
    for cap in settings.withheld:
        out.append(Finding("dangerous_cap", name, f"the image's facts ask for capability {cap} (a program's file capability): "
                           "dangerous and outside Docker's default set, so not added; add it with x-harden cap_add and acknowledge if the service needs it",
                           line=service.line))
    for path in settings.unmounted_volumes:
        out.append(Finding("unmounted_volume", name, f"the image keeps its data in VOLUME {path} and the service mounts nothing there: "
                           "it lives in an anonymous volume that `docker compose down -v` deletes; mount a named volume", line=service.line))
    return out
