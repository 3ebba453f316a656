"""An image's file tree rebuilt from its layers (tar streams, lowest first), headers only.

Every entry keeps its type, owner, mode and link target; the bytes are kept only for the
regular files `keep(path, size)` asks for. Whiteouts apply as the engine applies them: a
`.wh.NAME` entry deletes NAME (and what is below it) from the layers underneath, a
`.wh..wh..opq` entry empties its directory of what the layers underneath put there.
Lookups follow symlinks, also in the middle of a path (`/var/run` -> `/run`).
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass
from typing import Callable

from .model import Owner

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40
MAX_ENTRIES = 1_000_000


@dataclass
class Entry:
    kind: str  # "file", "dir", "symlink", "hardlink", "other"
    uid: int
    gid: int
    mode: int
    link: str = ""
    data: bytes | None = None


def _path(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return posixpath.normpath("/" + name)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


class LayerTree:
    """The merged file tree of the layers added so far; a `FileSource`."""

    def __init__(self, keep: Callable[[str, int], bool] = lambda path, size: False) -> None:
        self.keep = keep
        self.entries: dict[str, Entry] = {"/": Entry("dir", 0, 0, 0o755)}

    def _prune(self, gone: set[str], emptied: set[str]) -> None:
        """Drop the entries at `gone` and below, and those below `emptied`: one pass."""
        if not gone and not emptied:
            return

        def hidden(key: str) -> bool:
            if key in gone:
                return True
            while key != "/":
                key = posixpath.dirname(key)
                if key in gone or key in emptied:
                    return True
            return False

        self.entries = {k: v for k, v in self.entries.items() if k == "/" or not hidden(k)}

    def add_layer(self, tar: tarfile.TarFile) -> None:
        """Apply one layer, its members read in order (a forward-only stream will do).
        Raises ValueError for a tree of more than MAX_ENTRIES entries."""
        added: dict[str, Entry] = {}
        gone: set[str] = set()
        emptied: set[str] = set()
        for member in tar:
            path = _path(member.name)
            base = posixpath.basename(path)
            if base == _OPAQUE:
                emptied.add(posixpath.dirname(path))
                continue
            if base.startswith(_WHITEOUT):
                gone.add(posixpath.join(posixpath.dirname(path), base[len(_WHITEOUT):]))
                continue
            entry = Entry(_kind(member), member.uid, member.gid, member.mode & 0o7777)
            if entry.kind in ("symlink", "hardlink"):
                entry.link = member.linkname
            elif entry.kind == "file" and self.keep(path, member.size):
                stream = tar.extractfile(member)
                entry.data = stream.read() if stream is not None else None
            added[path] = entry
            if len(added) + len(self.entries) > MAX_ENTRIES:
                raise ValueError(f"more than {MAX_ENTRIES} files")
        for path, entry in added.items():
            previous = self.entries.get(path)
            if entry.kind != "dir" and previous is not None and previous.kind == "dir":
                emptied.add(path)  # a file replacing a directory hides what was in it
        self._prune(gone, emptied)
        for path, entry in added.items():
            if entry.kind == "hardlink":
                target = added.get(_path(entry.link)) or self.entries.get(_path(entry.link))
                if target is not None:
                    entry = Entry("file", target.uid, target.gid, target.mode, data=target.data)
            self.entries[path] = entry

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path`, symlinks followed (also those of parent directories)."""
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        current = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            candidate = posixpath.normpath(posixpath.join(current, name))
            entry = self.entries.get(candidate)
            if entry is None:
                if not parts:
                    return None
                current = candidate  # a parent the layers never listed: a plain directory
                continue
            if entry.kind == "symlink":
                hops += 1
                if hops > _MAX_LINKS:
                    return None
                target = entry.link
                base = "/" if target.startswith("/") else current
                parts = [p for p in target.split("/") if p] + parts
                current = base
                continue
            current = candidate
        return self.entries.get(current) or (Entry("dir", 0, 0, 0o755) if self._has_below(current) else None)

    def _has_below(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(key.startswith(prefix) for key in self.entries)

    def read(self, path: str, limit: int) -> bytes | None:
        entry = self.lookup(path)
        if entry is None or entry.kind != "file" or entry.data is None or len(entry.data) > limit:
            return None
        return entry.data

    def stat(self, path: str) -> Owner | None:
        entry = self.lookup(path)
        return (entry.uid, entry.gid, entry.mode) if entry is not None else None
