"""The records of what one run of a stack showed: `Seen` per container, `StackRun` per run.

Filled by `observe` (the engine side), read by `compare` (pure) and `harden tune`. Plain
data only, so tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Probe:
    """One check run against the stack: `x-harden.probe` inside a service, or `--probe` on the host."""

    where: str  # service name, or "host"
    command: str
    code: int
    output: str = ""  # the last lines it printed

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass
class Seen:
    """One container of one run, as the engine showed it."""

    service: str
    label: str  # service, or service#2 for the second replica
    status: str = "missing"  # running | exited | restarting | created | dead | missing
    exit_code: int | None = None
    restarts: int = 0
    health: str | None = None
    oom: bool = False
    completed: bool = False  # exited 0 with no restart policy: a one-shot job that did its work
    error: str = ""  # State.Error: the engine's own reason (an exec that failed, a mount)
    user: str = ""  # Config.User
    read_only: bool = False
    mounts: dict[str, str] = field(default_factory=dict)  # destination -> type (volume, bind, tmpfs)
    memory: int | None = None  # highest usage `docker stats` showed, bytes
    memory_limit: int | None = None
    pids: int | None = None  # highest number of PIDs `docker stats` showed
    pids_limit: int | None = None
    ports: dict[str, bool] = field(default_factory=dict)  # "8080/tcp" (container side) -> answered on the host
    listening: tuple[int, ...] | None = None  # TCP ports listening inside; None = could not be read
    logs: list[str] = field(default_factory=list)
    diff: list[tuple[str, str]] = field(default_factory=list)  # `docker diff`: (A|C|D, path)
    procs: list[tuple[str, str, str]] | None = None  # (uid, gid, command) of every process; None = not listed
    listings: dict[str, list[str] | None] = field(default_factory=dict)  # directory -> its entries (None: unreadable)
    probes: list[Probe] = field(default_factory=list)
    host_network: bool = False

    @property
    def up(self) -> bool:
        """Doing what a service does: running (healthy where it has a healthcheck) and not
        restarting, or a one-shot that completed."""
        if self.completed:
            return True
        return self.status == "running" and self.restarts == 0 and self.health in (None, "healthy")

    def state_text(self) -> str:
        if self.completed:
            text = "completed (exit 0)"
        elif self.status == "restarting" or (self.restarts and self.status != "exited"):
            text = f"restarting (restarted {self.restarts}x)"
        elif self.status in ("exited", "dead"):
            text = f"exited ({self.exit_code})"
        else:
            text = self.status + (f" ({self.health})" if self.health else "")
        return text + (" OOM-killed" if self.oom else "")


@dataclass
class StackRun:
    """One bring-up of a stack: `label` says which (original, hardened, upgrade)."""

    label: str
    project: str
    seen: list[Seen] = field(default_factory=list)
    up_error: str = ""  # `docker compose up` failed with this, and nothing started
    host_probes: list[Probe] = field(default_factory=list)
    seconds: float = 0.0

    def by_label(self) -> dict[str, Seen]:
        return {s.label: s for s in self.seen}

    def service(self, name: str) -> Seen | None:
        return next((s for s in self.seen if s.service == name), None)
