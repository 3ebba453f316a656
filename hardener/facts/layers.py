"""An image's file tree rebuilt from its layers (tar streams, lowest first), headers only.

Every entry keeps its type, owner, mode and link target; the bytes are kept only for the
regular files `keep(path, size)` asks for. Whiteouts apply as the engine applies them: a
`.wh.NAME` entry deletes NAME (and what is below it) from the layers underneath, a
`.wh..wh..opq` entry empties its directory of what the layers underneath put there.
Lookups follow symlinks, also in the middle of a path (`/var/run` -> `/run`).

Each file also keeps its `security.capability` (file capabilities, from the member's pax
records), its size and the layer its bytes are in, so that files wanted only once the
tree is known (the scripts an entrypoint runs from a directory) can be read afterwards
from just those layers (`reread`, given by the registry client).
"""

from __future__ import annotations

import posixpath
import tarfile
from dataclasses import dataclass
from typing import Callable

from . import caps
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
    capability: bytes | None = None  # the raw security.capability extended attribute
    size: int = 0
    layer: int = -1  # index of the layer holding the bytes (a file), under the name `origin`
    origin: str = ""


def member_path(name: str) -> str:
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

    def __init__(self, keep: Callable[[str, int], bool] = lambda path, size: False,
                 reread: Callable[[int, set[str]], dict[str, bytes]] | None = None) -> None:
        """`keep(path, size)`: keep that file's bytes; `reread(layer, paths)`: the bytes
        of those files (their names in that layer) from the layer again, {} when it
        cannot be read; None: files not kept stay unread."""
        self.keep = keep
        self.reread = reread
        self.layers = 0
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
        index = self.layers
        self.layers += 1
        for member in tar:
            path = member_path(member.name)
            base = posixpath.basename(path)
            if base == _OPAQUE:
                emptied.add(posixpath.dirname(path))
                continue
            if base.startswith(_WHITEOUT):
                gone.add(posixpath.join(posixpath.dirname(path), base[len(_WHITEOUT):]))
                continue
            entry = Entry(_kind(member), member.uid, member.gid, member.mode & 0o7777,
                          capability=caps.capability(member.pax_headers))
            if entry.kind in ("symlink", "hardlink"):
                entry.link = member.linkname
            elif entry.kind == "file":
                entry.size, entry.layer, entry.origin = member.size, index, path
                if self.keep(path, member.size):
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
                target = added.get(member_path(entry.link)) or self.entries.get(member_path(entry.link))
                if target is not None:
                    entry = Entry("file", target.uid, target.gid, target.mode, data=target.data,
                                  capability=entry.capability or target.capability, size=target.size,
                                  layer=target.layer, origin=target.origin)
            self.entries[path] = entry

    def lookup(self, path: str) -> Entry | None:
        """The entry at `path`, symlinks followed (also those of parent directories)."""
        found = self._walk(path)
        return found[1] if found else None

    def _walk(self, path: str, implicit: bool = False) -> tuple[str, Entry] | None:
        """(the path with every symlink resolved, its entry), None when absent; with
        `implicit`, a directory the layers never listed but hold entries below is one."""
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        current = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            candidate = posixpath.normpath(posixpath.join(current, name))
            entry = self.entries.get(candidate)
            if entry is None:
                if not parts:
                    if implicit and self._has_below(candidate):
                        return candidate, Entry("dir", 0, 0, 0o755)
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
        entry = self.entries.get(current) or (Entry("dir", 0, 0, 0o755) if self._has_below(current) else None)
        return (current, entry) if entry is not None else None

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

    def xattrs(self, path: str) -> dict[str, bytes] | None:
        """The file's `security.capability` (the one attribute kept), {} without one;
        None when `path` is not a regular file."""
        entry = self.lookup(path)
        if entry is None or entry.kind != "file":
            return None
        return {caps.XATTR: entry.capability} if entry.capability is not None else {}

    def files_below(self, directory: str, match: Callable[[str], bool], limit: int, count: int
                    ) -> tuple[list[tuple[str, bytes | None]], bool] | None:
        """(files, more): the regular files below `directory` (symlinks followed) whose
        relative path `match`es, by path, at most `count`, each with its bytes (None when
        over `limit` or not readable); the bytes not kept are read again from their
        layers through `reread`. None when `directory` is not a directory."""
        found = self._walk(directory, implicit=True)
        if found is None or found[1].kind != "dir":
            return None
        prefix = found[0].rstrip("/") + "/"
        chosen: list[tuple[str, Entry]] = []
        more = False
        for key in sorted(k for k in self.entries if k.startswith(prefix) and match(k[len(prefix):])):
            entry = self.lookup(key)
            if entry is None or entry.kind != "file":
                continue
            if len(chosen) == count:
                more = True
                break
            chosen.append((posixpath.join(posixpath.normpath(directory), key[len(prefix):]), entry))
        missing: dict[int, set[str]] = {}
        for _, entry in chosen:
            if entry.data is None and entry.size <= limit and entry.layer >= 0 and entry.origin:
                missing.setdefault(entry.layer, set()).add(entry.origin)
        if missing and self.reread is not None:
            for layer, origins in sorted(missing.items()):
                got = self.reread(layer, origins)
                for _, entry in chosen:
                    if entry.layer == layer and entry.origin in got:
                        entry.data = got[entry.origin]
        return [(path, entry.data if entry.data is not None and len(entry.data) <= limit else None)
                for path, entry in chosen], more
