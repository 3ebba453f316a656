"""read_only: a read-only root filesystem, with tmpfs where the service must write.

Why: an attacker who gets code execution cannot plant binaries or alter configuration
in the image; the writable places are few and explicit. CIS Docker Benchmark 5.13
("Ensure that the container's root filesystem is mounted as read only"), OWASP Docker
Security Cheat Sheet rule #8 ("Set filesystem and volumes to read-only").

Before → after:

    web:                      web:
      image: myapp              image: myapp
                                read_only: true
                                tmpfs:
                                  - /tmp:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev

Each tmpfs carries explicit options: `size=`, the service user's `uid=`/`gid=` (a tmpfs
over a directory that exists in the image takes that directory's mode, and runc before
1.2 ignores an explicit `mode=` there, so only ownership makes it writable for a
non-root user), and `noexec,nosuid,nodev` unless the path must execute. Paths come from
the profile (`/tmp`) and the image knowledge (nginx: /var/cache/nginx, /run; postgres:
/var/run/postgresql). A path already mounted (a `tmpfs` entry or any `volumes` entry with
that target, short or long syntax) is not mounted again: Compose rejects two mounts on
one target.

Skipped when the image writes its data to a path that is no VOLUME in the image
(grafana /var/lib/grafana, loki /loki, caddy /data) and the service mounts nothing there:
a tmpfs would lose the data silently, a read-only root would stop the service.

What can break: writes anywhere else on the root filesystem fail with "Read-only file
system"; `harden verify` names the path.

Kept as written: an existing `read_only` (an explicit `false` is reported; `${VAR}`
counts as set). tmpfs is only added together with `read_only: true`, or where
`x-harden.tmpfs` asks for it.
Options: profile `tmpfs.paths`, `tmpfs.size`; `x-harden: {tmpfs: ["/path:opts"]}`;
`--skip read_only`.
"""

from __future__ import annotations

from typing import Any

from ..images import TmpfsSpec
from ..model import Change, Op, Skip
from ..settings import Settings, evidence
from ..values import as_list, is_false, is_variable, mounted_targets, numeric_user
from ..view import ServiceView

ID = "read_only"
SUMMARY = "Read-only root filesystem, tmpfs for the paths that must stay writable."
#: A value resting on the profile default alone can stop a service: reports list it for review.
REVIEW = True

_SIZE = {"type": "string", "pattern": "^[0-9]+[kmgKMG]?$"}
#: Schema of the profile section this pass reads (`profile.schema.json` gets it).
PROFILE = {
    "tmpfs": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "size": _SIZE,
            "paths": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path"],
                    "properties": {
                        "path": {"type": "string", "pattern": "^/"},
                        "owner": {"enum": ["user", "root"]},
                        "mode": {"type": "string", "pattern": "^[0-7]{3,4}$"},
                        "size": _SIZE,
                        "exec": {"type": "boolean"},
                    },
                },
            },
        },
    }
}
#: Schema of the `x-harden` keys this pass reads (`x-harden.schema.json` gets it).
X_HARDEN = {"tmpfs": {"type": "array", "items": {"type": "string"}, "description": "tmpfs entries written as given: /path[:options]"}}


def tmpfs_entry(spec: TmpfsSpec, user: Any, default_size: str) -> str:
    options = [f"size={spec.size or default_size}"]
    ids = numeric_user(user) if user is not None else None
    if spec.owner == "user" and ids:
        options += [f"uid={ids[0]}", f"gid={ids[1]}"]
    options.append(f"mode={spec.mode or ('0755' if spec.owner == 'root' else '1777')}")
    options.append("exec" if spec.exec else "noexec")
    options += ["nosuid", "nodev"]
    return f"{spec.path}:{','.join(options)}"


def plan(service: ServiceView, settings: Settings) -> list[Change | Skip]:
    out: list[Change | Skip] = []
    setting_now = False
    if service.has("read_only") or (service.inherited("read_only")):
        value = service.data.get("read_only")
        if is_false(value):
            out.append(Skip(ID, service.name, f"read_only: {value if isinstance(value, str) else 'false'} set explicitly; kept", line=service.line_of("read_only")))
        elif is_variable(value):
            out.append(Skip(ID, service.name, f"read_only set through a variable ({value}); kept", line=service.line_of("read_only")))
    else:
        unmounted = [p for p in settings.requires_mounts if p.rstrip("/") not in mounted_targets(service.data)]
        if unmounted:
            reason = f"image writes its data to {', '.join(unmounted)} (no VOLUME in the image): mount a volume there first"
            return [Skip(ID, service.name, reason, line=service.line)]
        setting_now = True
        out.append(
            Change(ID, service.name, ("read_only",), Op.SET, True, "root filesystem read-only",
                   caveat="writes outside volumes and tmpfs fail", line=service.line, evidence=evidence(settings, "tmpfs.paths"))
        )
    # x-harden entries first: for a path in both, the file's own entry wins.
    wanted: list[str] = list(settings.tmpfs_extra)
    user = service.data.get("user")
    if setting_now:
        wanted += [tmpfs_entry(spec, user, settings.tmpfs_size) for spec in settings.tmpfs]
    if isinstance(service.data.get("tmpfs"), str) and is_variable(service.data["tmpfs"]):
        wanted = []
    for entry in as_list(service.data.get("tmpfs")):
        options = str(entry).split(":", 1)[1].split(",") if ":" in str(entry) else []
        if options and not {"noexec", "nosuid"} <= set(options):
            reason = f"existing tmpfs {entry} lacks noexec/nosuid; kept as written"
            out.append(Skip(ID, service.name, reason, line=service.line_of("tmpfs")))
    covered = mounted_targets(service.data)
    add = []
    for entry in wanted:
        path = entry.split(":", 1)[0].rstrip("/") or "/"
        if path not in covered:
            covered.add(path)
            add.append(entry)
    if add:
        out.append(Change(ID, service.name, ("tmpfs",), Op.ADD, tuple(add), "writable paths on tmpfs under a read-only root",
                          caveat="data written there is lost when the container stops", line=service.line,
                          evidence=evidence(settings, "tmpfs.paths")))
    return out
