"""One run of a stack on the engine, watched: `observe(project, ...) -> StackRun`.

Brings the project up (`docker compose up -d`), waits until every container has run for
a few seconds, has died, or the deadline passed, exercises it (a TCP connect to every
published port on the host, the `x-harden.probe` of each service inside its container,
`--probe` on the host) and reads what it did: state, exit code, restarts, health and OOM
kill (`docker inspect`), memory and PIDs (`docker stats --no-stream`, sampled before and
after the exercise), the TCP ports listening inside (/proc/net/tcp), the log, the paths
written (`docker diff`) and who the processes run as (`docker top`). Only the project's
own containers are touched; bringing it down is the caller's (`engine.Project.down`).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import tarfile
import time
from typing import Any, Callable

import yaml

from . import engine
from .judge import Box, boxes
from .seen import Probe, Seen, StackRun

SETTLE = 3.0  # seconds every container must stay up before it counts as running
POLL = 0.5
PORT_WAIT = 10.0  # seconds a published port gets to answer
LOG_LINES = 300
PROBE_TIMEOUT = 60
PROBE_TRIES = 3
_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE = re.compile(r"([\d.]+)\s*([a-z]+)", re.I)


def _boxes(project: engine.Project) -> list[Box]:
    return boxes(project.containers())


def wait(project: engine.Project, services: list[str], deadline: float) -> list[Box]:
    """Poll until every service's containers are up for SETTLE seconds or dead, or the deadline."""
    since: float | None = None
    while True:
        found = _boxes(project)
        now = time.monotonic()
        settled = found and {b.service for b in found} >= set(services) and all(b.up() or b.dead() for b in found)
        if settled:
            since = since or now
            if now - since >= SETTLE:
                return found
        else:
            since = None
        if now >= deadline:
            return found
        time.sleep(POLL)


def size(text: str) -> int | None:
    """`1.5MiB` -> bytes."""
    match = _SIZE.match(text.strip())
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def stats(ids: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """Container id -> (memory used, PIDs) from one `docker stats --no-stream`."""
    if not ids:
        return {}
    proc = engine.run(["docker", "stats", "--no-stream", "--format", "{{.ID}}|{{.MemUsage}}|{{.PIDs}}", *ids])
    out: dict[str, tuple[int | None, int | None]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            full = next((i for i in ids if i.startswith(parts[0].strip())), None)
            if full:
                pids = parts[2].strip()
                out[full] = (size(parts[1].split("/")[0]), int(pids) if pids.isdigit() else None)
    return out


_ENGINE_DNS = "0B00007F"  # 127.0.0.11, the engine's embedded DNS server, on a port of its choosing


def listening(text: str) -> set[int]:
    """Ports in LISTEN state (0A) of /proc/net/tcp{,6} text, the engine's own DNS server left out."""
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
            address, _, port = fields[1].rpartition(":")
            if address != _ENGINE_DNS:
                ports.add(int(port, 16))
    return ports


def _answers(host: str, port: int, deadline: float, alive: Callable[[], bool]) -> bool:
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return True
        except OSError:
            if time.monotonic() >= deadline or not alive():
                return False
            time.sleep(0.3)


def published(box: Box) -> dict[str, tuple[str, int]]:
    """Container port ("80/tcp") -> (host address to try, host port), TCP only."""
    out = {}
    for port, bindings in ((box.inspect.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if not port.endswith("/tcp") or not bindings:
            continue
        for binding in bindings:
            ip, number = binding.get("HostIp") or "", binding.get("HostPort") or ""
            if number.isdigit():
                out[port] = ("127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip, int(number))
                break
    return out


def _probe(args: list[str], where: str, command: str, *, env: dict[str, str] | None = None, cwd: str | None = None) -> Probe:
    proc = None
    for attempt in range(PROBE_TRIES):
        if env is None:
            proc = engine.run(args, timeout=PROBE_TIMEOUT)
        else:
            try:
                proc = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT,
                                      env=env, cwd=cwd, start_new_session=True)
            except subprocess.TimeoutExpired:
                proc = subprocess.CompletedProcess(args, 124, "", f"timed out after {PROBE_TIMEOUT} s")
        if proc.returncode == 0:
            break
        if attempt + 1 < PROBE_TRIES:
            time.sleep(2)
    assert proc is not None
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return Probe(where, command, proc.returncode, "\n".join(lines[-5:]))


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def host_probe(command: str, project: engine.Project, found: list[Box]) -> Probe:
    """`--probe CMD` on the host (`sh -c CMD`), with HARDEN_PROJECT and, per published TCP port,
    HARDEN_PORT_<SERVICE>_<PORT>=<host port> in its environment."""
    env = dict(os.environ, HARDEN_PROJECT=project.name)
    for box in found:
        for port, (_, number) in published(box).items():
            env[f"HARDEN_PORT_{_env_name(box.service)}_{port.split('/')[0]}"] = str(number)
    return _probe(["sh", "-c", command], "host", command, env=env, cwd=project.directory)


def list_dir(container: str, path: str, running: bool) -> list[str] | None:
    """The entries of directory `path` in the container ([] where it does not exist), None
    where it cannot be read: `ls -A` inside, else the headers of a `docker cp` archive."""
    if running:
        proc = engine.run(["docker", "exec", container, "ls", "-A1", path], timeout=engine.PEEK_TIMEOUT)
        if proc.returncode == 0:
            return [line for line in proc.stdout.splitlines() if line]
        if "No such file" in proc.stderr:
            return []
    try:
        with subprocess.Popen(["docker", "cp", f"{container}:{path}", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True) as child:
            names: set[str] = set()
            try:
                with tarfile.open(fileobj=child.stdout, mode="r|") as archive:
                    for member in archive:
                        parts = member.name.split("/")
                        if len(parts) > 1 and parts[1]:
                            names.add(parts[1])
                        if len(names) > 1000:
                            break
            except tarfile.TarError:
                err = child.stderr.read().decode(errors="replace") if child.stderr else ""
                child.kill()
                return [] if "Could not find" in err or "No such" in err else None
            child.kill()
            return sorted(names)
    except OSError:
        return None


def _seen(box: Box, used: dict[str, tuple[int | None, int | None]], ports: dict[str, bool], network_mode: str) -> Seen:
    host, state = box.host, box.state
    mounts = {m.get("Destination", ""): m.get("Type", "") for m in box.inspect.get("Mounts") or []}
    mounts.update({target: "tmpfs" for target in (host.get("Tmpfs") or {})})
    memory, pids = used.get(box.id, (None, None))
    return Seen(
        service=box.service, label=box.label, status=str(state.get("Status") or "?"),
        exit_code=state.get("ExitCode"), restarts=int(box.inspect.get("RestartCount") or 0) + (1 if state.get("Restarting") else 0),
        health=box.health(), oom=bool(state.get("OOMKilled")), completed=box.completed(), error=str(state.get("Error") or ""),
        user=str((box.inspect.get("Config") or {}).get("User") or ""), read_only=bool(host.get("ReadonlyRootfs")),
        mounts=mounts, memory=memory, memory_limit=host.get("Memory") or None, pids=pids,
        pids_limit=host.get("PidsLimit") if (host.get("PidsLimit") or 0) > 0 else None, ports=ports,
        host_network=network_mode == "host",
    )


def probes_in(text: str) -> dict[str, str]:
    """service -> its `x-harden.probe` (Compose drops `x-` keys from the model it prints, so
    they are read from the text)."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    services = tree.get("services") if isinstance(tree, dict) else None
    out = {}
    for name, service in (services or {}).items() if isinstance(services, dict) else ():
        block = service.get("x-harden") if isinstance(service, dict) else None
        probe = block.get("probe") if isinstance(block, dict) else None
        if isinstance(probe, str) and probe.strip():
            out[str(name)] = probe
    return out


def observe(project: engine.Project, label: str, model: dict[str, Any], timeout: float, host_probes: tuple[str, ...] = (),
            listing: Callable[[Seen], list[str]] | None = None, hook: Callable[[list[Box]], None] | None = None) -> StackRun:
    """Bring `project` up as it is, exercise it, and read what it did (the module docstring).
    `listing` names the directories to list in a container; `hook` sees the containers
    while they still run (`verify` judges their hardening there)."""
    service_probes = probes_in(project.text)
    t0 = time.monotonic()
    run = StackRun(label, project.name)
    services = sorted(model.get("services") or {})
    up = project.compose("up", "-d", "--quiet-pull", timeout=timeout + 30)
    found = _boxes(project)
    if up.returncode != 0 and not any(not str(b.state.get("StartedAt", "")).startswith("0001-") for b in found):
        run.up_error = engine.last_line(up)
    if up.returncode == 0 or found:
        found = wait(project, services, time.monotonic() + timeout)
    samples = [stats([b.id for b in found if b.state.get("Status") == "running"])]
    ports: dict[str, dict[str, bool]] = {}
    deadline = time.monotonic() + PORT_WAIT
    for box in found:
        alive = (lambda b=box: b.state.get("Status") == "running")  # noqa: E731
        ports[box.id] = {port: _answers(host, number, deadline, alive) for port, (host, number) in published(box).items()}
    probes: dict[str, list[Probe]] = {}
    for box in found:
        command = service_probes.get(box.service)
        if command and box.state.get("Status") == "running":
            probes[box.id] = [_probe(["docker", "exec", box.id, *shlex.split(command)], box.label, command)]
    run.host_probes = [host_probe(command, project, found) for command in host_probes]
    if hook is not None:
        hook(found)
    final = {b.id: b for b in _boxes(project)}
    found = [final.get(b.id, b) for b in found]
    samples.append(stats([b.id for b in found if b.state.get("Status") == "running"]))
    used = {i: (max((s[i][0] or 0 for s in samples if i in s), default=0) or None,
                max((s[i][1] or 0 for s in samples if i in s), default=0) or None) for i in {k for s in samples for k in s}}
    for box in found:
        mode = str(((model.get("services") or {}).get(box.service) or {}).get("network_mode") or "")
        seen = _seen(box, used, ports.get(box.id, {}), mode)
        seen.probes = probes.get(box.id, [])
        running = seen.status == "running"
        seen.logs = engine.logs(box.id, LOG_LINES)
        diff = engine.run(["docker", "diff", box.id])
        seen.diff = [(line[:1], line[2:]) for line in diff.stdout.splitlines() if len(line) > 2] if diff.returncode == 0 else []
        if running:
            top = engine.run(["docker", "top", box.id, "-o", "pid,uid,gid,comm"], timeout=engine.PEEK_TIMEOUT)
            rows = [line.split(None, 3) for line in top.stdout.splitlines()[1:]] if top.returncode == 0 else None
            seen.procs = [(r[1], r[2], r[3] if len(r) > 3 else "?") for r in rows if len(r) >= 3] if rows is not None else None
            if not seen.host_network:
                net = engine.run(["docker", "exec", box.id, "cat", "/proc/net/tcp", "/proc/net/tcp6"], timeout=engine.PEEK_TIMEOUT)
                seen.listening = tuple(sorted(listening(net.stdout))) if net.returncode == 0 else None
        for path in (listing(seen) if listing else []):
            seen.listings[path] = list_dir(box.id, path, running)
        run.seen.append(seen)
    for name in services:
        if not any(s.service == name for s in run.seen):
            run.seen.append(Seen(name, name))
    run.seconds = time.monotonic() - t0
    return run
