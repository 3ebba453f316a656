"""The I/O shell around the core: discovery, reading, atomic writes (batches: project.py).

Each file ends as changed / unchanged / skipped / error; one bad file never stops the
rest. A directory that cannot be listed is an error of its own (never skipped in
silence).

Reading: only regular files, opened without blocking (a FIFO or device swapped in after
the check is refused, never waited on), at most `MAX_BYTES`. What was read remembers the
identity of the file it came from (`ReadBytes.identity`: st_dev, st_ino, st_ctime_ns).

Writing (`atomic_write`), safe in a directory another user controls while harden runs as
root:
- a symlink the user named is followed once (`realpath`): the file it points to is
  rewritten and the link stays a link; the directory is then held by a descriptor and
  every later step works through it, so swapping a directory for a symlink mid-way
  changes nothing;
- before anything is created, the target is opened with O_NOFOLLOW in that directory and
  must be the very file that was read (same st_dev/st_ino, unchanged ctime, same bytes):
  a file replaced since — even by one with identical bytes on a reused inode number — or
  replaced by a symlink is not written;
- the temp file `.harden-XXXXXXXX.tmp` is created with O_CREAT|O_EXCL|O_NOFOLLOW, mode
  0600 (`tempfile.mkstemp`, in the held directory); owner, extended attributes (ACLs are
  the `system.posix_acl_access` attribute) and then mode (with setuid/setgid/sticky: the
  chmod comes after the chown, which clears them) are set on its descriptor, never by
  path; attributes the original lacks (a default ACL of the directory) are removed. As
  root the owner is kept; as another user the owner stays where the kernel allows
  (the group, when the user is a member). An attribute that cannot be kept refuses the
  write;
- the target's identity and bytes, and the temp file's identity, are checked again by
  descriptor just before the rename, fsync first, the directory fsync'ed after.
- Hard links: a file with more than one link is refused with a message (a rename would
  split the links: the other names would keep the old bytes; writing through the shared
  inode would give up atomicity). Break the link, or harden the file by another route.

Only a SIGKILL or power loss between creating the temp file and the rename can leave a
temp file behind: `.harden-XXXXXXXX.tmp` next to the Compose file. It never matches a
discovery pattern, so a run never reads it; the Compose file itself holds either its old
bytes or its complete new bytes, never a mix. The next `harden fix` removes such
leftovers next to the files it processes (`remove_stale_temps`): only names of exactly
that form, only regular files owned by the user running harden, only when older than a
minute (so a concurrent run's temp file is never touched). Harden's own temporary
directories (`harden-<kind>-<pid>-*` in the temp directory) left by a killed run are
removed the same way once their process is gone (`remove_stale_tempdirs`).
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass

from . import document, oracle
from .model import Failure, HardenError, InputError, RefusedError, Result, Status

MAX_BYTES = 10 * 1024 * 1024
PATTERNS = ("compose.yaml", "compose.yml", "compose.*.yaml", "compose.*.yml", "docker-compose*.yaml", "docker-compose*.yml", "*.compose.yaml", "*.compose.yml")
STALE_AFTER = 60.0  # seconds: a harden temp file or directory older than this, from a run that is gone, is a leftover
TEMP_NAME = re.compile(r"\A\.harden-[a-z0-9_]{8}\.tmp\Z")  # what tempfile.mkstemp(prefix=".harden-", suffix=".tmp") makes


@dataclass(frozen=True)
class FileOutcome:
    path: str
    result: Result
    written: bool = False
    profile: str = ""  # name of the profile the file was hardened with


class ReadBytes(bytes):
    """The bytes of a file, with the identity of the file they were read from: st_dev,
    st_ino and st_ctime_ns (a deleted file's inode number is soon reused; any change to
    the file, even of its metadata, moves its ctime)."""

    identity: tuple[int, int, int] | None = None


def excerpt(text: str, limit: int = 120) -> str:
    """A short, escaped excerpt of text that may come from a file or a child process:
    control and other unprintable characters escaped, cut at `limit` characters."""
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def discover(paths: list[str], recursive: bool = False, exclusion: "Exclusion | None" = None) -> list[str]:
    """Expand directories into the Compose files they hold, and the files those bring into
    their project (`references`); keep files and "-" as given. A file named twice
    (`compose.yaml ./compose.yaml $PWD/compose.yaml`, or a symlink to it) is processed once,
    under the first name given. A directory that cannot be listed stays in the list as it
    is: reading it reports why (an error, exit 2). `exclusion` (`exclude.Exclusion`; default:
    its default patterns and .gitignore) says which directories and files a walk leaves
    out; a path given by name is kept unless `exclusion.force`."""
    from .exclude import Exclusion, walk

    exclusion = Exclusion() if exclusion is None else exclusion
    out: list[str] = []
    found_in_dirs: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> bool:
        key = path if path == "-" else os.path.realpath(path)
        if key in seen:
            return False
        seen.add(key)
        out.append(path)
        return True

    for raw in paths:
        if raw == "-" or not os.path.isdir(raw):  # False, not an exception, where it cannot be reached
            if raw == "-" or not (exclusion.force and exclusion.skip(raw, False, given=True)):
                add(raw)
            continue
        if exclusion.force and exclusion.skip(raw, True, given=True):
            continue
        files, unlisted = walk(raw, recursive, PATTERNS, exclusion)
        # A directory with nothing in it stays in the list: `process` reports it as an error.
        if not files and not unlisted:
            add(raw)
        found_in_dirs += [f for f in files if add(f)]
        for path in unlisted:
            add(path)
    queue = list(found_in_dirs)
    while queue:
        for target in references(queue.pop()):
            if add(target):
                queue.append(target)
    return out


# include / extends references that Compose fetches from elsewhere: a URL (oci://, https://,
# git://, ssh://, ...) or the scp-like git form user@host:path.
_REMOTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|(?:^|[\s{:=-])[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:")


def is_remote(ref: str) -> bool:
    """True when Compose would fetch `ref` (an include or `extends.file`) from elsewhere.
    Looked for anywhere in the value, so `${VAR:-git@host:x.git}` counts too."""
    return bool(_REMOTE.search(ref))


def references(path: str) -> list[str]:
    """Local files `path` brings into its project: its `include:` entries (short and long
    syntax) and the `extends: {file: ...}` of its services, relative to its directory.
    Remote includes and paths with `${VAR}` are not followed; an unreadable file has none."""
    return list(dict.fromkeys(target for entry in _referenced(path) for target in entry))


def merged_includes(path: str) -> list[list[str]]:
    """The `include:` entries of `path` that name several files (`path: [a, b]`): Compose
    merges each such list into one project, in that order."""
    return [entry for entry in _referenced(path, includes_only=True) if len(entry) > 1]


def remote_references(text: str, base: str, limit: int = 200) -> list[str]:
    """The remote files (`is_remote`) that Compose would fetch to load `text` with project
    directory `base`: its own `include:` entries and `extends.file`, and those of the local
    files they bring in, followed transitively (at most `limit` files)."""
    found: list[str] = []
    seen: set[str] = set()
    queue: list[tuple[bytes, str]] = [(text.encode("utf-8", "replace"), base)]
    while queue and len(seen) <= limit:
        data, directory = queue.pop()
        for _, refs in _named(data):
            for ref in refs:
                if not isinstance(ref, str) or not ref:
                    continue
                if is_remote(ref):
                    found.append(ref)
                    continue
                if "$" in ref:
                    continue
                target = os.path.realpath(os.path.join(directory, os.path.expanduser(ref)))
                if target in seen:
                    continue
                seen.add(target)
                try:
                    queue.append((read_bytes(target), os.path.dirname(target)))
                except HardenError:
                    continue
    return list(dict.fromkeys(found))


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
            if not isinstance(ref, str) or not ref or "$" in ref or is_remote(ref):
                continue
            target = os.path.normpath(os.path.join(base, os.path.expanduser(ref)))
            if os.path.isfile(target):
                targets.append(target)
        if targets:
            out.append(targets)
    return out


def _named(data: bytes) -> list[tuple[bool, list[object]]]:
    """(is an include, the paths named) of every `include:` entry and `extends: file:`.
    Read with the fast safe loader, looking only at those keys (aliases are never expanded);
    a file it cannot read names nothing (hardening it reports why)."""
    if not _MAY_REFER.search(data):
        return []
    try:
        text = decode(data)
        try:
            trees = document.safe_load_all(text)
        except HardenError:  # YAML 1.2 the safe (1.1) parser refuses, e.g. `[oci://host:1/a:1]`: Compose reads it
            trees = [doc.tree for doc in document.parse(text)[1]]
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


_MAY_REFER = re.compile(rb"""(?m)^["']?include["']?[ \t]*:|^[ \t]+["']?extends["']?[ \t]*:""")

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


def _unlistable(path: str) -> str | None:
    """Why the directory `path` cannot be listed, or None."""
    try:
        with os.scandir(path):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def read_bytes(path: str) -> ReadBytes:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file" + (" (broken symlink)" if os.path.islink(path) else "")) from None
    except PermissionError:
        raise InputError("permission denied (cannot reach the file)") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        why = _unlistable(path)
        if why is not None:
            raise InputError("permission denied (cannot list the directory)" if why == os.strerror(errno.EACCES) else f"cannot list the directory: {why}")
        raise InputError("is a directory with no Compose files in it")
    if not stat.S_ISREG(info.st_mode):
        raise InputError("not a regular file")
    if info.st_size > MAX_BYTES:
        raise InputError(f"file too large ({info.st_size:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
    try:
        # O_NONBLOCK: a FIFO swapped in since the stat must not block the run (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except PermissionError:
        raise InputError("permission denied (cannot read)") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise InputError("not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:  # the file may have grown since the stat
            chunk = os.read(fd, min(1 << 20, MAX_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = ReadBytes(b"".join(chunks))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise InputError(f"file too large (over {MAX_BYTES:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
    data.identity = _identity(opened)
    return data


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_dev, info.st_ino, info.st_ctime_ns


# --- writing -----------------------------------------------------------------------------


def _refuse_os(exc: OSError, what: str = "cannot write") -> RefusedError:
    if isinstance(exc, FileNotFoundError):
        return RefusedError("file removed since it was read; not written")
    if isinstance(exc, PermissionError):
        return RefusedError("permission denied (cannot write in its directory)")
    return RefusedError(f"{what}: {exc.strerror or exc}")


def _open_target(dir_fd: int, name: str) -> int:
    """The target, opened in its directory without following a symlink or blocking."""
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedError("file replaced by a symlink since it was read; not written") from None
        raise _refuse_os(exc) from None


def _same_file(fd: int, identity: tuple[int, int, int], expect: bytes) -> os.stat_result:
    """Refuse unless `fd` is the regular file that was read (same inode, unchanged since)
    and still holds `expect`."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise RefusedError("no longer a regular file; not written")
    if _identity(info) != identity:
        raise RefusedError("file changed on disk since it was read (another file now has its name); not overwritten")
    if os.pread(fd, len(expect) + 1, 0) != expect:
        raise RefusedError("file changed on disk since it was read; not overwritten")
    return info


def _recheck(dir_fd: int, name: str, identity: tuple[int, int, int], expect: bytes) -> None:
    fd = _open_target(dir_fd, name)
    try:
        _same_file(fd, identity, expect)
    finally:
        os.close(fd)


_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


def _xattrs(fd: int) -> list[str]:
    try:
        return os.listxattr(fd)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return []
        raise


def _keep_metadata(source: int, temp: int, info: os.stat_result) -> None:
    """Give the temp file the original's owner, extended attributes and mode, by descriptor.
    Order matters: chown clears setuid/setgid and security.capability, so it comes first."""
    try:
        os.fchown(temp, info.st_uid, info.st_gid)  # as root; a no-op for the file's own user
    except PermissionError:
        try:
            os.fchown(temp, -1, info.st_gid)  # at least the group, where the user is a member
        except PermissionError:
            pass
    wanted = _xattrs(source)
    for name in _xattrs(temp):
        if name not in wanted:  # a default ACL of the directory the original did not have
            try:
                os.removexattr(temp, name)
            except OSError as exc:
                raise RefusedError(f"cannot drop extended attribute {name} the original lacks: {exc.strerror}; not written") from None
    for name in wanted:
        value = os.getxattr(source, name)
        try:
            os.setxattr(temp, name, value)
        except OSError as exc:
            try:
                kept = os.getxattr(temp, name) == value
            except OSError:
                kept = False
            if not kept:
                raise RefusedError(f"cannot keep extended attribute {name}: {exc.strerror}; not written") from None
    os.fchmod(temp, stat.S_IMODE(info.st_mode))


def atomic_write(path: str, data: bytes, expect: bytes) -> None:
    """Replace `path` with `data` unless it is no longer the file whose bytes were `expect`.

    `expect` as returned by `read_bytes` carries the identity of the file read; the target
    must still be that file (plain bytes: the file found now, its bytes compared). The
    comparison is repeated just before the rename, so the window in which another writer's
    change could be lost is as short as the rename itself. See the module docstring."""
    target = os.path.realpath(path)  # a symlink the user named is followed, once
    directory, name = os.path.split(target)
    try:
        dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _refuse_os(exc) from None
    try:
        _write_in(dir_fd, directory or ".", name, data, expect)
    finally:
        os.close(dir_fd)


def _write_in(dir_fd: int, directory: str, name: str, data: bytes, expect: bytes) -> None:
    current = _open_target(dir_fd, name)
    try:
        info = os.fstat(current)
        identity = getattr(expect, "identity", None) or _identity(info)
        try:
            info = _same_file(current, identity, expect)
            if info.st_nlink > 1:
                raise RefusedError(f"file has {info.st_nlink} hard links; a rewrite would split them "
                                   "(the other names would keep the old content); not written: break the link first")
            if not os.access(name, os.W_OK, dir_fd=dir_fd):
                raise RefusedError("permission denied (cannot write)")
            held = f"/proc/self/fd/{dir_fd}"  # the directory held open: a swapped path cannot redirect the temp file
            fd, temp = tempfile.mkstemp(prefix=".harden-", suffix=".tmp", dir=held if os.path.isdir(held) else directory)
        except OSError as exc:
            raise _refuse_os(exc) from None
        temp_name = os.path.basename(temp)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                out = handle.fileno()
                _keep_metadata(current, out, info)
                os.fsync(out)
                _recheck(dir_fd, name, identity, expect)
                placed = os.stat(temp_name, dir_fd=dir_fd, follow_symlinks=False)
                mine = os.fstat(out)
                if (placed.st_dev, placed.st_ino) != (mine.st_dev, mine.st_ino):
                    raise RefusedError("temp file replaced by someone else before the rename; not written")
                os.replace(temp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            try:
                os.unlink(temp_name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):
                raise RefusedError(f"write failed, file left untouched: {exc.strerror or exc}") from None
            raise
    finally:
        os.close(current)
    try:  # make the rename durable; the file is already replaced, so this is best effort
        os.fsync(dir_fd)
    except OSError:
        pass


# --- leftovers of killed runs --------------------------------------------------------------


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


# --- results -------------------------------------------------------------------------------


def error_result(message: str, text: str = "", failure: Failure = Failure.INPUT) -> Result:
    return Result(Status.ERROR, text, text, message=message, failure=failure)


def refused(result: Result, message: str) -> Result:
    """`result` turned into a refusal: the original stays, nothing is written."""
    return Result(Status.ERROR, result.original, result.original, result.changes, message=message, failure=Failure.REFUSED)


def loader_check(result: Result, project_dir: str, use_compose: bool) -> Result:
    """Refuse a change the real Compose loader rejects where it accepted the original, and
    one it could not be asked about (timed out, crashed, a remote include: see `oracle`)."""
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
