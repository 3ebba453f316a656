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

import errno
import os
import re
import stat
from typing import TYPE_CHECKING
from dataclasses import dataclass, replace
from enum import Enum

from . import oracle
from .rewrite import render
from .model import Failure, InputError, Result, Status

if TYPE_CHECKING:
    from .exclude import Exclusion

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
    diff: str | None = None  # the unified diff, kept where the texts are not (`Keep.DIFF`)
    changes: int | None = None  # how many changes, where their records are not kept (a printed diff's)

    @property
    def change_count(self) -> int:
        return self.changes if self.changes is not None else len(self.result.changes)


class Keep(str, Enum):
    """What of a file's outcome a run keeps once the file is done: a run over thousands of
    files keeps what its report needs, not every text it read and wrote."""

    ALL = "all"  # the texts too (stdin, bulk)
    DIFF = "diff"  # the unified diff in place of the texts (fix --diff)
    REPORT = "report"  # what the report says (check, fix)


def kept(outcome: FileOutcome, keep: Keep) -> FileOutcome:
    """`outcome` as `keep` keeps it: without the texts, and with the hardened data of only
    the services a risk is found in (where the report looks for an accepted reason)."""
    if keep is Keep.ALL:
        return outcome
    result = outcome.result
    diff = unified_diff(outcome.path, result) if keep is Keep.DIFF and result.status is Status.CHANGED else None
    planned = {f.service: result.planned[f.service] for f in result.findings if f.service in result.planned}
    return replace(outcome, result=replace(result, original="", text="", planned=planned), diff=diff)


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
    reason = oracle.check(result.original, result.text, project_dir, original_first=_fragment(result.original, project_dir))
    if reason is None:
        return result
    return refused(result, reason)


def _fragment(text: str, project_dir: str) -> bool:
    """The file looks like a fragment Compose refuses loaded alone (`compose_rules`)."""
    from .compose_rules import alone_refused
    from .document import load_data

    try:
        documents = load_data(text)
    except InputError:
        return False
    return len(documents) == 1 and alone_refused(documents[0], project_dir) is not None


def unified_diff(path: str, result: Result) -> str:
    if result.text == result.original:
        return ""
    before = result.original.splitlines(keepends=True)
    after = result.text.splitlines(keepends=True)
    a, b = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    lines = render.unified_diff(before, after, fromfile=a, tofile=b)  # difflib's lines, in linear time
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# The shell's other modules import these from here; defined in modules of their own.
from .atomic import atomic_write  # noqa: E402,F401
from .leftovers import TEMPDIR_KINDS, is_temp_dir, remove_stale_tempdirs, remove_stale_temps, say, temp_dir  # noqa: E402,F401
from .references import is_remote, merged_includes, references, remote_references  # noqa: E402,F401
