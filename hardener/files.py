"""The I/O shell around the core: discovery, reading, atomic writes, batches.

Each file ends as changed / unchanged / skipped / error; one bad file never stops the
rest. Writes are atomic (temp file in the same directory, fsync, `os.replace`, mode
kept), refused when the file changed since it was read, and leave no temp file behind.
A symlink is followed: the file it points to is rewritten and the link stays a link.
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import oracle
from .core import harden_text
from .model import HardenError, Result, Status
from .profile import Profile

MAX_BYTES = 10 * 1024 * 1024
PATTERNS = ("compose.yaml", "compose.yml", "docker-compose*.yaml", "docker-compose*.yml", "*.compose.yaml", "*.compose.yml")


@dataclass(frozen=True)
class FileOutcome:
    path: str
    result: Result
    written: bool = False


def discover(paths: list[str], recursive: bool = False) -> list[str]:
    """Expand directories into the Compose files they hold; keep files and "-" as given."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-" or not path.is_dir():
            out.append(raw)
            continue
        found: set[Path] = set()
        for pattern in PATTERNS:
            found.update(path.rglob(pattern) if recursive else path.glob(pattern))
        out += sorted(str(p) for p in found if p.is_file() and ".git" not in p.parts)
    return out


def decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise HardenError("binary content (NUL byte); not a Compose file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HardenError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def read_bytes(path: str) -> bytes:
    target = Path(path)
    if not target.exists():
        raise HardenError("no such file" + (" (broken symlink)" if target.is_symlink() else ""))
    if target.is_dir():
        raise HardenError("is a directory with no Compose files in it")
    if not target.is_file():
        raise HardenError("not a regular file")
    size = target.stat().st_size
    if size > MAX_BYTES:
        raise HardenError(f"file too large ({size:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
    try:
        return target.read_bytes()
    except PermissionError:
        raise HardenError("permission denied (cannot read)") from None
    except OSError as exc:
        raise HardenError(f"cannot read: {exc.strerror}") from None


def atomic_write(path: str, data: bytes, expect: bytes) -> None:
    """Replace `path` with `data` unless its bytes are no longer `expect`."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        with open(target, "rb") as current:
            if current.read() != expect:
                raise HardenError("file changed on disk since it was read; not overwritten")
        if not os.access(target, os.W_OK):
            raise HardenError("permission denied (cannot write)")
        fd, temp = tempfile.mkstemp(prefix=".harden-", suffix=".tmp", dir=directory)
    except PermissionError:
        raise HardenError("permission denied (cannot write in its directory)") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise HardenError(f"write failed, file left untouched: {exc.strerror or exc}") from None
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def error_result(message: str, text: str = "") -> Result:
    return Result(Status.ERROR, text, text, message=message)


def loader_check(result: Result, project_dir: str, use_compose: bool) -> Result:
    """Refuse a change the real Compose loader rejects where it accepted the original."""
    if not use_compose or result.status is not Status.CHANGED:
        return result
    reason = oracle.check(result.original, result.text, project_dir)
    if reason is None:
        return result
    return Result(Status.ERROR, result.original, result.original, result.changes, message=reason)


def process(path: str, profile: Profile, skip: frozenset[str], write: bool, use_compose: bool = True) -> FileOutcome:
    """Harden one file; write it in place when `write` and something changed."""
    try:
        data = read_bytes(path)
        text = decode(data)
    except HardenError as exc:
        return FileOutcome(path, error_result(exc.message))
    result = harden_text(text, profile, skip)
    result = loader_check(result, os.path.dirname(os.path.abspath(path)), use_compose)
    if not write or result.status is not Status.CHANGED:
        return FileOutcome(path, result)
    try:
        atomic_write(path, result.text.encode("utf-8"), data)
    except HardenError as exc:
        return FileOutcome(path, Result(Status.ERROR, text, text, result.changes, message=exc.message))
    return FileOutcome(path, result, written=True)


def _process_args(args: tuple[str, Profile, frozenset[str], bool, bool]) -> FileOutcome:
    return process(*args)


def process_many(paths: list[str], profile: Profile, skip: frozenset[str], write: bool, jobs: int = 1, use_compose: bool = True) -> list[FileOutcome]:
    work = [(p, profile, skip, write, use_compose) for p in paths]
    if jobs <= 1 or len(paths) < 2:
        return [_process_args(w) for w in work]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_process_args, work, chunksize=4))


def unified_diff(path: str, result: Result) -> str:
    if result.text == result.original:
        return ""
    before = result.original.splitlines(keepends=True)
    after = result.text.splitlines(keepends=True)
    a, b = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    lines = difflib.unified_diff(before, after, fromfile=a, tofile=b)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
