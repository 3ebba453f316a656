"""Where a run wrote, from `docker diff`, and which of those places can be a tmpfs (pure).

A read-only root needs a tmpfs wherever the service writes outside its volumes. `docker
diff` lists what the run added (A), changed (C) or deleted (D) in the container's own
layer; mounts do not show. For every write the place that must stay writable is:

- the directory the run created, when it created one (`mkdir -p ~/.cache/app`: the tmpfs
  goes on ~/.cache, which the engine then creates as the mount point);
- else the directory holding the file it added, changed or deleted.

A tmpfs hides what the image has in that directory. So a place is a tmpfs only where it
holds nothing of the image (its listing, taken in the running container, has only what
the run added); a place next to the image's own files (`/srv/app/uploads.log` beside
`/srv/app/www`) is data that needs a volume, and read_only cannot be had without one.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

# Never a tmpfs over these: the system the service runs on lives there.
SYSTEM_DIRS = frozenset({"/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/opt", "/srv", "/home",
                         "/root", "/proc", "/sys", "/dev", "/boot", "/usr/local", "/usr/share", "/var/lib", "/usr/lib",
                         "/usr/local/bin", "/usr/bin"})
IGNORED = ("/proc", "/sys", "/dev")
SIBLINGS = 3  # more directories than this created side by side: the place is their parent
SCRATCH = ("/tmp", "/var/tmp", "/run", "/var/run", "/var/cache", "/dev/shm")


def _under(path: str, roots: set[str] | tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


@dataclass
class Places:
    """What `docker diff` says must stay writable: place -> the paths written there."""

    written: dict[str, list[str]] = field(default_factory=dict)

    def add(self, place: str, path: str) -> None:
        self.written.setdefault(place, []).append(path)


def places(diff: list[tuple[str, str]], mounts: dict[str, str] | set[str]) -> Places:
    """The places a run wrote (see the module docstring), outside its mounts."""
    kinds = {posixpath.normpath(path): kind for kind, path in diff}
    targets = {posixpath.normpath(m) for m in mounts}
    parents = {posixpath.dirname(p) for p in kinds}
    out = Places()
    created: dict[str, list[str]] = {}
    for path, kind in sorted(kinds.items()):
        if path in parents or _under(path, IGNORED) or _under(path, targets):
            continue  # a directory with changes below it, a pseudo filesystem, or a mount
        if any(t.startswith(path.rstrip("/") + "/") for t in targets):
            continue  # the parent of a mount point the engine created
        top = path
        while kinds.get(posixpath.dirname(top)) == "A" and posixpath.dirname(top) != "/":
            top = posixpath.dirname(top)
        if kind == "A" and top != path:  # inside a directory the run created: that directory
            created.setdefault(posixpath.dirname(top), []).append(top)
            out.add(top, path)
        else:
            out.add(posixpath.dirname(path), path)
    for parent, tops in created.items():
        tops = sorted(set(tops))
        if len(tops) > SIBLINGS:  # many directories side by side: their parent is the place
            for top in tops:
                for path in out.written.pop(top, []):
                    out.add(parent, path)
    return out


def added_names(diff: list[tuple[str, str]], place: str) -> set[str]:
    """Names directly in `place` that the run added."""
    return {posixpath.basename(posixpath.normpath(p)) for kind, p in diff
            if kind == "A" and posixpath.dirname(posixpath.normpath(p)) == place}


@dataclass
class Decision:
    tmpfs: list[str] = field(default_factory=list)  # places a tmpfs can take
    data: dict[str, str] = field(default_factory=dict)  # place -> why it cannot be a tmpfs
    facts: list[str] = field(default_factory=list)  # "writes /x/y" per tmpfs place, for the evidence


def decide(found: Places, listings: dict[str, list[str] | None], diff: list[tuple[str, str]]) -> Decision:
    """Which places can be a tmpfs; `listings` holds each place's entries in the running container."""
    out = Decision()
    for place in sorted(found.written):
        paths = found.written[place]
        shown = ", ".join(paths[:2]) + (f" (+{len(paths) - 2})" if len(paths) > 2 else "")
        if place in SYSTEM_DIRS:
            out.data[place] = f"it writes {shown} into {place}, which holds the system: a tmpfs would hide it"
            continue
        entries = listings.get(place)
        own = sorted(set(entries or []) - added_names(diff, place)) if entries is not None else []
        if own:
            listed = ", ".join(own[:3]) + (", ..." if len(own) > 3 else "")
            out.data[place] = (f"it writes {shown} into {place}, next to the image's own files ({listed}) "
                               f"that a tmpfs would hide: mount a volume at {place} to keep read_only")
            continue
        if any(_under(place, (t,)) and place != t for t in out.tmpfs):
            continue  # a tmpfs above it holds it
        out.tmpfs = [t for t in out.tmpfs if not _under(t, (place,))] + [place]
        out.facts.append(f"writes {shown}")
    return out


def to_list(found: Places) -> list[str]:
    """The places whose listing `decide` needs (the system directories need none)."""
    return [p for p in sorted(found.written) if p not in SYSTEM_DIRS]


def scratch(path: str) -> bool:
    """A place for temporary files by convention (what is written there may be lost)."""
    return _under(path, SCRATCH) or "/.cache" in path or path.endswith("/cache")
