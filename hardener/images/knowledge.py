"""The per-image hardening knowledge (`profiles/images.yaml`): entries and matching.

An entry says what one image family needs to run hardened: its runtime user, the paths
it must write, the capabilities it keeps, the controls it cannot take, with sources.
The file is checked against `profiles/images.schema.json`; what a schema cannot say is
checked here (unique ids, no entry unreachable behind an earlier unconstrained one, no
path both a tmpfs and a required mount). Every error names images.yaml:line:column.

Matching (:func:`match_image`): first entry in file order whose ``repositories`` glob
matches the repository (case-insensitive ``fnmatch``), whose ``registries`` (when given)
match the registry (Docker Hub compares as ``docker.io``), and whose ``tags`` (when given)
match a *known* tag. An absent or interpolated tag never satisfies a ``tags`` constraint,
so such images fall through to the general entry of the same repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from .. import config_schemas
from ..config import Config, data_dir, read_yaml
from .reference import ImageRef, parse_image

__all__ = ["ImageEntry", "TmpfsSpec", "builtin_entries", "load_config", "load_entries", "match_image"]


@dataclass(frozen=True)
class TmpfsSpec:
    """One tmpfs mount an image needs when its root filesystem is read-only.

    ``owner="user"``: the mount gets ``uid=``/``gid=`` of the service's ``user``;
    ``owner="root"``: no uid/gid (root-owned). ``mode``/``size`` ``None`` = profile default.
    ``exec=True`` only where something executes from the mount (s6-overlay ``/run``).
    """

    path: str
    owner: str = "user"
    mode: str | None = None
    size: str | None = None
    exec: bool = False


@dataclass(frozen=True)
class ImageEntry:
    """What one image (family) needs to run hardened; see the header of ``images.yaml``.

    The first ten fields are the documented interface. ``repositories``/``tags``/
    ``registries`` drive :func:`match_image`; ``requires_mounts`` lists data paths that
    are *not* declared ``VOLUME`` in the image: ``read_only`` only works when the service
    mounts a volume/bind there (a tmpfs would silently lose the data), so a pass should
    skip ``read_only`` with a reason when one of them is not mounted.
    """

    id: str
    title: str
    user: str | None
    tmpfs: tuple[TmpfsSpec, ...]
    cap_add: tuple[str, ...]
    skip: Mapping[str, str] = field(hash=False)
    memory: str | None
    pids: int | None
    notes: str
    sources: tuple[str, ...]
    repositories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    registries: tuple[str, ...] = ()
    requires_mounts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.skip, MappingProxyType):
            object.__setattr__(self, "skip", MappingProxyType(dict(self.skip)))

    def matches(self, ref: ImageRef) -> bool:
        """True when ``ref`` satisfies this entry's repository/registry/tag constraints."""
        repo = ref.repository.lower()
        if not any(fnmatchcase(repo, pat.lower()) for pat in self.repositories):
            return False
        if self.registries:
            if not ref.registry_known:
                return False
            registry = (ref.registry or "docker.io").lower()
            if not any(fnmatchcase(registry, pat.lower()) for pat in self.registries):
                return False
        if self.tags:
            if not ref.tag_known or ref.tag is None:
                return False
            tag = ref.tag.lower()
            if not any(fnmatchcase(tag, pat.lower()) for pat in self.tags):
                return False
        return True


def match_image(image: str | None, entries: Sequence[ImageEntry]) -> ImageEntry | None:
    """Return the first entry (file order) matching the ``image:`` string, else ``None``."""
    if image is None:
        return None
    ref = parse_image(image)
    if ref is None:
        return None
    for entry in entries:
        if entry.matches(ref):
            return entry
    return None



# --------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def builtin_entries() -> tuple[ImageEntry, ...]:
    """The shipped knowledge base, loaded once per process."""
    file = data_dir().joinpath("images.yaml")
    return load_config(read_yaml(file.read_text(encoding="utf-8"), str(file)))


def load_entries(data: Any, file: str = "images.yaml") -> tuple[ImageEntry, ...]:
    """Entries from parsed ``images.yaml`` data (the top-level mapping, or a bare list of
    entries); raises `ConfigError` naming the entry and key of the first problem."""
    if isinstance(data, list):
        data = {"version": 1, "images": data}
    return load_config(Config(data, file=file))


def load_config(config: Config) -> tuple[ImageEntry, ...]:
    config.check(config_schemas.validator("images"))
    entries: list[ImageEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(config.data["images"]):
        entry = _entry(item)
        where = ("images", index)
        paths = [t.path for t in entry.tmpfs]
        if len(set(paths)) != len(paths):
            raise config.error((*where, "tmpfs"), "a tmpfs path is listed twice")
        overlap = set(entry.requires_mounts) & set(paths)
        if overlap:
            raise config.error((*where, "requires_mounts"), f"{sorted(overlap)} cannot be both a tmpfs and a required data mount")
        if entry.id in seen:
            raise config.error((*where, "id"), f"duplicate id (first at images[{seen[entry.id]}])")
        for earlier in entries:
            if not (earlier.tags or earlier.registries) and all(
                any(fnmatchcase(r, p) for p in earlier.repositories) for r in entry.repositories
            ):
                raise config.error(where, f"unreachable, every repository is already matched by the unconstrained entry "
                                          f"{earlier.id!r}; put tag/registry variants first")
        seen[entry.id] = index
        entries.append(entry)
    return tuple(entries)


def _entry(item: Mapping[str, Any]) -> ImageEntry:
    """An entry from its checked data."""
    return ImageEntry(
        id=item["id"],
        title=item["title"].strip(),
        user=item.get("user"),
        tmpfs=tuple(TmpfsSpec(t) if isinstance(t, str) else TmpfsSpec(**t) for t in item.get("tmpfs") or ()),
        cap_add=tuple(item.get("cap_add") or ()),
        skip={control: reason.strip() for control, reason in (item.get("skip") or {}).items()},
        memory=item.get("memory"),
        pids=item.get("pids"),
        notes=item["notes"].strip(),
        sources=tuple(item["sources"]),
        repositories=tuple(item["repositories"]),
        tags=tuple(item.get("tags") or ()),
        registries=tuple(item.get("registries") or ()),
        requires_mounts=tuple(item.get("requires_mounts") or ()),
    )
