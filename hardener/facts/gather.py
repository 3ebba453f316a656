"""From an image config (and, when a source can read them, its files) to `ImageFacts`.

The engine and the registry hand over the same config object (Docker's `Config` /
OCI's `config`: `User`, `Entrypoint`, `Cmd`, `Volumes`, `Env`, `WorkingDir`,
`ExposedPorts`, `Labels`). Files come through a `FileSource`: `read` a regular file and
`stat` a path, symlinks followed, None when it is not there; a source may also list the
scripts below a directory (`files_below`) and give a file's extended attributes
(`xattrs`), which the scripts an entrypoint runs from a directory and the file
capabilities of the program need (a source without them gives neither).
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import replace
from typing import Any, Callable, Mapping, Protocol

from . import accounts, caps
from .entrypoint import analyse_argv, analyse_script, program_names, script_target
from .model import EntrypointFacts, ImageFacts, Owner

PASSWD_LIMIT = 4 << 20
SCRIPT_LIMIT = 1 << 20
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIR_SCRIPT_LIMIT = 256 << 10  # bytes of one script run from a directory
DIR_SCRIPT_COUNT = 32  # scripts read from the directories of one image, all together
_MAX_GLOBS = 8
_SHELL_SUFFIXES = (".sh", ".envsh", ".bash")
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"})

#: (path below the directory, relative) -> wanted
Match = Callable[[str], bool]


class FileSource(Protocol):
    def read(self, path: str, limit: int) -> bytes | None:
        """Content of the regular file at `path` (symlinks followed), None if there is
        none or it is larger than `limit` bytes."""

    def stat(self, path: str) -> Owner | None:
        """(uid, gid, mode & 0o7777) of `path` (symlinks followed), None if absent."""

    # Optional (looked up with getattr):
    #
    # def files_below(self, directory: str, match: Match, limit: int, count: int
    #                 ) -> tuple[list[tuple[str, bytes | None]], bool] | None:
    #     """(files, more): the regular files below `directory` (symlinks followed) whose
    #     path relative to it `match`es, by path, at most `count`, each with its bytes
    #     (None when over `limit` or not readable); `more` when further files matched.
    #     None when `directory` is not a directory."""
    #
    # def xattrs(self, path: str) -> dict[str, bytes] | None:
    #     """Extended attributes of the regular file at `path` (symlinks followed), name
    #     -> bytes ({} when it has none); None when there is no regular file there."""


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _normal(path: str) -> str:
    return posixpath.normpath(path) if path.startswith("/") else path


def from_config(reference: str, digest: str, source: str, config: Mapping[str, Any] | None,
                platform: str = "") -> ImageFacts:
    """ImageFacts from the config alone (no files read)."""
    config = config or {}
    env: dict[str, str] = {}
    for item in _strings(config.get("Env")):
        key, _, value = item.partition("=")
        env.setdefault(key, value)
    workdir = str(config.get("WorkingDir") or "")
    entrypoint, cmd = _strings(config.get("Entrypoint")), _strings(config.get("Cmd"))
    volumes = config.get("Volumes") or {}
    ports = config.get("ExposedPorts") or {}
    labels = config.get("Labels") or {}
    return ImageFacts(
        reference=reference,
        digest=digest,
        source=source,
        resolved_reference=reference,
        platform=platform,
        user=str(config.get("User") or ""),
        entrypoint=entrypoint,
        cmd=cmd,
        volumes=tuple(sorted({_normal(str(v)) for v in volumes})) if isinstance(volumes, dict) else (),
        env=env,
        workdir=workdir,
        exposed_ports=tuple(sorted(str(p) for p in ports)) if isinstance(ports, dict) else (),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        entrypoint_facts=analyse_argv(entrypoint, cmd, env, workdir or None),
        script="sh -c" if (script_target(entrypoint, cmd) or ("",))[0] == "inline" else None,
    )


def candidates(name: str, env: Mapping[str, str], workdir: str) -> list[str]:
    """Where the engine looks for the executable `name`."""
    if name.startswith("/"):
        return [posixpath.normpath(name)]
    if "/" in name:
        return [posixpath.normpath(posixpath.join(workdir or "/", name))]
    dirs = (env.get("PATH") or DEFAULT_PATH).split(":")
    return [posixpath.join(d or ".", name) for d in dirs if d.startswith("/")]


def glob_match(globs: list[str]) -> tuple[str, Match] | None:
    """(directory, match) for globs of one directory as `script_globs` writes them:
    `DIR/PAT` takes the direct entries whose name matches PAT (a leading dot only when
    PAT has one, as the shell does), `DIR/**/PAT` the files at any depth whose name does."""
    rules: list[tuple[str, bool]] = []
    directory = ""
    for glob in globs:
        if "/**/" in glob:
            base, _, pattern = glob.partition("/**/")
            rules.append((pattern, True))
        else:
            base, _, pattern = glob.rpartition("/")
            rules.append((pattern, False))
        if directory and base != directory:
            raise ValueError("globs of different directories")
        directory = base
    if not directory.startswith("/") or directory == "/":
        return None

    def match(relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        for pattern, recursive in rules:
            if recursive and fnmatch.fnmatchcase(name, pattern):
                return True
            if (not recursive and "/" not in relative and fnmatch.fnmatchcase(name, pattern)
                    and (not name.startswith(".") or pattern.startswith("."))):
                return True
        return False

    return directory, match


def is_shell_script(path: str, data: bytes) -> bool:
    """A `#!` line naming a shell (`/bin/sh`, `/usr/bin/env bash`), or no `#!` line, a
    shell suffix and text: what the analyser can read."""
    if data.startswith(b"#!"):
        words = data[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
        if words and posixpath.basename(words[0]) == "env":
            words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return bool(words) and posixpath.basename(words[0]) in _SHELLS
    return path.endswith(_SHELL_SUFFIXES) and b"\0" not in data


def _dir_scripts(facts: ImageFacts, files: FileSource, entry: EntrypointFacts
                 ) -> tuple[EntrypointFacts, tuple[str, ...], list[str]]:
    """`entry` with what the scripts of its `script_globs` do merged in, the scripts read,
    and notes on what could not be read."""
    lister = getattr(files, "files_below", None)
    if lister is None or not entry.script_globs:
        return entry, (), []
    by_directory: dict[str, list[str]] = {}
    for glob in entry.script_globs[:_MAX_GLOBS]:
        base = glob.partition("/**/")[0] if "/**/" in glob else glob.rpartition("/")[0]
        by_directory.setdefault(base, []).append(glob)
    read: list[str] = []
    notes: list[str] = []
    merged = entry
    budget = DIR_SCRIPT_COUNT
    for directory, globs in by_directory.items():
        if budget <= 0:
            notes.append(f"scripts in {directory} not read: {DIR_SCRIPT_COUNT} scripts read already")
            continue
        chosen = glob_match(globs)
        if chosen is None:
            continue
        found = lister(chosen[0], chosen[1], DIR_SCRIPT_LIMIT, budget)
        if found is None:
            continue
        listed, more = found
        for path, data in listed:
            if path in read:
                continue
            if data is None:
                notes.append(f"{path} not read: over {DIR_SCRIPT_LIMIT >> 10} KB or unreadable")
                continue
            budget -= 1
            if is_shell_script(path, data):
                text = data.decode("utf-8", "replace")
                merged = merged.merged(analyse_script(text, facts.env, facts.workdir or None))
                read.append(path)
        if more:
            notes.append(f"more scripts in {directory} than read (at most {DIR_SCRIPT_COUNT}, by name)")
    # the scripts' own loops are kept, not followed
    return merged, tuple(read), notes


def _file_caps(facts: ImageFacts, files: FileSource) -> tuple[str, dict[str, tuple[str, ...]], list[str]]:
    """(program, file_caps, notes): the path of the program the container runs and the
    permitted file capabilities of the programs `program_names` names."""
    reader = getattr(files, "xattrs", None)
    names = program_names(facts.entrypoint, facts.cmd)
    if reader is None or not names:
        return "", {}, []
    main = (facts.entrypoint or facts.cmd or ("",))[0]
    program, found, notes = "", {}, []
    for name in names:
        for path in candidates(name, facts.env, facts.workdir):
            attrs = reader(path)
            if attrs is None:
                continue
            if name == main:
                program = path
            blob = attrs.get(caps.XATTR)
            decoded = caps.decode(blob)
            if decoded is not None and decoded.permitted:
                found[path] = decoded.permitted
            elif blob is not None and decoded is None:
                notes.append(f"{path}: {caps.XATTR} not understood ({len(blob)} bytes)")
            break
    return program, found, notes


def with_files(facts: ImageFacts, files: FileSource) -> ImageFacts:
    """`facts` completed from the image's files: passwd, group, the entrypoint script
    and the scripts it runs from a directory, the owners of the volumes, the workdir and
    the users' homes, /etc/s6-overlay, the program's file capabilities."""
    passwd = accounts.parse_passwd(files.read("/etc/passwd", PASSWD_LIMIT))
    groups = accounts.parse_group(files.read("/etc/group", PASSWD_LIMIT))
    entry, script = facts.entrypoint_facts, facts.script
    target = script_target(facts.entrypoint, facts.cmd)
    if target and target[0] == "path":
        for path in candidates(target[1], facts.env, facts.workdir):
            data = files.read(path, SCRIPT_LIMIT)
            if data is None:
                continue
            if data.startswith(b"#!"):
                text = data.decode("utf-8", "replace")
                entry = entry.merged(analyse_script(text, facts.env, facts.workdir or None))
                script = path
            break
    entry, dir_scripts, notes = _dir_scripts(facts, files, entry)
    program, file_caps, cap_notes = _file_caps(facts, files)
    read = replace(facts, files_read=True, passwd=passwd, groups=groups, entrypoint_facts=entry, script=script,
                   dir_scripts=dir_scripts, program=program, file_caps=file_caps,
                   notes=(*facts.notes, *notes, *cap_notes))
    wanted = [*facts.volumes, facts.workdir, read.home() or "", (read.home(read.drop_user) or "") if read.drop_user else ""]
    owners: dict[str, Owner] = {}
    for path in dict.fromkeys(_normal(p) for p in wanted if p.startswith("/")):
        found = files.stat(path)
        if found is not None:
            owners[path] = found
    return replace(read, owners=owners, s6_installed=files.stat("/etc/s6-overlay") is not None)
