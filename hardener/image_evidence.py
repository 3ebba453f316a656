"""What the facts read from an image decide, for one service (pure: facts in, a layer out).

Order of evidence (DESIGN.md): `x-harden` > image knowledge > these facts > what the
service declares > the profile default. This layer applies where no knowledge entry
matched the image:

- a non-root image `USER` is kept, written as its numeric uid:gid;
- an image that starts as root and drops privileges in its entrypoint (gosu, su-exec,
  setpriv, su, chroot --userspec, s6-setuidgid) runs as the uid it drops to (its
  entrypoint then skips the chown and the drop, as the official postgres image does);
- an image that must start as root (s6-overlay `/init`, PUID/PGID conventions) gets no
  `user` and keeps the capabilities its init needs; PUID/PGID images rewrite /etc/passwd
  at start, so their root filesystem stays writable;
- an image that runs as root with a root-owned VOLUME gets no `user`: a non-root uid could
  not write its own data;
- paths the entrypoint writes outside its volumes, and the home of a non-root user, get a
  tmpfs owned by that user; never a tmpfs over a declared VOLUME or a system directory;
- a program that carries file capabilities keeps them in the bounding set; a non-root
  service on the host's network that listens below port 1024 keeps NET_BIND_SERVICE and
  cannot have no-new-privileges (it would disable the file capability that lets it bind).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping

from .images import TmpfsSpec
from .values import mounted_targets, numeric_user

# s6-overlay's init and linuxserver-style PUID/PGID setup: chown, then switch user.
INIT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID")
_SYSTEM_DIRS = frozenset({"/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/opt", "/srv", "/home",
                          "/root", "/proc", "/sys", "/dev", "/boot", "/usr/local", "/usr/share", "/var/lib"})


@dataclass(frozen=True)
class FactLayer:
    """What the image's facts set for one service; `evidence` names them."""

    evidence: str  # "image:sha256:<12 hex>"
    user: str | None = None
    user_fact: str = ""  # "USER app", "entrypoint drops to db via gosu"
    skip: Mapping[str, str] = field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    cap_fact: str = ""
    tmpfs: tuple[TmpfsSpec, ...] = ()
    tmpfs_fact: str = ""
    volumes: tuple[str, ...] = ()  # declared VOLUMEs: never a tmpfs there
    unmounted: tuple[str, ...] = ()  # declared VOLUMEs the service mounts nothing on


def _short(digest: str) -> str:
    return digest[: len("sha256:") + 12]


def layer(facts: Any, service: Mapping[str, Any]) -> FactLayer:
    """The layer for a service running the image `facts` describe (`hardener.facts.ImageFacts`)."""
    evidence = f"image:{_short(facts.digest)}"
    skip: dict[str, str] = {}
    user = None
    user_fact = ""
    cap_add: list[str] = []
    cap_fact = ""
    tmpfs: list[TmpfsSpec] = []
    drop = facts.entrypoint_facts.drops[0] if facts.entrypoint_facts.drops else None
    puid = facts.uses_puid_pgid or bool({"PUID", "PGID"} & _environment(service))
    if facts.uses_s6_overlay or puid:
        how = "s6-overlay /init" if facts.uses_s6_overlay else "PUID/PGID"
        skip["user"] = f"the image starts as root by design ({how}): its init creates the user and drops to it"
        cap_add += INIT_CAPS
        cap_fact = f"its init ({how}) chowns and switches user"
        if puid:
            skip["read_only"] = "the image rewrites /etc/passwd and /etc/group from PUID/PGID at start"
        elif facts.uses_s6_overlay:
            tmpfs.append(TmpfsSpec("/run", owner="root", mode="0755", exec=True))
    elif facts.runs_as_root and facts.drop_numeric():
        user = facts.drop_numeric()
        user_fact = f"entrypoint drops to {drop.written if drop else facts.drop_user} via {drop.tool if drop else 'a switch'}"
    elif facts.runs_as_root:
        root_owned = [v for v, owner in facts.volume_owners().items() if owner[0] == 0]
        if root_owned:
            skip["user"] = (f"the image runs as root and its VOLUME {', '.join(root_owned)} belongs to root: "
                            "a non-root user could not write its data")
    elif facts.numeric_user():
        user = facts.numeric_user()
        user_fact = f"USER {facts.user}"
    volumes = tuple(posixpath.normpath(v) for v in facts.volumes)
    tmpfs += _writable(facts, user, volumes)
    file_caps = getattr(facts, "file_caps", {}) or {}
    for program_cap in dict.fromkeys(c for caps in file_caps.values() for c in caps if not str(c).isdigit()):
        if program_cap not in cap_add:
            cap_add.append(program_cap)
            cap_fact = cap_fact or "its program carries file capabilities (they must stay in the bounding set)"
    if _host_low_port(facts, service) and "NET_BIND_SERVICE" not in cap_add:
        cap_add.append("NET_BIND_SERVICE")
        cap_fact = cap_fact or "it listens below port 1024 on the host's network"
    if _host_low_port(facts, service) and (user or "user" not in skip):
        skip["no_new_privileges"] = ("a non-root process binds a port below 1024 on the host's network only through a file "
                                     "capability, which no-new-privileges disables")
    mounted = mounted_targets(dict(service))
    unmounted = tuple(v for v in volumes if v not in mounted)
    return FactLayer(evidence, user, user_fact, skip, tuple(cap_add), cap_fact, tuple(tmpfs),
                     "paths the image writes at start" if tmpfs else "", volumes, unmounted)


def _writable(facts: Any, user: str | None, volumes: tuple[str, ...]) -> list[TmpfsSpec]:
    """tmpfs for what the entrypoint writes outside volumes, and the runtime user's home;
    owned by whichever user the service ends up with."""
    paths = []
    for path in facts.writes_outside_volumes():
        path = posixpath.normpath(path)
        base = posixpath.basename(path)
        if "." in base.lstrip(".") and not base.endswith(".d") or base.startswith("."):
            path = posixpath.dirname(path)  # a file: its directory
        paths.append(path)
    ids = numeric_user(user) if user else None
    home = facts.home(ids[0]) if ids else None
    workdir = posixpath.normpath(facts.workdir) if facts.workdir else "/"
    if home and ids and facts.owner(home) and str(facts.owner(home)[0]) == ids[0]:
        home = posixpath.normpath(home)
        # The home itself, unless the application lives in it: then the XDG cache directory.
        paths.append(home if not (workdir == home or workdir.startswith(home + "/")) else posixpath.join(home, ".cache"))
    out: list[TmpfsSpec] = []
    for path in dict.fromkeys(paths):
        if path in _SYSTEM_DIRS or not path.startswith("/") or any(path == v or path.startswith(v + "/") for v in volumes):
            continue
        if workdir == path or workdir.startswith(path.rstrip("/") + "/"):
            continue  # a tmpfs there would hide the application's own files
        if any(path.startswith(p.rstrip("/") + "/") for p in paths if p != path and p not in _SYSTEM_DIRS):
            continue  # its parent gets one
        out.append(TmpfsSpec(path, owner="user", mode="0755" if user else None))
    return out


def _environment(service: Mapping[str, Any]) -> set[str]:
    env = service.get("environment")
    if isinstance(env, dict):
        return {str(k) for k in env}
    return {str(item).split("=", 1)[0].strip() for item in env or [] if isinstance(env, list)}


def _host_low_port(facts: Any, service: Mapping[str, Any]) -> bool:
    if str(service.get("network_mode", "")).strip() != "host":
        return False
    ports = [*facts.exposed_ports, *(str(p) for p in service.get("expose") or [])]
    for port in ports:
        number = str(port).split("/")[0].split("-")[0]
        if number.isdigit() and int(number) < 1024:
            return True
    return False
