"""Profiles: the checklist's values, loaded in layers that know where each value came from.

A profile is built in (`profiles/*.yaml`) or a file (`--profile FILE`, or the nearest
`.harden.yaml`); a file extends `baseline` unless it names another (`extends:`). Each
layer is checked against the profile schema; errors name FILE:LINE:COL and the key.
`sources` records which layer set each value, for `harden profiles show` and the report.
What a service then gets (image knowledge, `x-harden`, `--skip`) is `settings.resolve`.

A profile may relax the checklist only visibly: every relaxation (a control skipped, a
capability added, root as the user, an executable tmpfs) is listed in `relaxations`,
naming the file that asked for it, and reported on every service as a `relaxed` finding.
A dangerous capability (`capabilities.dangerous`, never fewer than baseline's) is refused
in `capabilities.add` unless the profile acknowledges it with a reason:
`acknowledge: {SYS_ADMIN: "the backup agent mounts snapshots"}`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from . import config_schemas, tool_config
from .config import ConfigError, data_dir, read_yaml
from .images import TmpfsSpec
from .settings import Settings, resolve
from .values import cap_name, is_root_user, memory_bytes

# Settings, resolve and memory_bytes are imported from here by the core, findings and verify.
__all__ = ["PROJECT_PROFILE", "Profile", "Settings", "builtin_names", "load_profile", "memory_bytes",
           "profile_for", "project_profile_ref", "resolve"]

PROJECT_PROFILE = ".harden.yaml"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    user: str
    tmpfs_size: str
    tmpfs: tuple[TmpfsSpec, ...]
    cap_add: tuple[str, ...]
    dangerous_caps: frozenset[str]
    memory: str
    cpus: float
    pids: int
    form: str
    image_knowledge: bool
    skip: frozenset[str]
    sources: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)  # every section, merged over the layers
    acknowledged: Mapping[str, str] = field(default_factory=dict)  # dangerous capability -> the reason it is added
    relaxations: tuple[str, ...] = ()  # what the profile relaxes, each naming the file that asked for it


def builtin_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")]
        for p in data_dir().iterdir()
        if p.name.endswith(".yaml") and p.name != "images.yaml"
    )


def load_profile(ref: str = "baseline") -> Profile:
    data, sources = _raw(ref)
    missing = [k for k in config_schemas.contributions("profile") if k not in data]
    if missing:
        raise ConfigError(f"profile {ref}: missing {', '.join(missing)} (extend 'baseline' to inherit them)")
    tmpfs = data["tmpfs"]
    caps = data["capabilities"]
    res = data["resources"]
    return Profile(
        name=data["name"] if sources.get("name") in (f"profile:{ref}", f"file:{ref}") else ref,  # its own name, not its parent's
        description=data.get("description", ""),
        user=data["user"],
        tmpfs_size=tmpfs.get("size", "64m"),
        tmpfs=tuple(TmpfsSpec(**p) for p in tmpfs.get("paths", [])),
        cap_add=tuple(caps.get("add", [])),
        dangerous_caps=_dangerous(data),
        memory=str(res.get("memory", "256m")),
        cpus=float(res.get("cpus", 0.5)),
        pids=int(res.get("pids", 100)),
        form=res.get("form", "auto"),
        image_knowledge=bool(data.get("image_knowledge", True)),
        skip=frozenset(data.get("skip", [])),
        sources=sources,
        data=data,
        acknowledged=_acknowledged(data),
        relaxations=_relaxations(data, sources),
    )


# --- relaxations ------------------------------------------------------------------------


def named(source: str | None) -> str:
    """A layer's source as a report names it."""
    if not source:
        return "the profile"
    kind, _, where = source.partition(":")
    return {"profile": f"built-in profile {where}", "file": f"profile file {where}"}.get(kind, source)


@lru_cache(maxsize=1)
def baseline_dangerous() -> frozenset[str]:
    """The dangerous capabilities of the built-in baseline: no profile makes one harmless."""
    text = data_dir().joinpath("baseline.yaml").read_text(encoding="utf-8")
    caps = (read_yaml(text, "baseline", "profile").data or {}).get("capabilities", {})
    return frozenset(cap_name(c) for c in caps.get("dangerous", []))


def _dangerous(data: Mapping[str, Any]) -> frozenset[str]:
    own = (data.get("capabilities") or {}).get("dangerous", [])
    return baseline_dangerous() | frozenset(cap_name(c) for c in own)


def _acknowledged(data: Mapping[str, Any]) -> dict[str, str]:
    given = data.get("acknowledge") or {}
    return {cap_name(k): v.strip() for k, v in given.items() if isinstance(v, str) and v.strip()}


def _relaxations(data: Mapping[str, Any], sources: Mapping[str, str]) -> tuple[str, ...]:
    out = [f"{c} skipped by {named(sources.get('skip'))} (skip)" for c in data.get("skip", [])]
    dangerous, acknowledged = _dangerous(data), _acknowledged(data)
    for cap in (data.get("capabilities") or {}).get("add", []):
        name = cap_name(cap)
        why = f"; dangerous, acknowledged: {acknowledged[name]}" if name in dangerous and name in acknowledged else ""
        out.append(f"capability {name} added by {named(sources.get('capabilities.add'))} (capabilities.add{why})")
    if is_root_user(data.get("user")):
        out.append(f"runs as root: user {data['user']!r} from {named(sources.get('user'))}")
    for spec in (data.get("tmpfs") or {}).get("paths", []):
        if isinstance(spec, dict) and spec.get("exec"):
            out.append(f"tmpfs {spec.get('path')} executable (exec: true) by {named(sources.get('tmpfs.paths'))}")
    return tuple(out)


def _refuse_unacknowledged(config: Any, layer: Mapping[str, Any], merged: Mapping[str, Any]) -> None:
    """A dangerous capability this layer adds needs a reason in `acknowledge` (this layer's
    or an earlier one's): else the profile is refused, at the capability."""
    added = ((layer.get("capabilities") or {}).get("add")) or []
    dangerous, acknowledged = _dangerous(merged), _acknowledged(merged)
    for index, cap in enumerate(added):
        name = cap_name(cap)
        if name in dangerous and name not in acknowledged:
            raise config.error(("capabilities", "add", index),
                               f"{name} is a dangerous capability; the profile may add it only with the reason: "
                               f"acknowledge: {{{name}: \"why every service needs it\"}}")


def project_profile_ref(directory: str) -> str:
    """The profile for Compose files in `directory` when none is given: the nearest
    `.harden.yaml` in it or a parent, not above the repository root (the first directory
    that holds `.git`), else baseline."""
    here = Path(directory).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_PROFILE
        try:
            if candidate.is_file():
                return str(candidate)
            if tool_config.has_table(folder / tool_config.PYPROJECT):  # [tool.harden], where there is no .harden.yaml
                return str(folder / tool_config.PYPROJECT)
            if (folder / ".git").exists():
                break
        except OSError:  # a folder we may not look into (its Compose files are refused when read)
            continue
    return "baseline"


def profile_for(directory: str) -> Profile:
    """`load_profile(project_profile_ref(directory))`, loaded once per file version."""
    ref = project_profile_ref(directory)
    try:
        version = Path(ref).stat().st_mtime_ns if ref != "baseline" else 0
    except OSError as exc:
        raise ConfigError(f"profile {ref}: cannot read: {exc}") from None
    return _load_version(ref, version)


@lru_cache(maxsize=64)
def _load_version(ref: str, version: int) -> Profile:
    """One version of a profile (`version`: its file's mtime): a changed file is read again."""
    return load_profile(ref)


# --- layers ------------------------------------------------------------------------------


def _raw(ref: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged data of profile `ref` (a built-in name or a file path), and the source
    of each value."""
    if ref in seen:
        raise ConfigError(f"profile {ref}: extends itself through {' -> '.join(seen)}")
    path = Path(ref)
    builtins = builtin_names()
    if ref in builtins:
        file = data_dir().joinpath(f"{ref}.yaml")
        text, source = file.read_text(encoding="utf-8"), f"profile:{ref}"
    elif path.suffix in (".yaml", ".yml") or path.exists():
        file = path
        from .files import read_bytes  # a regular file, bounded: never a FIFO, /dev/zero or a device
        from .model import HardenError

        try:
            text = read_bytes(ref).decode("utf-8")
        except HardenError as exc:
            raise ConfigError(f"profile {ref}: cannot read: {exc.message}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"profile {ref}: cannot read: {exc}") from None
        source = f"file:{ref}"
    else:
        hints = difflib.get_close_matches(ref, builtins, n=1)
        hint = f" (did you mean {hints[0]!r}?)" if hints else ""
        raise ConfigError(f"unknown profile {ref!r}{hint}; built-in: {', '.join(builtins)}")
    config = tool_config.read_table(text, str(file)) if tool_config.is_pyproject(ref) else read_yaml(text, str(file), "profile")
    if not source.startswith("profile:"):  # a built-in profile is held to its schema by the test suite
        config.check(config_schemas.validator("profile"))
    data = config.data
    sources: dict[str, str] = {}
    # A profile file extends baseline unless it says otherwise (`extends: null` for none).
    parent = data.get("extends", "baseline" if source.startswith("file:") else None)
    if parent and parent not in builtins and source.startswith("file:"):
        parent = str(path.parent / parent)  # a relative path is relative to the file naming it
    base: dict[str, Any] = {}
    if parent:
        base, sources = _raw(parent, (*seen, ref))
    merged = _merge(base, {k: v for k, v in data.items() if k != "extends"}, source, sources)
    _refuse_unacknowledged(config, data, merged)
    return merged, sources


def _merge(base: dict[str, Any], top: dict[str, Any], source: str, sources: dict[str, str], prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, source, sources, path + ".")
        else:
            out[key] = value
            _mark(value, path, source, sources)
    return out


def _mark(value: Any, path: str, source: str, sources: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _mark(inner, f"{path}.{key}", source, sources)
    else:
        sources[path] = source
