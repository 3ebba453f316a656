"""The likely fix for a service that died, from the error patterns in its last log lines."""

from __future__ import annotations

import os
import re

from ..values import numeric_user

_QUOTED = re.compile(r"""["'“‘](/[^"'”’\s]*)["'”’]""")
_DIR = re.compile(r"\b(?:dir|directory)\s+(/[^\s\"'),:;]+)")
_PATH = re.compile(r"(?<![\w./:-])(/[\w.@+-]+(?:/[\w.@+-]+)*)")
_CAP_HINTS = (
    (re.compile(r"\bchown", re.I), ["CHOWN"]),
    (re.compile(r"set(?:res|re|e)?[ug]id|setgroups|initgroups|setpriv|gosu|su-exec", re.I), ["SETUID", "SETGID"]),
    (re.compile(r"\bbind\b", re.I), ["NET_BIND_SERVICE"]),
    (re.compile(r"\bchmod|utime|fchmod", re.I), ["FOWNER"]),
    (re.compile(r"\bkill\b", re.I), ["KILL"]),
)


def writable_path(line: str) -> str | None:
    """The directory that needs a tmpfs, from a "Read-only file system" log line."""
    match = _DIR.search(line)
    if match:
        return match.group(1).rstrip("/.") or None
    match = _QUOTED.search(line) or _PATH.search(line)
    if not match:
        return None
    path = match.group(1).rstrip("/")
    parent = os.path.dirname(path)
    path = path if parent in ("", "/") else parent
    if path.startswith("/var/run/"):
        path = "/run/" + path[len("/var/run/"):]  # mount the real path: /var/run -> /run
    return path


def _hints(line: str, owner: str) -> list[str]:
    """The hints one log line calls for; `owner` is `:uid=U,gid=G` of a numeric user, or ""."""
    hints = []
    if "Read-only file system" in line:
        path = writable_path(line)
        if path:
            hints.append(f'"Read-only file system": add a tmpfs (or a volume) for {path}, e.g. x-harden: {{tmpfs: ["{path}{owner}"]}}')
        else:
            hints.append('"Read-only file system": add a tmpfs (or a volume) for the path it writes (x-harden: {tmpfs: [...]})')
    if "Operation not permitted" in line:
        caps = next((c for rx, c in _CAP_HINTS if rx.search(line)), None)
        which = f"probably {', '.join(caps)}" if caps else "see the line above"
        hints.append(f'"Operation not permitted": a capability is missing ({which}): cap_add / x-harden: {{cap_add: [...]}}')
    if "port is already allocated" in line or "address already in use" in line:
        hints.append("a published host port is taken: stop what holds it (verify runs the file's ports as written)")
    if "Permission denied" in line:
        hints.append(
            '"Permission denied": the user cannot write there: give the tmpfs uid=/gid= of the service user'
            + (f" ({owner.lstrip(':')})" if owner else "")
            + ", or set x-harden: {user: ...} to the account that owns the data"
        )
    return hints


def diagnose(lines: list[str], user: str | None) -> list[str]:
    """Likely fixes, by the error patterns in the last log lines (each once, first seen first)."""
    ids = numeric_user(user) if user else None
    owner = f":uid={ids[0]},gid={ids[1]}" if ids else ""
    return list(dict.fromkeys(hint for line in lines for hint in _hints(line, owner)))
