"""From an image config (and, when a source can read them, its files) to `ImageFacts`.

The engine and the registry hand over the same config object (Docker's `Config` /
OCI's `config`: `User`, `Entrypoint`, `Cmd`, `Volumes`, `Env`, `WorkingDir`,
`ExposedPorts`, `Labels`). Files come through a `FileSource`: `read` a regular file and
`stat` a path, symlinks followed, None when it is not there.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import Any, Mapping, Protocol

from . import accounts
from .entrypoint import analyse_argv, analyse_script, script_target
from .model import ImageFacts, Owner

PASSWD_LIMIT = 4 << 20
SCRIPT_LIMIT = 1 << 20
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class FileSource(Protocol):
    def read(self, path: str, limit: int) -> bytes | None:
        """Content of the regular file at `path` (symlinks followed), None if there is
        none or it is larger than `limit` bytes."""

    def stat(self, path: str) -> Owner | None:
        """(uid, gid, mode & 0o7777) of `path` (symlinks followed), None if absent."""


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


def with_files(facts: ImageFacts, files: FileSource) -> ImageFacts:
    """`facts` completed from the image's files: passwd, group, the entrypoint script,
    the owners of the volumes, the workdir and the users' homes, /etc/s6-overlay."""
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
    read = replace(facts, files_read=True, passwd=passwd, groups=groups, entrypoint_facts=entry, script=script)
    wanted = [*facts.volumes, facts.workdir, read.home() or "", read.home(read.drop_user) if read.drop_user else ""]
    owners: dict[str, Owner] = {}
    for path in dict.fromkeys(_normal(p) for p in wanted if p.startswith("/")):
        found = files.stat(path)
        if found is not None:
            owners[path] = found
    return replace(read, owners=owners, s6_installed=files.stat("/etc/s6-overlay") is not None)
