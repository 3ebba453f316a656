"""Image references and the per-image hardening knowledge base (`profiles/images.yaml`).

Pure module: no I/O. The caller reads and parses ``images.yaml`` and hands the plain data
to :func:`load_entries`; :func:`parse_image` and :func:`match_image` only look at strings.

Parsing (:func:`parse_image`) follows Docker's reference grammar, loosely:

* surrounding whitespace is stripped; inner whitespace, an empty string, an unterminated
  ``${`` or a lone ``$`` make the reference unparseable (``None``);
* ``@digest`` is split off first, then ``:tag`` from the *last* path component, so a
  registry port (``registry:5000/app``) is never mistaken for a tag;
* Docker's registry rule: with two or more path components, the first one is a registry
  when it contains ``.`` or ``:`` or is ``localhost``. A first component that contains
  ``${...}``/``$VAR`` interpolation is treated as an *unknown registry* and kept verbatim
  (``"${REGISTRY:-docker.io}"``) so the rest still matches; entries that restrict
  ``registries`` never match an unknown registry;
* Docker Hub (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``) becomes
  ``registry=None``; a leading ``library/`` namespace is stripped whatever the registry
  (pull-through mirrors keep Hub's ``library/`` prefix, e.g. ``mirror.gcr.io/library/redis``);
* registry and repository are lower-cased (Docker would reject upper case; we still want
  to classify the service), the tag is kept as written;
* interpolation inside the repository path (``ghcr.io/${ORG}/app``, ``${IMAGE}``) makes
  the image unidentifiable: ``None``. Interpolation in the tag or digest is kept verbatim
  and makes the tag *unknown* (:attr:`ImageRef.tag_known`).

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
from types import MappingProxyType
from typing import Any

__all__ = [
    "CAPABILITIES",
    "CONTROLS",
    "ImageEntry",
    "ImageRef",
    "TmpfsSpec",
    "load_entries",
    "match_image",
    "parse_image",
]

#: Control ids an entry may skip (same order as ``hardener.model.CONTROLS``).
CONTROLS: tuple[str, ...] = ("user", "read_only", "capabilities", "no_new_privileges", "resources")

#: Linux capability names (capabilities(7), kernel 5.9+), upper case without ``CAP_``.
CAPABILITIES: frozenset[str] = frozenset(
    {
        "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
        "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
        "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
        "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT",
        "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG",
        "WAKE_ALARM",
    }
)

_HUB_REGISTRIES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_MASK = "\x00"  # stands for one character inside an interpolation
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REGISTRY = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MASKED_TAG = re.compile(r"[A-Za-z0-9_.\x00-]+")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[A-Za-z0-9=_-]+")
_SIMPLE_VAR = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")

_USER = re.compile(r"([0-9]+):([0-9]+)")
_SIZE = re.compile(r"[1-9][0-9]*[kmg]")
_MODE = re.compile(r"[0-7]{3,4}")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SOURCE = re.compile(r"[PG][0-9]+[a-z]?")
_TMPFS_PATH = re.compile(r"/[^\s:,]*")
_GLOB = re.compile(r"[a-z0-9._/*?\[\]-]+")
_TAG_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]-]+")


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class ImageRef:
    """A parsed ``image:`` value.

    ``registry`` is ``None`` for Docker Hub, lower-case host[:port] otherwise, or the
    verbatim ``${...}`` text when the registry is interpolated. ``repository`` is
    lower-case with Hub's ``library/`` stripped. ``tag`` and ``digest`` are kept as
    written (``None`` when absent).
    """

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def tag_known(self) -> bool:
        """True when the tag is present and free of ``$`` interpolation.

        An absent tag (``postgres``, ``postgres@sha256:…``) is *unknown* too: it is not
        used to select tag-specific entries.
        """
        return self.tag is not None and "$" not in self.tag

    @property
    def registry_known(self) -> bool:
        """False when the registry is interpolated (``${REGISTRY}/…``)."""
        return self.registry is None or "$" not in self.registry


def _mask_interpolation(text: str) -> str | None:
    """Replace every character of ``${...}``, ``$VAR`` and ``$$`` by ``_MASK``.

    The result has the same length as ``text``, so positions found in it slice the
    original. ``None`` when an interpolation is unterminated or a ``$`` stands alone.
    """
    out = list(text)
    i = 0
    n = len(text)
    while i < n:
        if text[i] != "$":
            i += 1
            continue
        if text.startswith("$$", i):
            end = i + 2
        elif text.startswith("${", i):
            depth = 0
            j = i
            end = -1
            while j < n:
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                if text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        end = j + 1
                        break
                j += 1
            if end < 0:
                return None
        else:
            m = _SIMPLE_VAR.match(text, i)
            if m is None:
                return None
            end = m.end()
        for k in range(i, end):
            out[k] = _MASK
        i = end
    return "".join(out)


def parse_image(ref: str) -> ImageRef | None:
    """Parse an ``image:`` string into an :class:`ImageRef`, or ``None`` if unusable.

    See the module docstring for the rules. Examples::

        parse_image("postgres:16-alpine")  -> ImageRef(None, "postgres", "16-alpine", None)
        parse_image("docker.io/library/postgres:16") -> ImageRef(None, "postgres", "16", None)
        parse_image("registry:5000/team/app:1.2") -> ImageRef("registry:5000", "team/app", "1.2", None)
        parse_image("${REGISTRY:-docker.io}/library/redis:${TAG:-7}")
            -> ImageRef("${REGISTRY:-docker.io}", "redis", "${TAG:-7}", None)
        parse_image("${IMAGE}") -> None
    """
    if not isinstance(ref, str):
        return None
    text = ref.strip()
    if not text or _MASK in text or any(c.isspace() for c in text):
        return None
    masked = _mask_interpolation(text)
    if masked is None:
        return None

    digest: str | None = None
    if masked.count("@") > 1:
        return None
    at = masked.find("@")
    if at >= 0:
        digest = text[at + 1 :]
        masked_digest = masked[at + 1 :]
        if not digest:
            return None
        if _MASK not in masked_digest and not _DIGEST.fullmatch(digest):
            return None
        text, masked = text[:at], masked[:at]

    tag: str | None = None
    last_slash = masked.rfind("/")
    colon = masked.find(":", last_slash + 1)
    if colon >= 0:
        tag = text[colon + 1 :]
        masked_tag = masked[colon + 1 :]
        if not (_MASKED_TAG if _MASK in masked_tag else _TAG).fullmatch(masked_tag):
            return None
        text, masked = text[:colon], masked[:colon]

    if not text:
        return None
    starts = [0]
    for i, c in enumerate(masked):
        if c == "/":
            starts.append(i + 1)
    parts = [text[s : (starts[k + 1] - 1 if k + 1 < len(starts) else len(text))] for k, s in enumerate(starts)]
    masked_parts = [masked[s : (starts[k + 1] - 1 if k + 1 < len(starts) else len(masked))] for k, s in enumerate(starts)]

    registry: str | None = None
    if len(parts) > 1:
        first = masked_parts[0]
        has_registry = True
        if _MASK in first:
            registry = parts[0]
        elif "." in first or ":" in first or first.lower() == "localhost":
            registry = parts[0].lower()
            if not _REGISTRY.fullmatch(registry):
                return None
            if registry in _HUB_REGISTRIES:
                registry = None
        else:
            has_registry = False
        if has_registry:
            parts, masked_parts = parts[1:], masked_parts[1:]

    repo_parts = [p.lower() for p in parts]
    if not repo_parts or any(_MASK in m for m in masked_parts):
        return None
    if not all(_PATH_COMPONENT.fullmatch(p) for p in repo_parts):
        return None
    if len(repo_parts) > 1 and repo_parts[0] == "library":
        repo_parts = repo_parts[1:]
    return ImageRef(registry=registry, repository="/".join(repo_parts), tag=tag, digest=digest)


# --------------------------------------------------------------------------- entries


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

_ENTRY_KEYS = frozenset(
    {"id", "title", "repositories", "tags", "registries", "user", "tmpfs", "cap_add", "skip",
     "memory", "pids", "notes", "sources", "requires_mounts"}
)
_REQUIRED_KEYS = ("id", "title", "repositories", "notes", "sources")
_TMPFS_KEYS = frozenset({"path", "owner", "mode", "size", "exec"})
_TOP_KEYS = frozenset({"version", "images"})


def _str_list(value: Any, what: str, where: str, pattern: re.Pattern[str] | None = None,
              allow_empty: bool = False) -> tuple[str, ...]:
    if value is None and allow_empty:
        return ()
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ValueError(f"{where}: {what} must be a {'' if allow_empty else 'non-empty '}list of strings")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{where}: {what} item {item!r} is not a non-empty string")
        if pattern is not None and not pattern.fullmatch(item):
            raise ValueError(f"{where}: {what} item {item!r} is malformed")
        if item in out:
            raise ValueError(f"{where}: {what} item {item!r} is duplicated")
        out.append(item)
    return tuple(out)


def _tmpfs(value: Any, where: str) -> TmpfsSpec:
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: tmpfs item {value!r} must be a path string or a mapping")
    unknown = set(value) - _TMPFS_KEYS
    if unknown:
        raise ValueError(f"{where}: tmpfs item has unknown key(s) {sorted(map(str, unknown))}")
    path = value.get("path")
    if not isinstance(path, str) or not _TMPFS_PATH.fullmatch(path) or path == "/" or path.endswith("/"):
        raise ValueError(f"{where}: tmpfs path {path!r} must be an absolute path without ':' ',' or spaces")
    owner = value.get("owner", "user")
    if owner not in ("user", "root"):
        raise ValueError(f"{where}: tmpfs {path}: owner must be 'user' or 'root', got {owner!r}")
    mode = value.get("mode")
    if mode is not None and (not isinstance(mode, str) or not _MODE.fullmatch(mode)):
        raise ValueError(f"{where}: tmpfs {path}: mode must be a quoted octal string like \"1777\", got {mode!r}")
    size = value.get("size")
    if size is not None and (not isinstance(size, str) or not _SIZE.fullmatch(size)):
        raise ValueError(f"{where}: tmpfs {path}: size must look like \"64m\", got {size!r}")
    exec_ = value.get("exec", False)
    if not isinstance(exec_, bool):
        raise ValueError(f"{where}: tmpfs {path}: exec must be true/false, got {exec_!r}")
    return TmpfsSpec(path=path, owner=owner, mode=mode, size=size, exec=exec_)


def _entry(item: Any, index: int) -> ImageEntry:
    if not isinstance(item, Mapping):
        raise ValueError(f"images[{index}]: entry must be a mapping, got {type(item).__name__}")
    raw_id = item.get("id")
    where = f"images[{index}] ({raw_id!r})" if raw_id is not None else f"images[{index}]"
    unknown = set(item) - _ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    for key in _REQUIRED_KEYS:
        if key not in item:
            raise ValueError(f"{where}: missing required key {key!r}")
    if not isinstance(raw_id, str) or not _ID.fullmatch(raw_id):
        raise ValueError(f"{where}: id must be lower-case words joined by '-'")
    title = item["title"]
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"{where}: title must be a non-empty string")
    notes = item["notes"]
    if not isinstance(notes, str):
        raise ValueError(f"{where}: notes must be a string")

    repositories = tuple(r.lower() for r in _str_list(item["repositories"], "repositories", where, _GLOB))
    tags = _str_list(item.get("tags"), "tags", where, _TAG_GLOB, allow_empty=True)
    registries = _str_list(item.get("registries"), "registries", where, _GLOB, allow_empty=True)
    sources = _str_list(item["sources"], "sources", where, _SOURCE)
    if "tags" in item and not tags:
        raise ValueError(f"{where}: tags, when given, must not be empty")
    if "registries" in item and not registries:
        raise ValueError(f"{where}: registries, when given, must not be empty")

    raw_skip = item.get("skip") or {}
    if not isinstance(raw_skip, Mapping):
        raise ValueError(f"{where}: skip must be a mapping of control id -> reason")
    skip: dict[str, str] = {}
    for control, reason in raw_skip.items():
        if control not in CONTROLS:
            raise ValueError(f"{where}: skip has unknown control {control!r} (expected one of {', '.join(CONTROLS)})")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{where}: skip.{control} needs a non-empty reason string")
        skip[control] = reason.strip()

    user = item.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise ValueError(
                f"{where}: user must be a quoted \"uid:gid\" string, got {type(user).__name__} {user!r}"
                " (unquoted 472:0 is read as a base-60 integer by YAML 1.1 loaders)"
            )
        m = _USER.fullmatch(user)
        if m is None:
            raise ValueError(f"{where}: user must be numeric \"uid:gid\", got {user!r}")
        if int(m.group(1)) == 0:
            raise ValueError(f"{where}: user {user!r} is root; leave it out and use skip.user instead")
        if "user" in skip:
            raise ValueError(f"{where}: sets user but also skips the 'user' control")

    tmpfs_raw = item.get("tmpfs") or []
    if not isinstance(tmpfs_raw, list):
        raise ValueError(f"{where}: tmpfs must be a list")
    tmpfs = tuple(_tmpfs(t, where) for t in tmpfs_raw)
    paths = [t.path for t in tmpfs]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{where}: tmpfs paths are duplicated")
    if "user" in skip and any(t.owner == "user" for t in tmpfs):
        raise ValueError(f"{where}: skips 'user', so its tmpfs mounts must use owner: root")

    cap_add = _str_list(item.get("cap_add"), "cap_add", where, allow_empty=True)
    for cap in cap_add:
        if cap not in CAPABILITIES:
            raise ValueError(f"{where}: cap_add has unknown capability {cap!r} (upper case, no CAP_ prefix)")
    if cap_add and "capabilities" in skip:
        raise ValueError(f"{where}: lists cap_add but skips the 'capabilities' control")

    memory = item.get("memory")
    if memory is not None and (not isinstance(memory, str) or not _SIZE.fullmatch(memory)):
        raise ValueError(f"{where}: memory must look like \"1g\" or \"512m\", got {memory!r}")
    pids = item.get("pids")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int) or pids <= 0):
        raise ValueError(f"{where}: pids must be a positive integer, got {pids!r}")

    requires_mounts = _str_list(item.get("requires_mounts"), "requires_mounts", where, _TMPFS_PATH,
                                allow_empty=True)
    overlap = set(requires_mounts) & set(paths)
    if overlap:
        raise ValueError(f"{where}: {sorted(overlap)} cannot be both a tmpfs and a required data mount")

    return ImageEntry(
        id=raw_id,
        title=title.strip(),
        user=user,
        tmpfs=tmpfs,
        cap_add=cap_add,
        skip=skip,
        memory=memory,
        pids=pids,
        notes=notes.strip(),
        sources=sources,
        repositories=repositories,
        tags=tags,
        registries=registries,
        requires_mounts=requires_mounts,
    )


def load_entries(data: Any) -> tuple[ImageEntry, ...]:
    """Build entries from parsed ``images.yaml`` data (top-level mapping or bare list).

    Raises ``ValueError`` naming the offending entry on unknown keys, bad control ids,
    malformed users/caps/sizes, duplicate ids and entries made unreachable by an earlier
    unconstrained entry for the same repositories.
    """
    if isinstance(data, Mapping):
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise ValueError(f"images.yaml: unknown top-level key(s) {sorted(map(str, unknown))}")
        if data.get("version") != 1:
            raise ValueError(f"images.yaml: unsupported version {data.get('version')!r} (expected 1)")
        items = data.get("images")
    else:
        items = data
    if not isinstance(items, list):
        raise ValueError("images.yaml: 'images' must be a list of entries")

    entries: list[ImageEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        entry = _entry(item, index)
        if entry.id in seen:
            raise ValueError(f"images[{index}] ({entry.id!r}): duplicate id (first at images[{seen[entry.id]}])")
        for earlier in entries:
            if earlier.tags or earlier.registries:
                continue
            if all(any(fnmatchcase(r, p) for p in earlier.repositories) for r in entry.repositories):
                raise ValueError(
                    f"images[{index}] ({entry.id!r}): unreachable, every repository is already matched by "
                    f"the unconstrained entry {earlier.id!r}; put tag/registry variants first"
                )
        seen[entry.id] = index
        entries.append(entry)
    return tuple(entries)
