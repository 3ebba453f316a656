"""Bring a zoo stack up, run its job check, tear it down; run `harden fix` on a copy."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import images  # tests/e2e/images.py

ROOT = Path(__file__).resolve().parents[3]
UP_TIMEOUT = 45  # seconds for `up --wait`
STOP_TIMEOUT = "3"  # seconds `restart` / `down` wait before SIGKILL
CONTROLS = ("user", "read_only", "capabilities", "no_new_privileges", "resources")


class JobFailed(Exception):
    """The job check found the service not doing its job; the message says what it saw."""


@dataclass
class Project:
    """A running Compose project, as the job checks see it."""

    name: str
    file: Path

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [images.compose_bin(), "-f", str(self.file), "-p", self.name, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.file.parent)

    def address(self, service: str, port: int) -> tuple[str, int]:
        out = self.compose("port", service, str(port)).stdout.strip()  # 127.0.0.1:32768
        if not out:
            raise JobFailed(f"{service} publishes no port {port} (container not running?)")
        host, _, number = out.rpartition(":")
        return host, int(number)

    def container(self, service: str) -> str:
        return self.compose("ps", "-a", "-q", service).stdout.strip().split("\n")[0]

    def state(self, service: str) -> dict:
        cid = self.container(service)
        if not cid:
            return {"Status": "absent"}
        out = subprocess.run(["docker", "inspect", "--format", "{{json .State}}", cid], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else {"Status": "absent"}

    def running(self, service: str) -> bool:
        return self.state(service).get("Status") == "running"

    def restart(self, service: str) -> None:
        proc = self.compose("restart", "-t", STOP_TIMEOUT, service)
        if proc.returncode != 0:
            raise JobFailed(f"compose restart {service} failed: {proc.stderr.strip()[-300:]}")

    def exec(self, service: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *cmd, timeout=30)

    def services(self) -> list[str]:
        return self.compose("config", "--services").stdout.split()

    def logs(self, service: str, lines: int = 12) -> str:
        return self.compose("logs", "--no-color", "--no-log-prefix", "--tail", str(lines), service).stdout.strip()

    def diagnose(self) -> str:
        """State, exit code, OOM kill and the last log lines of every service."""
        out = []
        for service in self.services():
            st = self.state(service)
            out.append(f"[{service}] state={st.get('Status')} exit={st.get('ExitCode')} oom={st.get('OOMKilled')}"
                       + (f" error={st['Error']!r}" if st.get("Error") else ""))
            out += ["    " + line for line in self.logs(service).splitlines()]
        return "\n".join(out)


@dataclass
class RunResult:
    """One bring-up of a stack: did `up` work, did the job pass, and what the engine showed."""

    label: str
    project: str
    up_rc: int | None = None
    up_error: str = ""
    ok: bool = False
    detail: str = ""
    diagnosis: str = ""
    seconds: float = 0.0
    leftovers: list[str] = field(default_factory=list)  # what `down -v` left behind

    def describe(self) -> str:
        head = f"{self.label} ({self.project}): job {'passed' if self.ok else 'FAILED'}: {self.detail}"
        if self.up_rc:
            head += f"\n  up --wait exit {self.up_rc}: {self.up_error}"
        return head + ("\n" + self.diagnosis if self.diagnosis and not self.ok else "")


@contextlib.contextmanager
def host_port_lock(port: int):
    """Serialise the stacks that bind a fixed port on the host (one machine, several runs)."""
    os.makedirs(images.CACHE_DIR, exist_ok=True)
    with open(os.path.join(images.CACHE_DIR, f".zoo-host-port-{port}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_stack(stack, directory: Path, label: str) -> RunResult:
    """Up (with `--wait`), job check, `down -v --remove-orphans` (always)."""
    compose_file = directory / "compose.yaml"
    project = Project(f"zoo-{stack.name}-{uuid.uuid4().hex[:8]}", compose_file)
    result = RunResult(label, project.name)
    t0 = time.monotonic()
    try:
        up = project.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT), timeout=UP_TIMEOUT + 60)
        result.up_rc = up.returncode
        if up.returncode != 0:
            result.up_error = (up.stderr.strip().splitlines() or [""])[-1][-300:]
        try:
            result.detail = stack.job(project)
            result.ok = True
        except JobFailed as exc:
            result.detail = str(exc)
        except Exception as exc:  # a job check bug or an unexpected protocol answer
            result.detail = f"{type(exc).__name__}: {exc}"
        if not result.ok:
            result.diagnosis = project.diagnose()
    finally:
        project.compose("down", "-v", "--remove-orphans", "-t", STOP_TIMEOUT)
        result.leftovers = leftovers(project.name)
        result.seconds = time.monotonic() - t0
    return result


def leftovers(project: str) -> list[str]:
    """Containers, volumes and networks still labelled with Compose project `project`."""
    label = f"label=com.docker.compose.project={project}"
    out = []
    for kind, cmd in (("container", ["ps", "-a", "-q"]), ("volume", ["volume", "ls", "-q"]),
                      ("network", ["network", "ls", "-q"])):
        found = subprocess.run(["docker", *cmd, "--filter", label], capture_output=True, text=True).stdout.split()
        out += [f"{kind} {i}" for i in found]
    return out


def harden_command() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "harden"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hardener"]


@dataclass
class FixResult:
    """`harden fix FILE --format json --report R.json`: exit code, report, what changed per service."""

    rc: int
    stderr: str
    report: dict | None
    controls: dict[str, list[str]] = field(default_factory=dict)  # service -> controls changed
    default_evidence: int | None = None  # changes whose evidence is "default"; None: no evidence field

    def summary(self) -> str:
        per = "; ".join(f"{s}: {','.join(c) or '-'}" for s, c in self.controls.items())
        return f"harden fix exit {self.rc}; controls changed: {per or 'none'}"


def harden_fix(compose_file: Path, *options: str) -> FixResult:
    """`harden fix` (default options unless `options`) on `compose_file`, in place."""
    report_path = compose_file.parent / "R.json"
    proc = subprocess.run(
        [*harden_command(), "fix", compose_file.name, *options, "--format", "json", "--report", report_path.name],
        capture_output=True, text=True, cwd=compose_file.parent, timeout=120,
    )
    report = None
    if report_path.exists():
        with contextlib.suppress(ValueError):
            report = json.loads(report_path.read_text())
    result = FixResult(proc.returncode, proc.stderr.strip(), report)
    changes = [c for f in (report or {}).get("files", []) for c in f.get("changes", [])]
    for change in changes:
        controls = result.controls.setdefault(change.get("service", "?"), [])
        if change.get("control") not in controls:
            controls.append(change.get("control"))
    for service, controls in result.controls.items():
        controls.sort(key=lambda c: CONTROLS.index(c) if c in CONTROLS else len(CONTROLS))
    if changes and all("evidence" in c for c in changes):
        result.default_evidence = sum(1 for c in changes if c.get("evidence") == "default")
    return result


def prepare(stack, directory: Path, text: str | None = None) -> Path:
    """Write the stack's compose.yaml (or `text`) and its side files into a fresh `directory`."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for rel, content in stack.files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    compose_file = directory / "compose.yaml"
    compose_file.write_text(text if text is not None else stack.compose)
    return compose_file


@dataclass
class ZooOutcome:
    """Original run, `harden fix`, hardened run of one stack."""

    stack: str
    skipped: str = ""
    original: RunResult | None = None
    fix: FixResult | None = None
    hardened: RunResult | None = None


def zoo_run(stack, workdir: Path) -> ZooOutcome:
    """The whole cycle for one stack: original → job, harden fix on a copy → job."""
    outcome = ZooOutcome(stack.name)
    reason = stack.skip_reason()
    if reason:
        outcome.skipped = reason
        return outcome
    with contextlib.ExitStack() as locks:
        if stack.host_port:
            locks.enter_context(host_port_lock(stack.host_port))
            reason = stack.skip_reason()  # checked again now that no other zoo run holds the port
            if reason:
                outcome.skipped = reason
                return outcome
        original = prepare(stack, workdir / "original")
        outcome.original = run_stack(stack, original.parent, "original")
        hardened = prepare(stack, workdir / "hardened")
        outcome.fix = harden_fix(hardened)
        outcome.hardened = run_stack(stack, hardened.parent, "hardened")
    return outcome


def blame(stack, workdir: Path) -> dict[str, RunResult]:
    """Each control applied alone (`harden fix --skip` the other four): {control: hardened run}.

    Tells which controls break the job on their own; a job that only breaks with several
    controls together passes in every row."""
    out: dict[str, RunResult] = {}
    with contextlib.ExitStack() as locks:
        if stack.host_port:
            locks.enter_context(host_port_lock(stack.host_port))
        for control in CONTROLS:
            compose_file = prepare(stack, workdir / f"only-{control}")
            skips = [arg for other in CONTROLS if other != control for arg in ("--skip", other)]
            harden_fix(compose_file, *skips)
            out[control] = run_stack(stack, compose_file.parent, f"only {control}")
    return out
