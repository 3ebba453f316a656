"""What `harden verify` and `harden tune` do around their runs: before them, the Compose
binary, consent (`confirmed`: remote includes before Compose loads the file, host-level
access once it is loaded) and the engine check (`preflight`); around them, the signals
and the teardown of every project whatever happens (`run_then_tear_down`). Each message
starts with the command's own prefix, `harden verify:` or `harden tune:`."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

from ..files import excerpt, remote_references
from ..oracle import compose_binary
from . import engine
from .engine import Interrupted, VerifyError
from .proof import Runner
from .risks import host_access

Model = dict[str, Any]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def confirmed(command: str, reasons: list[str], assume_yes: bool) -> bool:
    """True to go on: nothing to confirm, `--yes`, or "y" typed on a terminal. Without a
    terminal and without `--yes` the answer is no."""
    if not reasons:
        return True
    _say(f"harden {command}: this stack reaches into the host when it runs:")
    for reason in reasons:
        _say("  " + reason)
    if assume_yes:
        _say(f"harden {command}: running it anyway (--yes)")
        return True
    if not sys.stdin.isatty():
        _say(f"harden {command}: error: not run: confirm on a terminal, or pass --yes to run it anyway")
        return False
    sys.stderr.write("Run it on this engine anyway? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    _say(f"harden {command}: not run")
    return False


def preflight(command: str, file: str, texts: Sequence[str], assume_yes: bool, load: Callable[[Runner, str], Model],
              errors: tuple[type[Exception], ...] = (VerifyError,)) -> tuple[Runner, list[Model]] | None:
    """The runner for FILE's directory and each of `texts` loaded by Compose (`load`), once
    the Compose binary is there, the remote files the texts include are confirmed (before
    Compose loads them: loading fetches them), the host-level access of what was loaded is
    confirmed and the engine answers. None after saying why not; `errors` are the load's."""
    binary = compose_binary()
    if binary is None:
        _say(f"harden {command}: error: Docker Compose v2 binary not installed (pip install 'harden[engine]')")
        return None
    directory = os.path.dirname(os.path.abspath(file))
    remote = [f"includes a remote file {excerpt(ref, 100)} (docker compose fetches it, with your credentials)"
              for text in dict.fromkeys(texts) for ref in remote_references(text, directory)]
    if not confirmed(command, list(dict.fromkeys(remote)), assume_yes):
        return None
    runner = Runner(binary, directory)
    try:
        models = [load(runner, text) for text in texts]
        if not confirmed(command, list(dict.fromkeys(reason for model in models for reason in host_access(model))), assume_yes):
            return None
        engine.engine_check()
    except (VerifyError, *errors) as exc:
        _say(f"harden {command}: error: {exc}")
        return None
    return runner, models


def run_then_tear_down(command: str, runner: Runner, work: Callable[[], int],
                       errors: tuple[type[Exception], ...] = (VerifyError,)) -> int:
    """`work()`'s exit code (2 after one of `errors`, 130 when interrupted), then every
    project of `runner` torn down, a second Ctrl-C ignored meanwhile; 2 when the teardown
    leaves anything behind and the work had succeeded."""
    old = engine.catch_signals()
    code = 2
    try:
        code = work()
    except (VerifyError, *errors) as exc:
        _say(f"harden {command}: error: {exc}")
        code = 2
    except (Interrupted, KeyboardInterrupt) as exc:
        _say(f"\nharden {command}: interrupted ({exc or 'SIGINT'})")
        code = 130
    finally:
        engine.ignore_signals()  # a second Ctrl-C must not cut the teardown short
        try:
            names = ", ".join(p.name for p in runner.projects) or "nothing started"
            _say(f"harden {command}: tearing down {names}")
            left = runner.down_all()
            if left:
                _say(f"harden {command}: error: teardown left {', '.join(left)}; remove with: docker compose -p <project> down -v")
                code = code or 2
        finally:
            engine.restore_signals(old)
    return code
