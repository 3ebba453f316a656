"""What a killed run leaves behind (temp files, temp directories of harden's own naming) and
their removal by the next run."""


from __future__ import annotations

import os
import re
import shutil
import stat
import sys
import tempfile
import time

from .files import STALE_AFTER, TEMP_NAME


def _stale(info: os.stat_result, now: float) -> bool:
    return info.st_uid == os.geteuid() and now - info.st_mtime >= STALE_AFTER


def remove_stale_temps(paths: list[str], pattern: re.Pattern[str] = TEMP_NAME) -> list[str]:
    """Remove temp files a killed `harden fix` left next to `paths` (see the module
    docstring for which; `pattern`: the names harden gives them); return their paths."""
    removed: list[str] = []
    now = time.time()
    for directory in sorted({os.path.dirname(os.path.realpath(p)) for p in paths if p != "-"}):
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            for name in os.listdir(dir_fd):
                if not pattern.match(name):
                    continue
                try:
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and _stale(info, now):
                        os.unlink(name, dir_fd=dir_fd)
                        removed.append(os.path.join(directory, name))
                except OSError:
                    continue
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return removed


TEMPDIR_KINDS = ("bulk", "project", "oracle", "run")
_TEMPDIR = re.compile(r"\Aharden-(" + "|".join(TEMPDIR_KINDS) + r")-(\d+)-[a-z0-9_]{8}\Z")


def temp_dir(kind: str) -> str:
    """A new private temporary directory named so a later run can recognise it as harden's
    own: `harden-<kind>-<pid>-XXXXXXXX` in the temp directory."""
    assert kind in TEMPDIR_KINDS
    return tempfile.mkdtemp(prefix=f"harden-{kind}-{os.getpid()}-")


def is_temp_dir(path: str, kind: str) -> bool:
    """True when `path` is named as `temp_dir(kind)` names them, in the temp directory."""
    match = _TEMPDIR.match(os.path.basename(path))
    return bool(match) and match.group(1) == kind and os.path.dirname(path) == tempfile.gettempdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_tempdirs() -> list[str]:
    """Remove harden's own temporary directories (`temp_dir`) that a killed run left: only
    directories of exactly that naming, owned by this user, older than a minute, whose
    process is gone. Returns their paths."""
    root = tempfile.gettempdir()
    removed: list[str] = []
    now = time.time()
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        match = _TEMPDIR.match(name)
        if not match or int(match.group(2)) == os.getpid():
            continue
        path = os.path.join(root, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and _stale(info, now) and not _alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.lexists(path):
                removed.append(path)
    return removed


def say(message: str) -> None:
    """One line to stderr (the summary channel)."""
    print(f"harden: {message}", file=sys.stderr, flush=True)
