"""Log lines that hardening breaks things with, and the control most likely responsible.

A signature is a pattern of an error the kernel or a program prints when a hardening
control stops it: a write to the read-only root (`EROFS`), a write the user may not make
(`EACCES`), a privileged operation without its capability (`EPERM`), a fork over the PID
limit (`EAGAIN`), an allocation over the memory limit (`ENOMEM`). Which control it points
at can depend on where the write went, so `Signature.control` is the first guess and
`compare.attribute` refines it with the service's mounts and user. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..values import cap_name


@dataclass(frozen=True)
class Signature:
    name: str
    pattern: re.Pattern[str]
    control: str
    what: str  # a few words for reports


def _sig(name: str, pattern: str, control: str, what: str) -> Signature:
    return Signature(name, re.compile(pattern, re.I), control, what)


# First match wins: the specific before the general.
SIGNATURES = (
    _sig("nnp", r"must be suid|effective uid is not 0|is not setuid|no new privileges flag|"
                r"unable to change to (?:uid|gid)|sudo: .*(?:nosuid|no_new_privs)", "no_new_privileges", "a setuid program refused"),
    _sig("bind", r"bind(?:\(\))?:? .*permission denied|permission denied.*\bbind\b|listen tcp.*permission denied|"
                 r"can't bind|cannot bind|could not bind", "capabilities", "binding a port was refused"),
    _sig("erofs", r"read-only file system|\bEROFS\b", "read_only", "a write to the read-only root"),
    _sig("not_writable", r"not writ(?:e)?able|is not writeable|unable to write|cannot write to", "read_only", "a path is not writable"),
    _sig("ownership", r"has wrong ownership|wrong owner|must be owned by|not owned by", "user", "data owned by another user"),
    _sig("eacces", r"permission denied|\bEACCES\b", "user", "a write or open as this user was refused"),
    _sig("fork", r"fork: (?:retry: )?resource temporarily unavailable|can'?t fork|cannot fork|unable to fork|"
                 r"pthread_create.*(?:resource temporarily unavailable|EAGAIN)|thread creation failed|"
                 r"unable to create (?:new )?native thread", "resources", "no more processes (PID limit)"),
    _sig("memory", r"cannot allocate memory|\bENOMEM\b|out of memory|outofmemoryerror|exceeds the container memory limit|"
                   r"memory limit .*(?:exceed|too low)|insufficient memory", "resources", "not enough memory (memory limit)"),
    _sig("eperm", r"operation not permitted|\bEPERM\b", "capabilities", "a privileged operation was refused"),
)
BY_NAME = {s.name: s for s in SIGNATURES}

# Capability an EPERM line most likely needs, by what the line says it was doing.
CAP_HINTS = (
    (re.compile(r"\bchown|lchown|fchown", re.I), ("CHOWN",)),
    (re.compile(r"set(?:res|re|e)?[ug]id|setgroups|initgroups|setpriv|gosu|su-exec|s6-setuidgid|chroot --userspec", re.I),
     ("SETUID", "SETGID")),
    (re.compile(r"\bbind\b|listen", re.I), ("NET_BIND_SERVICE",)),
    (re.compile(r"\bchmod|utime|fchmod|futimens", re.I), ("FOWNER",)),
    (re.compile(r"\bkill\b", re.I), ("KILL",)),
    (re.compile(r"\bchroot\b", re.I), ("SYS_CHROOT",)),
    (re.compile(r"\bmknod\b", re.I), ("MKNOD",)),
    (re.compile(r"raw socket|\bping\b|SOCK_RAW", re.I), ("NET_RAW",)),
)

_NUMBERS = re.compile(r"0x[0-9a-f]+|\d+", re.I)
_STAMP = re.compile(r"^\s*(?:\[?\d{4}-\d\d-\d\d[T ][\d:.,]+Z?\]?|\d\d:\d\d:\d\d(?:[.,]\d+)?)\s*")


# A line its program logs at an informational level: it noticed, and carries on as designed
# (nginx's entrypoint: "info: can not modify /etc/nginx/conf.d/default.conf (read-only file system?)").
_INFO = re.compile(r"(?:^|[\s\[(])(?:info|debug|notice)(?::|\])|\blevel=(?:info|debug)\b|(?:^|\s)(?:INFO|DEBUG)\b")


def match(line: str) -> Signature | None:
    """The signature `line` carries, or None (also for a line logged as information)."""
    if _INFO.search(line):
        return None
    return next((s for s in SIGNATURES if s.pattern.search(line)), None)


def normalise(line: str) -> str:
    """`line` without its timestamp, numbers and case: the same message from another run
    (another PID, port, time) compares equal."""
    return _NUMBERS.sub("N", _STAMP.sub("", line)).strip().lower()


def caps_for(line: str, file_caps: dict[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """The capabilities an "Operation not permitted" line most likely needs: a program's
    file capabilities when the line names that program (exec is refused when they are not
    in the bounding set), else by the operation the line names; () when it cannot be told."""
    for program, caps in (file_caps or {}).items():
        if program and program in line:
            return tuple(cap_name(c) for c in caps if not str(c).isdigit())
    return next((caps for rx, caps in CAP_HINTS if rx.search(line)), ())
