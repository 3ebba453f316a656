"""A hardened run judged against a run of the original on the same engine (pure).

A regression is something the original did that the hardened stack no longer does:
a container that ran and now exits or restarts, a health check that passed and now
fails, an OOM kill, memory or PIDs at their limit, a published port that answered and
now does not, a port the service listened on and no longer does, a probe that fails,
or a log line with the signature of hardening breakage (`signatures`) that the original
did not print. Each names the service, the evidence and the control most likely
responsible (None where nothing points at one).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from . import signatures
from .diagnose import writable_path
from .seen import Seen, StackRun

NEAR = 0.9  # usage at this share of a limit counts as at the limit
MAX_LINES = 4  # new signature lines reported per container


@dataclass(frozen=True)
class Regression:
    service: str  # the container's label (service, or service#2)
    run: str  # which hardened run showed it: "fresh start" or "upgrade"
    kind: str  # state | health | oom | memory | pids | port | listen | probe | log | missing
    evidence: str
    control: str | None = None
    signature: str | None = None  # `signatures.Signature.name` of the line that points at the control
    line: str = ""  # that log line
    path: str | None = None  # the path the line names

    def describe(self) -> str:
        blame = f"control {self.control}" if self.control else "control unknown"
        return f"{self.service} ({self.run}): {self.evidence} [{blame}]"


def under(path: str, mounts: dict[str, str]) -> str | None:
    """The type of the mount `path` lies on (tmpfs, volume, bind), or None for the root filesystem."""
    best = ""
    for target in mounts:
        t = target.rstrip("/") or "/"
        if (path == t or path.startswith(t + "/") or t == "/") and len(t) > len(best):
            best = t
    return mounts.get(best) if best else None


_MKDIR = re.compile(r"""(?:create|make) director(?:y|ies)|\bmkdir\b.*["'‘“](/[^"'’”\s]+)""", re.I)
_NOT_WRITABLE = re.compile(r"""["'‘“]?(/[^\s"'’”,:;]+)["'’”]?\s+(?:is\s+)?not\s+writ""", re.I)
_QUOTED = re.compile(r"""["'‘“](/[^"'’”\s]*)["'’”]""")


def written_dir(line: str) -> str | None:
    """The directory a line says could not be written: the one it could not create, else
    the directory of the file it names (`diagnose.writable_path`)."""
    named = _NOT_WRITABLE.search(line)
    if named:
        return posixpath.normpath(named.group(1))
    quoted = _QUOTED.search(line)
    if _MKDIR.search(line) and quoted:
        return posixpath.normpath(quoted.group(1))
    path = writable_path(line)
    return posixpath.normpath(path) if path else None


def unwritable_dirs(seen: Seen) -> list[str]:
    """The directories a container's log says it could not write (EROFS, "not writable"):
    to be listed in it (`observe(listing=...)`), since a tmpfs must not hide the image's files."""
    out: list[str] = []
    for line in seen.logs:
        sig = signatures.match(line)
        path = written_dir(line) if sig is not None and sig.name in ("erofs", "not_writable") else None
        if path and path not in out:
            out.append(path)
    return out[:8]


def attribute(line: str, seen: Seen) -> tuple[str | None, str | None, str | None]:
    """(control, signature name, path) for one log line of the hardened `seen`."""
    sig = signatures.match(line)
    if sig is None:
        return None, None, None
    path = written_dir(line) if sig.name in ("erofs", "not_writable", "eacces", "ownership") else None
    control = sig.control
    root = seen.user.split(":")[0] in ("", "0", "root")
    if sig.name in ("not_writable", "eacces"):
        mount = under(path, seen.mounts) if path else None
        if mount is not None:
            control = "user"  # a tmpfs or volume is writable: by its owner
        elif sig.name == "not_writable" and seen.read_only:
            control = "read_only"
        elif root:
            control = "capabilities"  # root without DAC_OVERRIDE cannot write what others own
        else:
            control = "user"
    return control, sig.name, path


def new_lines(base: Seen | None, seen: Seen) -> list[str]:
    """Lines of `seen` with a breakage signature that the original's logs do not hold."""
    known = {signatures.normalise(line) for line in (base.logs if base else [])}
    out: list[str] = []
    for line in seen.logs:
        key = signatures.normalise(line)
        if key not in known and signatures.match(line) is not None:
            known.add(key)
            out.append(line.strip())
    return out


def _blame(seen: Seen, lines: list[str]) -> tuple[str | None, str | None, str, str | None]:
    """What the first attributable line says: (control, signature, line, path)."""
    for line in [*lines, seen.error]:
        control, sig, path = attribute(line, seen) if line else (None, None, None)
        if control:
            return control, sig, line, path
    return None, None, "", None


def _state(base: Seen, seen: Seen, run: str, lines: list[str]) -> list[Regression]:
    out = []
    control, sig, line, path = _blame(seen, lines)
    because = f': "{line}"' if line else (f": engine: {seen.error}" if seen.error else "")
    if seen.oom and not base.oom:
        out.append(Regression(seen.label, run, "oom", "OOM-killed (State.OOMKilled), the original was not", "resources", "memory"))
    if base.up and not seen.up:
        if seen.status == "running" and seen.restarts == 0 and base.health == "healthy":
            out.append(Regression(seen.label, run, "health", f"health {seen.health}, the original was healthy{because}",
                                  control, sig, line, path))
        else:
            was = base.state_text()
            out.append(Regression(seen.label, run, "state", f"{seen.state_text()}, the original was {was}{because}",
                                  control or ("resources" if seen.oom else None), sig or ("memory" if seen.oom else None), line, path))
    return out


def _limits(base: Seen | None, seen: Seen, run: str) -> list[Regression]:
    out = []
    for kind, used, limit, unit in (("memory", seen.memory, seen.memory_limit, "MiB"), ("pids", seen.pids, seen.pids_limit, "")):
        if not used or not limit or used < NEAR * limit:
            continue
        before = getattr(base, kind) if base else None
        show = (lambda n: f"{n / 2**20:.0f} MiB") if unit else str
        was = f" (the original peaked at {show(before)})" if before else ""
        out.append(Regression(seen.label, run, kind, f"{kind} at {show(used)} of its {show(limit)} limit{was}", "resources", kind))
    return out


def _network(base: Seen, seen: Seen, run: str) -> list[Regression]:
    out = []
    for port, answered in base.ports.items():
        if answered and seen.ports.get(port) is False:
            out.append(Regression(seen.label, run, "port", f"published port {port} does not answer, it did on the original"))
    if base.listening is not None and seen.listening is not None and not seen.host_network:
        for port in sorted(set(base.listening) - set(seen.listening)):
            out.append(Regression(seen.label, run, "listen", f"no longer listens on TCP {port}, the original did"))
    return out


def _probes(base: Seen | None, seen: Seen, run: str, where: str) -> list[Regression]:
    out = []
    before = {p.command: p for p in (base.probes if base else [])}
    for probe in seen.probes:
        if not probe.ok:
            also = " (it fails on the original too)" if probe.command in before and not before[probe.command].ok else ""
            tail = f": {probe.output.strip().splitlines()[-1]}" if probe.output.strip() else ""
            out.append(Regression(where or seen.label, run, "probe", f"probe `{probe.command}` exited {probe.code}{also}{tail}"))
    return out


def compare(base: StackRun, hard: StackRun, run: str = "fresh start") -> list[Regression]:
    """Every regression of `hard` against `base` (see the module docstring)."""
    out: list[Regression] = []
    before = base.by_label()
    now = hard.by_label()
    for label, was in before.items():
        if label not in now and was.up:
            out.append(Regression(label, run, "missing", "no container was created, the original had one"))
    for label, seen in sorted(now.items()):
        was = before.get(label)
        lines = new_lines(was, seen)
        if was is not None:
            out += _state(was, seen, run, lines)
            out += _network(was, seen, run)
        elif not seen.up:
            out.append(Regression(label, run, "state", seen.state_text()))
        out += _limits(was, seen, run)
        out += _probes(was, seen, run, label)
        told = {r.line for r in out if r.service == label and r.line}
        for line in lines[:MAX_LINES]:
            if line in told:
                continue
            control, sig, path = attribute(line, seen)
            what = signatures.BY_NAME[sig].what if sig else "breakage"
            out.append(Regression(label, run, "log", f'{what}: "{line}" (the original did not print it)', control, sig, line, path))
    host_before = {p.command: p for p in base.host_probes}
    for probe in hard.host_probes:
        if not probe.ok:
            also = " (it fails on the original too)" if probe.command in host_before and not host_before[probe.command].ok else ""
            tail = f": {probe.output.strip().splitlines()[-1]}" if probe.output.strip() else ""
            out.append(Regression("host", run, "probe", f"probe `{probe.command}` exited {probe.code}{also}{tail}"))
    return out


def blamed(regressions: list[Regression]) -> dict[str, list[Regression]]:
    """Regressions by service, those naming a control first."""
    out: dict[str, list[Regression]] = {}
    for r in sorted(regressions, key=lambda r: r.control is None):
        out.setdefault(r.service.split("#")[0], []).append(r)
    return out
