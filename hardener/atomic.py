"""Atomic writes that an attacker who owns the directory cannot redirect: everything by
descriptor (see the module docstring of `files` for the promises)."""


from __future__ import annotations

import errno
import os
import stat
import tempfile

from .model import RefusedError
from .files import _identity


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
    if _identity(info) != identity:  # edited in place, or another file under its name (maybe on the same inode number)
        raise RefusedError("file changed on disk since it was read (edited, or replaced by another file); not overwritten")
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
