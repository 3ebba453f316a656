"""What in a stack reaches past its containers into the host, read from the model
`docker compose config --format json` prints: `harden verify` runs such a stack only after
the user confirms it on a terminal, or with `--yes`.

Host-level access: `privileged`, a host namespace (`pid`, `network_mode`, `ipc`, `uts`,
`userns_mode`, `cgroup` set to `host`), capabilities that reach the host kernel, devices,
seccomp / AppArmor / SELinux confinement turned off, and bind mounts of sensitive host
paths (the root directory, system directories, the Docker / containerd sockets and state,
credential folders such as ~/.ssh).
"""

from __future__ import annotations

import os
import posixpath
from typing import Any

from ..values import cap_name

HOST_CAPS = frozenset({"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "SYS_BOOT", "SYS_TIME", "DAC_READ_SEARCH",
                       "BPF", "PERFMON", "MAC_ADMIN", "MAC_OVERRIDE", "NET_ADMIN", "SYSLOG"})
NAMESPACES = ("pid", "network_mode", "ipc", "uts", "userns_mode", "cgroup")
# the host path itself and everything below it
SENSITIVE_TREES = ("/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/usr/bin",
                   "/usr/sbin", "/usr/lib", "/usr/libexec", "/var/lib/docker", "/var/lib/containerd", "/var/lib/kubelet",
                   "/run/containerd", "/var/run/containerd", "/run/docker", "/var/run/docker", "/run/systemd", "/var/log",
                   "/var/spool/cron", "/var/lib/dpkg", "/var/lib/rpm")
# only the path itself: a folder that holds everything of its kind
SENSITIVE_DIRS = ("/", "/home", "/usr", "/var", "/var/lib", "/run", "/var/run", "/opt", "/srv", "/mnt", "/media", "/tmp")
SOCKETS = ("docker.sock", "containerd.sock", "podman.sock", "crio.sock", "dockershim.sock")
CREDENTIALS = (".ssh", ".docker", ".aws", ".kube", ".gnupg", ".config/gcloud", ".azure", ".netrc", ".git-credentials", ".pgpass")


def sensitive_path(source: str) -> str | None:
    """Why binding host path `source` into a container gives it the host, or None."""
    path = posixpath.normpath(source) if source.startswith("/") else None
    if path is None:
        return None
    path = "/" + path.lstrip("/")
    if path in SENSITIVE_DIRS:
        return f"mounts the host's {path}"
    if os.path.basename(path) in SOCKETS:
        return f"mounts the engine socket {path} (control of the host)"
    for tree in SENSITIVE_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"mounts the host's {path}"
    parts = path.split("/")
    for secret in CREDENTIALS:
        depth = secret.count("/") + 1
        if any("/".join(parts[i:i + depth]) == secret for i in range(len(parts))):
            return f"mounts credentials from the host ({path})"
    return None


def _mounts(service: dict[str, Any]) -> list[str]:
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict) and volume.get("type") == "bind" and isinstance(volume.get("source"), str):
            out.append(volume["source"])
        elif isinstance(volume, str) and volume.startswith("/"):
            out.append(volume.split(":", 1)[0])
    return out


def host_access(model: dict[str, Any]) -> list[str]:
    """One line per way a service of the loaded model reaches the host."""
    found: list[str] = []
    for name, service in sorted((model.get("services") or {}).items()):
        if not isinstance(service, dict):
            continue
        def said(what: str, name: str = name) -> None:
            found.append(f"{name}: {what}")

        if service.get("privileged") is True:
            said("privileged: true (every capability and device of the host)")
        for key in NAMESPACES:
            if str(service.get(key) or "") == "host":
                said(f"{key}: host (the host's namespace)")
        caps = sorted({cap_name(c) for c in service.get("cap_add") or []} & HOST_CAPS)
        if caps:
            said(f"cap_add: {', '.join(caps)}")
        if service.get("devices"):
            said("devices: " + ", ".join(str(d.get("source") if isinstance(d, dict) else d) for d in service["devices"]))
        for option in service.get("security_opt") or []:
            text = str(option).replace("=", ":")
            if text in ("seccomp:unconfined", "apparmor:unconfined", "label:disable", "systempaths:unconfined"):
                said(f"security_opt: {option}")
        for source in _mounts(service):
            why = sensitive_path(source)
            if why:
                said(why)
    return found
