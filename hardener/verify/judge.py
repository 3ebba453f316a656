"""What the engine runs, judged against what the file asks for: the inspected container
(`Box`), the parsed /proc/1/status and `docker top` of it, one table `Row` per container."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..values import cap_mask, cap_name, cap_names, no_new_privileges
from .expect import Expect

COLUMNS = ("service", "uid", "procs", "read-only", "CapEff", "NoNewPrivs", "memory", "cpus", "pids", "state")


@dataclass
class Box:
    """One container of the project, as inspected."""

    service: str
    number: int
    inspect: dict[str, Any]
    status: dict[str, str] | None = None  # /proc/1/status fields; None = could not read
    procs: list[tuple[str, str]] | None = None  # (uid, command) of every process; None = could not list

    @classmethod
    def of(cls, inspect: dict[str, Any]) -> Box:
        """The container of one `docker inspect` item, named by its Compose labels."""
        labels = (inspect.get("Config") or {}).get("Labels") or {}
        number = labels.get("com.docker.compose.container-number", "1")
        return cls(labels.get("com.docker.compose.service", "?"), int(number) if number.isdigit() else 1, inspect)

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


def boxes(items: Iterable[dict[str, Any]]) -> list[Box]:
    """The containers of `docker inspect` items, by service and number."""
    return sorted((Box.of(item) for item in items), key=lambda b: (b.service, b.number))


def parse_status(text: str | None) -> dict[str, str] | None:
    """The fields of a /proc/<pid>/status text."""
    if text is None:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


def parse_top(text: str | None) -> list[tuple[str, str]] | None:
    """(uid, command) of every process of a `docker top -o pid,uid,comm` text."""
    if text is None:
        return None
    rows = [line.split(None, 2) for line in text.splitlines()[1:] if line.strip()]
    return [(row[1], row[2] if len(row) > 2 else "?") for row in rows if len(row) >= 2]


# --- cells ---------------------------------------------------------------------------------


def _procs(procs: list[tuple[str, str]] | None) -> str:
    if procs is None:
        return "n/a"
    by_uid: dict[str, int] = {}
    for uid, _ in procs:
        by_uid[uid] = by_uid.get(uid, 0) + 1
    return " ".join(f"{n}x{'root' if uid == '0' else uid}" for uid, n in sorted(by_uid.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else -1))


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


# --- the judgement -------------------------------------------------------------------------


@dataclass
class Row:
    cells: dict[str, str]
    failures: list[str] = field(default_factory=list)

    def fail(self, column: str, message: str) -> None:
        self.cells[column] = "!" + self.cells[column]
        self.failures.append(f"{self.cells['service']} {column}: {message}")


def missing(service: str) -> Row:
    """The row of a service no container was created for."""
    row = Row({c: "-" for c in COLUMNS} | {"service": service, "state": "missing"})
    row.fail("state", "no container was created")
    return row


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
        engine_add = cap_mask(host.get("CapAdd") or [])
        if "ALL" not in {cap_name(c) for c in host.get("CapDrop") or []}:
            row.fail("CapEff", "the engine did not drop ALL capabilities")
        elif capeff is not None and capeff & ~allowed:
            row.fail("CapEff", f"holds {cap_names(capeff & ~allowed)} beyond cap_add [{', '.join(want.cap_add)}]")
        elif capeff is None and engine_add & ~allowed:
            row.fail("CapEff", f"engine adds {cap_names(engine_add & ~allowed)} beyond cap_add")
    if want.no_new_privileges:
        if nnp is not None and nnp != "1":
            row.fail("NoNewPrivs", f"NoNewPrivs is {nnp}, the file asks for no-new-privileges")
        elif nnp is None and no_new_privileges(host.get("SecurityOpt") or []) != "true":
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
