"""The fix a regression calls for, and that fix applied to a Compose text in memory.

A `Fix` is one adjustment of one service, in the words of `x-harden` (`tmpfs`, `cap_add`,
`memory`, `pids`, `user`, or `skip` of a control as the last resort). `fix_for` proposes
one only where the signature says what helps: the path of an EROFS line gets a tmpfs,
an EPERM line the capability its operation (or its program's file capabilities) needs,
an OOM kill or a memory signature a higher limit, a fork failure more PIDs, a write
refused on a volume the user the original ran as. `verify` prints a fix only once a rerun
with it applied (`apply`) no longer shows the signature; `tune` feeds fixes back into
planning as observed facts. Pure: text in, text out, no I/O.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from ..declared import declared, memory_text
from ..document import transform
from ..values import cap_name, memory_bytes, no_new_privileges, numeric_user, tmpfs_target
from .compare import Regression
from .seen import Seen
from .writes import SYSTEM_DIRS

MIB = 1 << 20


@dataclass(frozen=True)
class Fix:
    service: str
    control: str
    key: str  # tmpfs | cap_add | memory | pids | user | skip
    value: Any  # tmpfs entry, capability names, size, PID count, uid:gid, control id
    why: str

    def x_harden(self) -> str:
        """The fix as the service's `x-harden` block says it."""
        if self.key in ("tmpfs", "cap_add"):
            items = [self.value] if isinstance(self.value, str) else list(self.value)
            return f"x-harden: {{{self.key}: [{', '.join(_quote(i) for i in items)}]}}"
        if self.key == "skip":
            return f"x-harden: {{skip: [{self.value}]}}"
        return f"x-harden: {{{self.key}: {_quote(self.value)}}}"

    def describe(self) -> str:
        return f"{self.service}: {self.x_harden()} ({self.why})"


def _quote(value: Any) -> str:
    return str(value) if isinstance(value, int) or str(value).isidentifier() else f'"{value}"'


def tmpfs_entry(path: str, user: str) -> str:
    """A tmpfs entry for `path`, owned by the service's numeric user (runc 1.1 takes an existing
    directory's mode and owner otherwise), noexec, nosuid, nodev."""
    ids = numeric_user(user) if user else None
    owner = f"uid={ids[0]},gid={ids[1]},mode=0755" if ids and ids[0] != "0" else "mode=1777"
    return f"{path}:size=64m,{owner},noexec,nosuid,nodev"


def _user_of(base: Seen | None) -> str | None:
    """The uid:gid every process of the original ran as, when that is one non-root account."""
    ids = {(uid, gid) for uid, gid, _ in (base.procs or [])} if base else set()
    if len(ids) == 1:
        uid, gid = ids.pop()
        if uid.isdigit() and uid != "0":
            return f"{uid}:{gid}"
    return None


def created_below(base: Seen | None, path: str) -> str | None:
    """The shallowest directory the original's run created (`docker diff`: added, with what
    it wrote below it) at or below `path`, other than a system directory: a tmpfs there
    hides nothing of the image."""
    if base is None:
        return None
    paths = [posixpath.normpath(p) for _, p in base.diff]
    added = sorted((posixpath.normpath(p) for kind, p in base.diff if kind == "A"), key=lambda p: (p.count("/"), p))
    for place in added:
        below = place == path or place.startswith(path.rstrip("/") + "/")
        if below and place not in SYSTEM_DIRS and any(p.startswith(place + "/") for p in paths):
            return place
    return None


def fix_for(r: Regression, seen: Seen | None, base: Seen | None, service: dict[str, Any] | None = None,
            file_caps: dict[str, tuple[str, ...]] | None = None) -> Fix | None:
    """The fix the regression's signature calls for, or None where none is known."""
    from .signatures import caps_for

    name = r.service.split("#")[0]
    user = seen.user if seen else ""
    if r.control == "read_only" and r.path:
        path = posixpath.normpath(r.path)
        held = (seen.listings.get(path) if seen else None) or []
        if path not in SYSTEM_DIRS and not held:
            return Fix(name, "read_only", "tmpfs", tmpfs_entry(path, user), f"it writes {path}")
        made = created_below(base, path)
        if made:  # the original's run shows the directory it created there: that one
            return Fix(name, "read_only", "tmpfs", tmpfs_entry(made, user), f"the original created {made} and wrote there")
        what = "a system directory" if path in SYSTEM_DIRS else f"it holds the image's files ({', '.join(held[:3])})"
        return Fix(name, "read_only", "skip", "read_only", f"it writes {path}; {what}: a tmpfs would hide it")
    if r.control == "user" and r.signature in ("eacces", "not_writable", "ownership"):
        before = _user_of(base)
        if before and before != _numeric(user):
            return Fix(name, "user", "user", before, f"the original's processes ran as {before}, the owner of what it writes")
        why = (f"the original started as root and ran as {before} only after that" if before else "it writes what only root may write")
        return Fix(name, "user", "skip", "user", why)
    if r.control == "capabilities":
        caps = ("NET_BIND_SERVICE",) if r.signature == "bind" else caps_for(r.line, file_caps)
        if caps:
            return Fix(name, "capabilities", "cap_add", tuple(caps), f"{', '.join(caps)} for: {r.line[:80]}")
        return Fix(name, "capabilities", "skip", "capabilities", "an operation needs a capability the line does not name")
    if r.control == "no_new_privileges":
        return Fix(name, "no_new_privileges", "skip", "no_new_privileges", "it runs a setuid program")
    if r.control == "resources" and (r.signature == "memory" or r.kind in ("oom", "memory")):
        limit = seen.memory_limit if seen and seen.memory_limit else 256 * MIB
        need = declared(dict(service or {})).memory or 0
        size = max(2 * limit, need, 2 * (seen.memory or 0) if seen else 0)
        size = -(-size // (64 * MIB)) * 64 * MIB
        return Fix(name, "resources", "memory", memory_text(size, deploy=False), f"the limit was {limit // MIB} MiB")
    if r.control == "resources" and (r.signature == "fork" or r.kind == "pids"):
        limit = seen.pids_limit if seen and seen.pids_limit else 100
        return Fix(name, "resources", "pids", max(4 * limit, 64), f"the PID limit was {limit}")
    return None


def _numeric(user: str) -> str | None:
    ids = numeric_user(user) if user else None
    return f"{ids[0]}:{ids[1]}" if ids else None


# --- applying a fix to a Compose text (in memory only: it is never written) ------------------


def _limits(svc: Any) -> Any:
    deploy = svc.get("deploy")
    resources = deploy.get("resources") if isinstance(deploy, dict) else None
    return resources.get("limits") if isinstance(resources, dict) else None


def _set_limit(svc: Any, short: str, name: str, value: Any) -> None:
    limits = _limits(svc)
    if isinstance(limits, dict) and name in limits:
        limits[name] = str(value).upper() if name == "memory" else value
    else:
        svc[short] = value


def _without(svc: Any, control: str) -> None:
    """Take the keys of `control` out of the service (the fix of last resort, and the
    baseline of a file that is already hardened)."""
    if control == "user":
        svc.pop("user", None)
    elif control == "read_only":
        svc.pop("read_only", None)
    elif control == "capabilities":
        drop = [c for c in svc.get("cap_drop") or [] if cap_name(c) != "ALL"]
        if drop:
            svc["cap_drop"] = drop
        else:
            svc.pop("cap_drop", None)
    elif control == "no_new_privileges":
        kept = [o for o in svc.get("security_opt") or [] if no_new_privileges([o]) is None]
        if kept:
            svc["security_opt"] = kept
        else:
            svc.pop("security_opt", None)
    elif control == "resources":
        for key in ("mem_limit", "memswap_limit", "cpus", "pids_limit"):
            svc.pop(key, None)
        limits = _limits(svc)
        if isinstance(limits, dict):
            svc["deploy"]["resources"].pop("limits", None)


def _services(tree: Any) -> Any:
    services = tree.get("services") if isinstance(tree, dict) else None
    return services if isinstance(services, dict) else None


def _edit(tree: Any, changes: list[tuple[str, str, Any]]) -> None:
    services = _services(tree)
    for service, key, value in changes:
        svc = services.get(service) if services is not None else None
        if not isinstance(svc, dict):
            continue
        if key == "tmpfs":
            entries = svc.get("tmpfs")
            entries = [entries] if isinstance(entries, str) else list(entries or [])
            target = tmpfs_target(value)
            entries = [e for e in entries if tmpfs_target(e) != target] + [value]
            svc["tmpfs"] = entries
        elif key == "cap_add":
            have = list(svc.get("cap_add") or [])
            svc["cap_add"] = have + [c for c in value if cap_name(c) not in {cap_name(h) for h in have}]
        elif key == "memory":
            _set_limit(svc, "mem_limit", "memory", value)
        elif key == "pids":
            _set_limit(svc, "pids_limit", "pids", int(value))
        elif key == "user":
            svc["user"] = str(value)
        elif key == "skip":
            _without(svc, str(value))


def edit(text: str, changes: list[tuple[str, str, Any]]) -> str:
    """`text` with (service, key, value) edits in the `Fix.key` vocabulary; `skip` takes the
    control's keys out. Layout is not kept: the result only goes to Docker Compose."""
    return transform(text, lambda tree: _edit(tree, changes))


def apply(text: str, fixes: list[Fix]) -> str:
    """`text` with every fix applied to its service."""
    return edit(text, [(f.service, f.key, f.value) for f in fixes]) if fixes else text


def unhardened(text: str, controls: tuple[str, ...] = ("user", "read_only", "capabilities", "no_new_privileges", "resources")) -> str:
    """`text` without the keys of the hardening controls in any service: the stack as it ran
    before it was hardened, for a file that is hardened already (`verify --as-is`)."""

    def strip(tree: Any) -> None:
        names = [str(n) for n in _services(tree) or ()]
        _edit(tree, [(name, "skip", control) for name in names for control in controls])

    return transform(text, strip)


def memory_of(value: Any) -> int:
    return int(memory_bytes(value) or 0)
