"""The I/O shell around the core: discovery, reading, atomic writes (batches: project.py).

Each file ends as changed / unchanged / skipped / error; one bad file never stops the
rest. Writes are atomic (temp file in the same directory, fsync, `os.replace`, mode
kept, owner kept where permitted), refused when the file changed since it was read, and
leave no temp file behind. A symlink is followed: the file it points to is rewritten and
the link stays a link.

Only a SIGKILL or power loss between creating the temp file and the rename can leave one
behind: `.harden-XXXXXXXX.tmp` next to the Compose file. It never matches a discovery
pattern, so a rerun never reads it, and it is never removed automatically (harden writes
only the Compose files it was given); delete it by hand. The Compose file itself then
holds either its old bytes or its complete new bytes, never a mix.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import document, oracle
from .model import Failure, HardenError, InputError, RefusedError, Result, Status

MAX_BYTES = 10 * 1024 * 1024
PATTERNS = ("compose.yaml", "compose.yml", "compose.*.yaml", "compose.*.yml", "docker-compose*.yaml", "docker-compose*.yml", "*.compose.yaml", "*.compose.yml")


@dataclass(frozen=True)
class FileOutcome:
    path: str
    result: Result
    written: bool = False
    profile: str = ""  # name of the profile the file was hardened with


def discover(paths: list[str], recursive: bool = False) -> list[str]:
    """Expand directories into the Compose files they hold, and the files those bring into
    their project (`references`); keep files and "-" as given."""
    out: list[str] = []
    found_in_dirs: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw == "-" or not os.path.isdir(raw):  # False, not an exception, where it cannot be reached
            out.append(raw)
            continue
        found: set[Path] = set()
        for pattern in PATTERNS:
            found.update(path.rglob(pattern) if recursive else path.glob(pattern))
        files = sorted(str(p) for p in found if os.path.isfile(p) and ".git" not in p.parts)
        # A directory with nothing in it stays in the list: `process` reports it as an error.
        out += files or [raw]
        found_in_dirs += files
    seen = {os.path.realpath(p) for p in out if p != "-"}
    queue = list(found_in_dirs)
    while queue:
        for target in references(queue.pop()):
            if os.path.realpath(target) not in seen:
                seen.add(os.path.realpath(target))
                out.append(target)
                queue.append(target)
    return out


_REMOTE = ("git@", "oci://", "http://", "https://", "ssh://", "git://")


def references(path: str) -> list[str]:
    """Local files `path` brings into its project: its `include:` entries (short and long
    syntax) and the `extends: {file: ...}` of its services, relative to its directory.
    Remote includes and paths with `${VAR}` are not followed; an unreadable file has none."""
    return list(dict.fromkeys(target for entry in _referenced(path) for target in entry))


def merged_includes(path: str) -> list[list[str]]:
    """The `include:` entries of `path` that name several files (`path: [a, b]`): Compose
    merges each such list into one project, in that order."""
    return [entry for entry in _referenced(path, includes_only=True) if len(entry) > 1]


_parsed: dict[tuple[str, int, int], list[tuple[bool, list[object]]]] = {}


def _referenced(path: str, includes_only: bool = False) -> list[list[str]]:
    """Per `include:` entry / `extends`, the local files it names that exist."""
    try:
        info = os.stat(path)
        key = (os.path.realpath(path), info.st_mtime_ns, info.st_size)
        if key not in _parsed:
            _parsed[key] = _named(read_bytes(path))
    except (OSError, HardenError, RecursionError):
        return []
    base = os.path.dirname(path)
    out = []
    for is_include, refs in _parsed[key]:
        if includes_only and not is_include:
            continue
        targets = []
        for ref in refs:
            if not isinstance(ref, str) or not ref or "$" in ref or ref.startswith(_REMOTE):
                continue
            target = os.path.normpath(os.path.join(base, os.path.expanduser(ref)))
            if os.path.isfile(target):
                targets.append(target)
        if targets:
            out.append(targets)
    return out


_MAY_REFER = re.compile(rb"""(?m)^["']?include["']?[ \t]*:|^[ \t]+["']?extends["']?[ \t]*:""")


def _named(data: bytes) -> list[tuple[bool, list[object]]]:
    """(is an include, the paths named) of every `include:` entry and `extends: file:`.
    Read with the fast safe loader, looking only at those keys (aliases are never expanded);
    a file it cannot read names nothing (hardening it reports why)."""
    if not _MAY_REFER.search(data):
        return []
    try:
        trees = document.safe_load_all(decode(data))
    except (HardenError, ValueError, TypeError, RecursionError):
        return []
    named: list[tuple[bool, list[object]]] = []
    for tree in trees:
        tree = tree if isinstance(tree, dict) else {}
        includes = tree.get("include")
        for entry in includes if isinstance(includes, list) else []:
            value = entry.get("path") if isinstance(entry, dict) else entry
            named.append((True, list(value) if isinstance(value, list) else [value]))
        services = tree.get("services")
        for service in services.values() if isinstance(services, dict) else []:
            extends = service.get("extends") if isinstance(service, dict) else None
            if isinstance(extends, dict):
                named.append((False, [extends.get("file")]))
    return named


_UTF16_32 = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def decode(data: bytes) -> str:
    for bom, name in _UTF16_32.items():
        if data.startswith(bom):
            raise InputError(f"{name} text; only UTF-8 is accepted, convert the file to UTF-8")
    if b"\x00" in data[:8192]:
        raise InputError("binary content (NUL byte); not a Compose file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def read_bytes(path: str) -> bytes:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file" + (" (broken symlink)" if os.path.islink(path) else "")) from None
    except PermissionError:
        raise InputError("permission denied (cannot reach the file)") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError("permission denied (cannot list the directory)")
        raise InputError("is a directory with no Compose files in it")
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file")
    if info.st_size > MAX_BYTES:
        raise InputError(f"file too large ({info.st_size:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # the file may have grown since the stat
    except PermissionError:
        raise InputError("permission denied (cannot read)") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"file too large (over {MAX_BYTES:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
    return data


def _unchanged(target: str, expect: bytes) -> None:
    try:
        with open(target, "rb") as current:
            same = current.read(len(expect) + 1) == expect
    except FileNotFoundError:
        raise RefusedError("file removed since it was read; not written") from None
    if not same:
        raise RefusedError("file changed on disk since it was read; not overwritten")


def atomic_write(path: str, data: bytes, expect: bytes) -> None:
    """Replace `path` with `data` unless its bytes are no longer `expect`.

    The comparison is repeated just before the rename, so the window in which another
    writer's change could be lost is as short as the rename itself."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        info = os.stat(target)
        _unchanged(target, expect)
        if not os.access(target, os.W_OK):
            raise RefusedError("permission denied (cannot write)")
        fd, temp = tempfile.mkstemp(prefix=".harden-", suffix=".tmp", dir=directory)
    except FileNotFoundError:
        raise RefusedError("file removed since it was read; not written") from None
    except PermissionError:
        raise RefusedError("permission denied (cannot write in its directory)") from None
    except OSError as exc:
        raise RefusedError(f"cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, stat.S_IMODE(info.st_mode))
        try:
            os.chown(temp, info.st_uid, info.st_gid)  # keep the owner (possible as root, or the same user)
        except PermissionError:
            pass
        _unchanged(target, expect)
        os.replace(temp, target)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise RefusedError(f"write failed, file left untouched: {exc.strerror or exc}") from None
        raise
    try:  # make the rename durable; the file is already replaced, so this is best effort
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def error_result(message: str, text: str = "", failure: Failure = Failure.INPUT) -> Result:
    return Result(Status.ERROR, text, text, message=message, failure=failure)


def refused(result: Result, message: str) -> Result:
    """`result` turned into a refusal: the original stays, nothing is written."""
    return Result(Status.ERROR, result.original, result.original, result.changes, message=message, failure=Failure.REFUSED)


def loader_check(result: Result, project_dir: str, use_compose: bool) -> Result:
    """Refuse a change the real Compose loader rejects where it accepted the original."""
    if not use_compose or result.status is not Status.CHANGED:
        return result
    reason = oracle.check(result.original, result.text, project_dir)
    if reason is None:
        return result
    return refused(result, reason)


def unified_diff(path: str, result: Result) -> str:
    if result.text == result.original:
        return ""
    before = result.original.splitlines(keepends=True)
    after = result.text.splitlines(keepends=True)
    a, b = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    lines = difflib.unified_diff(before, after, fromfile=a, tofile=b)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
