"""What Compose values mean: the one place every pass, finding, `verify` and `inherit` asks.

Compose reads a value after interpolation and with its own coercions, not as YAML 1.2
does: `privileged: "true"` and `read_only: off` are booleans to it, `CAP_chown` is
CHOWN, `user: "0:0"` is root, `512M` is a size. Plain functions, no state, no ruamel.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# --- interpolation ---------------------------------------------------------------------

_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


def is_variable(value: Any) -> bool:
    """True for a value written with `${VAR}` interpolation: the author's to set."""
    return isinstance(value, str) and bool(_VAR.search(value))


def with_defaults(text: str) -> str:
    """`text` with each `${VAR:-default}` / `${VAR-default}` replaced by its default and
    any other variable by the empty string: what Compose uses when nothing is set."""
    return _VAR.sub("", _DEFAULT.sub(lambda m: m.group(1), text.replace("$$", "\x00"))).replace("\x00", "$")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


# --- booleans --------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "y", "on"})
_FALSE = frozenset({"false", "no", "n", "off"})


def boolean(value: Any) -> bool | None:
    """A boolean as Compose reads it (YAML 1.1 spellings in strings, any case), else None
    (absent, a variable, or something Compose would reject)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def is_true(value: Any) -> bool:
    return boolean(value) is True


def is_false(value: Any) -> bool:
    return boolean(value) is False


# --- users -----------------------------------------------------------------------------

_NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")
ROOT_NAMES = frozenset({"0", "root"})


def is_root_user(value: Any) -> bool:
    """True for `user: root`, `0`, `0:0`, `root:staff`: a process that is root."""
    if value is None or isinstance(value, (bool, list, dict)):
        return False
    return str(value).strip().split(":")[0].strip() in ROOT_NAMES


def numeric_user(value: Any) -> tuple[str, str] | None:
    """(uid, gid) of a numeric `uid[:gid]` user (gid defaults to uid), else None."""
    match = _NUMERIC_USER.match(str(value).strip()) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    return (match.group(1), match.group(2) or match.group(1)) if match else None


def is_user_value(value: Any) -> bool:
    """A value `user:` can hold: a name or id, optionally `:group` (or a variable)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    return is_variable(value) or bool(re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?", str(value).strip()))


# --- capabilities ----------------------------------------------------------------------

#: Linux capabilities in kernel bit order (linux/capability.h), upper case without `CAP_`.
CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
ALL_CAPS = (1 << len(CAPABILITIES)) - 1


def cap_name(value: Any) -> str:
    """`cap_chown`, `CAP_CHOWN`, ` chown ` -> `CHOWN`."""
    text = str(value).strip().upper()
    return text[4:] if text.startswith("CAP_") else text


def cap_mask(names: Iterable[Any]) -> int:
    """The kernel bitmask of capability names (`ALL` is every one)."""
    mask = 0
    for raw in names:
        name = cap_name(raw)
        if name == "ALL":
            return ALL_CAPS
        if name in CAPABILITIES:
            mask |= 1 << CAPABILITIES.index(name)
    return mask


def cap_names(mask: int) -> str:
    return ",".join(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)


# --- security_opt ----------------------------------------------------------------------

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_NNP = re.compile(r"^\s*no-new-privileges\s*(?:[:=]\s*(\S+))?\s*$", re.IGNORECASE)


def no_new_privileges(entries: Iterable[Any]) -> str | None:
    """'true' / 'false' / the raw value of a no-new-privileges entry, or None. The engine
    parses the value as Go's strconv.ParseBool: `1`, `t`, `true` (any case) are 'true'."""
    for entry in entries:
        match = _NNP.match(str(entry))
        if match:
            raw = match.group(1) or "true"
            if raw in _GO_TRUE or raw.lower() == "true":
                return "true"
            if raw in _GO_FALSE or raw.lower() == "false":
                return "false"
            return raw if is_variable(raw) else raw.lower()
    return None


def unconfined(entry: Any) -> bool:
    """A security_opt entry that turns a kernel confinement off."""
    text = str(entry).replace("=", ":").replace(" ", "").lower()
    return text in ("seccomp:unconfined", "apparmor:unconfined", "label:disable")


# --- sizes and CPUs --------------------------------------------------------------------

_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def memory_bytes(value: Any) -> float | None:
    """`512m`, `1G`, `2gb`, `1048576` -> bytes; None for anything else (variables too)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None
    text = str(value).strip().lower()
    if text.endswith("b") and len(text) > 1 and text[-2] in "kmgt":
        text = text[:-1]
    try:
        number = float(text[:-1]) * _UNITS[text[-1]] if text and text[-1] in _UNITS else float(text)
    except ValueError:
        return None
    return number if number >= 0 else None


def cpus(value: Any) -> float | None:
    """`0.5`, `"2"` -> CPUs; None for anything else."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def pids(value: Any) -> int | None:
    """A PID limit as an integer (-1 and 0 mean none to the engine), else None."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict, float)):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


# --- mounts ----------------------------------------------------------------------------


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"


def tmpfs_target(entry: Any) -> str | None:
    """The container path of a `tmpfs:` entry (`/run:size=1m` -> `/run`)."""
    if not isinstance(entry, str):
        return None
    return _normal(with_defaults(entry).split(":", 1)[0].strip())


def volume_target(entry: Any) -> str | None:
    """The container path of a `volumes:` entry, short or long syntax, with
    `${VAR:-default}` read as Compose reads it when nothing is set."""
    if isinstance(entry, dict):
        target = entry.get("target")
        return _normal(with_defaults(target)) if isinstance(target, str) else None
    if not isinstance(entry, str):
        return None
    parts = with_defaults(entry).split(":")
    target = parts[1] if len(parts) > 1 and parts[1].startswith("/") else parts[0]
    return _normal(target)


def volume_source(entry: Any) -> str | None:
    if isinstance(entry, dict):
        source = entry.get("source")
        return source if isinstance(source, str) else None
    if not isinstance(entry, str):
        return None
    parts = with_defaults(entry).split(":")
    return parts[0] if len(parts) > 1 else None


def mounted_targets(service: Any) -> set[str]:
    """Every container path of a service that already has a mount (tmpfs or volume)."""
    if not isinstance(service, dict):
        return set()
    targets = {tmpfs_target(e) for e in as_list(service.get("tmpfs"))}
    targets |= {volume_target(v) for v in as_list(service.get("volumes"))}
    targets.discard(None)
    return targets  # type: ignore[return-value]
