"""The files a Compose file brings into its project: `include:` entries and `extends: file:`
targets (local ones, followed), and remote references (never followed, reported)."""


from __future__ import annotations

import os
import re

from . import document
from .model import HardenError
from .files import decode, read_bytes


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
            if len(_parsed) >= 4096:  # bounded: the oldest entry goes
                _parsed.pop(next(iter(_parsed)))
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

