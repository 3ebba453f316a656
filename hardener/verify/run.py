"""`run_verify`: the texts to run (the original and the hardened one), consent (`preflight`),
the runs (`functional`: the original, an upgrade in place, the hardened stack; judged for
hardening and against the original), and the teardown of every project whatever happens
(`preflight.run_then_tear_down`)."""

from __future__ import annotations

import sys

from ..core import harden_text
from ..files import decode, read_bytes
from ..image_lookup import FactsOptions, facts_for_text
from ..model import HardenError, Project as Planning, Status
from ..profile import Profile
from . import engine
from .functional import file_caps, load, run_function
from .hints import unhardened
from .judge import Box, boxes, parse_status, parse_top
from .preflight import preflight, run_then_tear_down
from .proof import Stack


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


def _look(project: engine.Project | None, found: list[Box]) -> None:
    """Read /proc/<pid>/status of the main process and `docker top` of each running container,
    then (given the project) inspect them all once more to catch one that died meanwhile."""
    for box in found:
        if box.state.get("Status") == "running":
            pid = main_pid(box)
            box.status = parse_status(engine.proc_status(box.id, pid)) if pid is not None else None
            box.procs = parse_top(engine.top(box.id))
    if project is not None:
        final = {b.id: b for b in boxes(project.containers())}
        for box in found:
            if box.id in final:
                box.inspect = final[box.id].inspect


def _peek(found: list[Box]) -> None:
    _look(None, found)


def _read(file: str) -> str | None:
    try:
        return decode(read_bytes(file))
    except HardenError as exc:
        _say(f"harden verify: error: {file}: {exc.message}")
        return None


def _texts(file: str, profile: Profile, skips: frozenset[str], harden_first: bool, baseline: str | None,
           facts: FactsOptions) -> tuple[str, str, dict] | None:
    """(original, hardened, image facts): FILE and FILE hardened in memory as `fix` would
    harden it (with its images' facts); with `--as-is`, the file given as `baseline` (else
    FILE without the hardening keys) and FILE. None after saying why not."""
    text = _read(file)
    if text is None:
        return None
    images = facts_for_text(text, facts)
    if not harden_first:
        original = _read(baseline) if baseline else unhardened(text)
        if original is None:
            return None
        _say(f"harden verify: {file}: run as it is, compared with "
             + (baseline or "itself without its hardening keys (user, read_only, cap_drop ALL, no-new-privileges, limits)"))
        return original, text, images
    result = harden_text(text, profile, skips, Planning(images=images))
    if result.status in (Status.ERROR, Status.SKIPPED):
        _say(f"harden verify: error: {file}: {result.message}")
        return None
    _say(f"harden verify: {file}: hardened in memory ({len(result.changes)} change(s)); the file is not modified")
    return text, result.text, images


def run_verify(file: str, profile: Profile, skips: frozenset[str], timeout: int, harden_first: bool = True,
               assume_yes: bool = False, baseline: str | None = None, probes: tuple[str, ...] = (), check_fixes: bool = True,
               facts: FactsOptions = FactsOptions(enabled=False)) -> int:
    """Run the original and FILE hardened in memory (or, with `harden_first` False, FILE as
    it is against `baseline` or FILE unhardened), judge, tear every project down. A stack
    with host-level access (`risks`) or a remote include runs only once confirmed."""
    texts = _texts(file, profile, skips, harden_first, baseline, facts)
    if texts is None:
        return 2
    original, hardened, images = texts
    ready = preflight("verify", file, (original, hardened), assume_yes,
                      lambda runner, text: load(runner.binary, text, runner.directory))
    if ready is None:
        return 2
    runner, (model_original, model_hardened) = ready
    stack = Stack(original, hardened, model_original, model_hardened, timeout, probes, file_caps(model_hardened, images))
    return run_then_tear_down("verify", runner, lambda: run_function(runner, stack, _peek, check_fixes))
