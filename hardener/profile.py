"""Profiles: layered settings that know where each value came from.

Layers, lowest first: a built-in or file profile (which may `extends:` another), the
image knowledge entry matched for the service, `x-harden` in the service, and command
line `--skip`. `resolve()` gives each service its `Settings`; `sources` records which layer
set each field, for `harden profiles show` and the report.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from jsonschema import Draft202012Validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .images import ImageEntry, TmpfsSpec, load_entries, match_image
from .model import CONTROLS, HardenError
from .values import memory_bytes
from .view import ServiceView

X_HARDEN_KEYS = ("skip", "user", "tmpfs", "cap_add", "memory", "cpus", "pids")


def _profiles_dir() -> Any:
    try:
        return resources.files("hardener.profiles")
    except ModuleNotFoundError:  # running from a source checkout
        return Path(__file__).resolve().parent.parent / "profiles"


def _read_yaml(text: str, name: str) -> Any:
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise HardenError(f"profile {name}: invalid YAML: {str(exc).splitlines()[0]}") from None


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(_profiles_dir().joinpath("schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


@lru_cache(maxsize=1)
def image_entries() -> tuple[ImageEntry, ...]:
    data = _read_yaml(_profiles_dir().joinpath("images.yaml").read_text(encoding="utf-8"), "images.yaml")
    return load_entries(data)


def builtin_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")]
        for p in _profiles_dir().iterdir()
        if p.name.endswith(".yaml") and p.name != "images.yaml"
    )


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


def _check(data: Any, name: str) -> None:
    if not isinstance(data, dict):
        raise HardenError(f"profile {name}: must be a mapping")
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.path))
    if not errors:
        return
    error = errors[0]
    where = ".".join(str(p) for p in error.path) or "(top)"
    message = error.message
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extra = [k for k in (error.instance or {}) if k not in known]
        hints = difflib.get_close_matches(extra[0], known, n=1) if extra else []
        message = f"unknown key {extra[0]!r}" + (f" (did you mean {hints[0]!r}?)" if hints else "")
    raise HardenError(f"profile {name}: {where}: {message}")


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


def _raw(ref: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged raw data of profile `ref` (a built-in name or a file path)."""
    if ref in seen:
        raise HardenError(f"profile {ref}: extends itself through {' -> '.join(seen)}")
    path = Path(ref)
    if ref in builtin_names():
        text = _profiles_dir().joinpath(f"{ref}.yaml").read_text(encoding="utf-8")
        source = f"profile:{ref}"
    elif path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise HardenError(f"profile {ref}: cannot read: {exc}") from None
        source = f"file:{ref}"
    else:
        hints = difflib.get_close_matches(ref, builtin_names(), n=1)
        hint = f" (did you mean {hints[0]!r}?)" if hints else ""
        raise HardenError(f"unknown profile {ref!r}{hint}; built-in: {', '.join(builtin_names())}")
    data = _read_yaml(text, ref)
    _check(data, ref)
    sources: dict[str, str] = {}
    # A profile file extends baseline unless it says otherwise (`extends: null` for none).
    parent = data.get("extends", "baseline" if source.startswith("file:") else None)
    if parent and parent not in builtin_names() and source.startswith("file:"):
        parent = str(path.parent / parent)  # a relative path is relative to the file naming it
    base: dict[str, Any] = {}
    if parent:
        base, sources = _raw(parent, (*seen, ref))
    return _merge(base, {k: v for k, v in data.items() if k != "extends"}, source, sources), sources


PROJECT_PROFILE = ".harden.yaml"


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
            if (folder / ".git").exists():
                break
        except OSError:  # a folder we may not look into (its Compose files are refused when read)
            continue
    return "baseline"


_loaded: dict[tuple[str, int], Profile] = {}


def profile_for(directory: str) -> Profile:
    """`load_profile(project_profile_ref(directory))`, loaded once per file version."""
    ref = project_profile_ref(directory)
    try:
        key = (ref, Path(ref).stat().st_mtime_ns if ref != "baseline" else 0)
    except OSError as exc:
        raise HardenError(f"profile {ref}: cannot read: {exc}") from None
    if key not in _loaded:
        _loaded[key] = load_profile(ref)
    return _loaded[key]


def load_profile(ref: str = "baseline") -> Profile:
    data, sources = _raw(ref)
    missing = [k for k in ("user", "tmpfs", "capabilities", "resources") if k not in data]
    if missing:
        raise HardenError(f"profile {ref}: missing {', '.join(missing)} (extend 'baseline' to inherit them)")
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
        dangerous_caps=frozenset(caps.get("dangerous", [])),
        memory=str(res.get("memory", "256m")),
        cpus=float(res.get("cpus", 0.5)),
        pids=int(res.get("pids", 100)),
        form=res.get("form", "auto"),
        image_knowledge=bool(data.get("image_knowledge", True)),
        skip=frozenset(data.get("skip", [])),
        sources=sources,
    )


# --- per service -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What one service should get, after every layer."""

    user: str
    tmpfs: tuple[TmpfsSpec, ...]
    tmpfs_extra: tuple[str, ...]  # literal entries from x-harden
    tmpfs_size: str
    cap_add: tuple[str, ...]
    skip: Mapping[str, str]  # control -> reason
    memory: str
    cpus: float
    pids: int
    form: str
    image: str | None  # id of the image knowledge entry matched
    requires_mounts: tuple[str, ...] = ()  # data paths the image writes that are no VOLUME
    dangerous_caps: frozenset[str] = frozenset()
    sources: Mapping[str, str] = field(default_factory=dict)


def x_harden(service: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The service's `x-harden` block, checked."""
    block = service.get("x-harden")
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise HardenError(f"service {name!r}: x-harden must be a mapping")
    for key in block:
        if key not in X_HARDEN_KEYS:
            hints = difflib.get_close_matches(str(key), X_HARDEN_KEYS, n=1)
            hint = f" (did you mean {hints[0]!r}?)" if hints else ""
            raise HardenError(f"service {name!r}: x-harden: unknown key {key!r}{hint}")
    skip = block.get("skip", [])
    if isinstance(skip, str):
        skip = [skip]
    bad = [s for s in skip if s not in CONTROLS]
    if bad:
        raise HardenError(f"service {name!r}: x-harden.skip: unknown control {bad[0]!r}; controls: {', '.join(CONTROLS)}")
    for key in ("tmpfs", "cap_add"):
        value = block.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise HardenError(f"service {name!r}: x-harden.{key} must be a list of strings")
    return {**block, "skip": list(skip)}


def resolve(profile: Profile, view: ServiceView, cli_skip: frozenset[str] = frozenset()) -> Settings:
    name, service = view.name, view.data
    sources = {k: v for k, v in profile.sources.items()}
    skip: dict[str, str] = {c: f"skipped by profile {profile.name}" for c in profile.skip}
    user, tmpfs, cap_add = profile.user, profile.tmpfs, profile.cap_add
    memory, pids = profile.memory, profile.pids
    entry = match_image(service.get("image"), image_entries()) if profile.image_knowledge else None
    if entry is not None:
        tag = f"image:{entry.id}"
        if entry.user:
            user, sources["user"] = entry.user, tag
        if entry.tmpfs:
            tmpfs = _union_tmpfs(tmpfs, entry.tmpfs)
            sources["tmpfs.paths"] = tag
        if entry.cap_add:
            cap_add, sources["capabilities.add"] = tuple(dict.fromkeys((*cap_add, *entry.cap_add))), tag
        for control, reason in entry.skip.items():
            skip[control] = f"{entry.title}: {reason}"
        if entry.memory and (memory_bytes(entry.memory) or 0) > (memory_bytes(memory) or 0):
            memory, sources["resources.memory"] = entry.memory, tag
        if entry.pids and entry.pids > pids:
            pids, sources["resources.pids"] = entry.pids, tag
    block = x_harden(service, name)
    extra: tuple[str, ...] = ()
    if block:
        for control in block.get("skip", []):
            skip[control] = "skipped by x-harden in the file"
        if "user" in block:  # an explicit user in the file overrides an image skip
            user, sources["user"] = str(block["user"]), "x-harden"
            if skip.pop("user", None) is not None and entry is not None and entry.cap_add:
                # The image's capabilities were for its root mode, which the file opted out of.
                cap_add = profile.cap_add
                sources["capabilities.add"] = "x-harden (non-root instead of the image's root mode)"
        if block.get("tmpfs"):
            extra, sources["tmpfs.paths"] = tuple(block["tmpfs"]), "x-harden"
        if block.get("cap_add"):
            cap_add, sources["capabilities.add"] = tuple(dict.fromkeys((*cap_add, *block["cap_add"]))), "x-harden"
        if "memory" in block:
            memory, sources["resources.memory"] = str(block["memory"]), "x-harden"
        if "pids" in block:
            pids, sources["resources.pids"] = int(block["pids"]), "x-harden"
    cpus = float(block["cpus"]) if block and "cpus" in block else profile.cpus
    for control in cli_skip:
        skip[control] = "skipped on the command line"
    return Settings(
        user=user,
        tmpfs=tmpfs,
        tmpfs_extra=extra,
        tmpfs_size=profile.tmpfs_size,
        cap_add=cap_add,
        skip=skip,
        memory=memory,
        cpus=cpus,
        pids=pids,
        form=profile.form,
        image=entry.id if entry else None,
        requires_mounts=entry.requires_mounts if entry else (),
        dangerous_caps=profile.dangerous_caps,
        sources=sources,
    )


def _union_tmpfs(base: tuple[TmpfsSpec, ...], extra: tuple[TmpfsSpec, ...]) -> tuple[TmpfsSpec, ...]:
    by_path = {spec.path: spec for spec in base}
    by_path.update({spec.path: spec for spec in extra})
    return tuple(by_path.values())
