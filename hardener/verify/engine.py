"""Engine access for `harden verify`: docker / docker compose children with timeouts, the
throwaway Compose project (up, down, a sweep of whatever still carries its label), and the
signal handling that makes sure the project is torn down.

Only `docker compose` for the project and `docker inspect / top / exec cat /proc/<pid>/status /
logs` on its own containers are run; every child runs in its own session, so a terminal
Ctrl-C reaches only this process, which then tears the project down itself.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import threading
from typing import Any, Callable

DOCKER_TIMEOUT = 30
DOWN_TIMEOUT = 180
PEEK_TIMEOUT = 15  # docker exec / docker top on one container

_LIST_CONTAINERS = ("docker", "ps", "-a", "-q")
# what a project leaves on the engine: (kind, the command that lists it, the one that removes it)
_SWEEP = (
    ("container", _LIST_CONTAINERS, ("docker", "rm", "-f", "-v")),
    ("volume", ("docker", "volume", "ls", "-q"), ("docker", "volume", "rm", "-f")),
    ("network", ("docker", "network", "ls", "-q"), ("docker", "network", "rm")),
)


class VerifyError(Exception):
    """Could not verify at all (exit 2)."""


def run(args: list[str], *, stdin: str | None = None, timeout: float = DOCKER_TIMEOUT, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
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


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def engine_check() -> None:
    """Raise VerifyError unless the docker CLI is installed and reaches an engine."""
    if shutil.which("docker") is None:
        raise VerifyError("the docker CLI is not installed")
    proc = run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if proc.returncode != 0 or not proc.stdout.strip():
        raise VerifyError(f"no Docker engine reachable: {last_line(proc)}")


def proc_status(container: str, pid: int | str = 1) -> str | None:
    """The text of /proc/<pid>/status in the container (its main process is PID 1 in a
    PID namespace of its own; `pid: host` sees host PIDs, so there it is the main
    process's host PID); None where `cat` cannot run (distroless)."""
    proc = run(["docker", "exec", container, "cat", f"/proc/{pid}/status"], timeout=PEEK_TIMEOUT)
    return proc.stdout if proc.returncode == 0 else None


def top(container: str) -> str | None:
    """`docker top` (pid, uid, comm) of the container: ps runs on the engine's host, so
    nothing needs to exist inside the image. None where the engine cannot list them."""
    proc = run(["docker", "top", container, "-o", "pid,uid,comm"], timeout=PEEK_TIMEOUT)
    return proc.stdout if proc.returncode == 0 else None


def logs(container: str, lines: int) -> list[str]:
    """The container's last `lines` non-blank log lines (stdout, then stderr)."""
    proc = run(["docker", "logs", "--tail", str(lines), container])
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


class Project:
    """One throwaway Compose project on the engine."""

    def __init__(self, binary: str, text: str, directory: str) -> None:
        self.binary, self.text, self.directory = binary, text, directory
        self.name = "harden-verify-" + secrets.token_hex(4)

    def compose(self, *args: str, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "-f", "-", "--project-directory", self.directory, "-p", self.name, *args]
        return run(cmd, stdin=self.text, timeout=timeout, cwd=self.directory)

    def _ids(self, listing: tuple[str, ...]) -> list[str]:
        proc = run([*listing, "--filter", f"label=com.docker.compose.project={self.name}"])
        return proc.stdout.split() if proc.returncode == 0 else []

    def containers(self) -> list[dict[str, Any]]:
        """`docker inspect` of every container of the project."""
        ids = self._ids(_LIST_CONTAINERS)
        if not ids:
            return []
        proc = run(["docker", "inspect", *ids])
        if proc.returncode != 0:
            return []  # a container vanished between ps and inspect; the next poll sees it
        return json.loads(proc.stdout)

    def down(self) -> list[str]:
        """Remove everything of the project; return what is still left (normally nothing)."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=DOWN_TIMEOUT)
        for _, listing, remove in _SWEEP:
            ids = self._ids(listing)
            if ids:
                run([*remove, *ids], timeout=DOWN_TIMEOUT)
        return [f"{kind} {i}" for kind, listing, _ in _SWEEP for i in self._ids(listing)]


# --- signals -------------------------------------------------------------------------------


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived: stop and tear down."""


def _on_signal(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _set_handlers(handler: Callable[..., Any] | int | None) -> dict[int, Any]:
    """Install `handler` for SIGINT/SIGTERM/SIGHUP (main thread only); return the old ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in _SIGNALS}


def catch_signals() -> dict[int, Any]:
    """Turn SIGINT/SIGTERM/SIGHUP into `Interrupted`; return the handlers to restore."""
    return _set_handlers(_on_signal)


def ignore_signals() -> None:
    """Ignore them: a second Ctrl-C must not cut the teardown short."""
    _set_handlers(signal.SIG_IGN)


def restore_signals(old: dict[int, Any]) -> None:
    for s, h in old.items():
        signal.signal(s, h)
