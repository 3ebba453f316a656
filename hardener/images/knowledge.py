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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from .. import config_schemas
from ..config import Config, data_dir, read_yaml
from ..values import with_defaults
from .reference import ImageRef, parse_image

__all__ = ["ImageEntry", "Match", "TmpfsSpec", "builtin_entries", "load_config", "load_entries", "match_image", "match_service_image"]


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
    """Return the first entry (file order) matching the ``image:`` string, else ``None``.
    A repository that is a variant of a known family (``elasticsearch-wolfi``,
    ``redis-alpine``) matches the family's entries, with the variant read into the tag."""
    if image is None:
        return None
    ref = parse_image(image)
    if ref is None:
        return None
    for candidate in (ref, _family(ref)):
        for entry in entries if candidate is not None else ():
            if entry.matches(candidate):
                return entry
    return None


_VARIANT = re.compile(r"-(wolfi|alpine|slim|debian|bookworm|bullseye|ubi\d*|oss|distroless|chainguard)$")


def _family(ref: ImageRef) -> ImageRef | None:
    """`elasticsearch/elasticsearch-wolfi:8` -> `elasticsearch/elasticsearch:8-wolfi`, else None."""
    head, _, last = ref.repository.rpartition("/")
    found = _VARIANT.search(last)
    if not found:
        return None
    repository = (head + "/" if head else "") + last[: found.start()]
    tag = f"{ref.tag}-{found.group(1)}" if ref.tag and ref.tag_known else found.group(1)
    return ImageRef(ref.registry, repository, tag, ref.digest)


@dataclass(frozen=True)
class Match:
    """The knowledge entry for a service's image, and what its variables did to the match."""

    entry: ImageEntry | None
    note: str = ""  # "postgres:${TAG:-16-alpine} read with its default: postgres:16-alpine"
    user_unknown: str = ""  # why no uid can be chosen: the variants of a variable tag differ


def match_service_image(image: Any, entries: Sequence[ImageEntry]) -> Match:
    """`match_image`, reading `${VAR:-default}` as its default; where a variable with no
    default picks the variant and the variants run as different users, says so. Each
    image is matched once per set of entries (services share images; a run plans twice)."""
    if not isinstance(image, str):
        return Match(None)
    if not isinstance(entries, tuple):  # a list may change: no memory of it
        return _match_service_image(image, entries)
    key = (image, id(entries))
    known = _MATCHED.get(key)
    if known is not None and known[0] is entries:
        return known[1]
    if len(_MATCHED) >= 4096:
        _MATCHED.clear()
    found = _match_service_image(image, entries)
    _MATCHED[key] = (entries, found)  # holding `entries` keeps its id from being reused
    return found


_MATCHED: dict[tuple[str, int], tuple[Sequence[ImageEntry], Match]] = {}


def _match_service_image(image: str, entries: Sequence[ImageEntry]) -> Match:
    if "$" not in image:
        return Match(match_image(image, entries))
    defaulted = with_defaults(image)
    ref = parse_image(defaulted) if defaulted != image else None
    if ref is not None and ref.tag:
        return Match(match_image(defaulted, entries), f"{image} read with its default: {defaulted}")
    entry = match_image(image, entries)
    plain = parse_image(image)
    if entry is None or plain is None or plain.tag_known:
        return Match(entry)
    family = [e for e in entries if any(fnmatchcase(plain.repository, p.lower()) for p in e.repositories)]
    users = list(dict.fromkeys(e.user for e in family if e.user))
    if len(users) > 1:
        variants = " or ".join(f"{u} ({', '.join(e.title for e in family if e.user == u)})" for u in users)
        return Match(entry, user_unknown=f"the tag is a variable ({plain.tag}) and the image runs as {variants} "
                                         "depending on it: set x-harden.user or give the variable a default")
    return Match(entry)



# --------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def builtin_entries() -> tuple[ImageEntry, ...]:
    """The shipped knowledge base, loaded once per process."""
    file = data_dir().joinpath("images.yaml")
    return load_config(read_yaml(file.read_text(encoding="utf-8"), str(file)), shipped=True)


def load_entries(data: Any, file: str = "images.yaml") -> tuple[ImageEntry, ...]:
    """Entries from parsed ``images.yaml`` data (the top-level mapping, or a bare list of
    entries); raises `ConfigError` naming the entry and key of the first problem."""
    if isinstance(data, list):
        data = {"version": 1, "images": data}
    return load_config(Config(data, file=file))


def load_config(config: Config, shipped: bool = False) -> tuple[ImageEntry, ...]:
    """Entries of a checked configuration. `shipped`: the file that comes with harden, held
    to its schema and to the reachability of every entry by the test suite rather than
    again on every start."""
    if not shipped:
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
        for earlier in () if shipped else entries:  # quadratic: the shipped file is held to it by the test suite
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
