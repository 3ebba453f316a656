"""What a run of the stack showed, for one service: the `observed:` layer of evidence.

`harden tune` runs the original stack, watches what it does (`docker diff`, `docker top`,
`docker stats`) and hands the result to planning as `Project(observed={service: Observed})`;
the core stays pure: it only reads this record. Each value carries the fact it rests on,
and becomes a change's evidence as `observed:<fact>`.

Where it sits (docs/architecture.md): `x-harden` > image knowledge > image facts >
observed > declared needs > profile default. What a stronger layer set is kept; this layer
adds what the run showed on top of it:

- `user`: the uid:gid the service's processes ran as, where no stronger layer set one;
- `tmpfs`: directories the run wrote that hold nothing of the image (added to the others);
- `cap_add`: capabilities a later run showed the service needs (added);
- `memory`, `pids`: floors (a limit is never lowered by what a run showed, only raised);
- `skip`: controls a hardened run showed cannot be applied (it regressed), each with the
  reason: a demonstrated failure, so it holds whatever the other layers say;
- `doubts`: controls the original's run suggests cannot be applied (it writes next to the
  image's own files, where a tmpfs would hide them): a prediction, so a control a stronger
  layer vouches for (the knowledge base, the image's facts, x-harden) is kept and tried;
- `verified`: profile values a run confirmed (no regression against the original): their
  evidence becomes `observed:` instead of `default`, so they are no longer "unverified".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .images import TmpfsSpec
from .values import memory_bytes

# Profile keys whose value a run can confirm, by control (`Settings.sources` keys).
KEYS = {
    "user": ("user",),
    "read_only": ("tmpfs.paths",),
    "capabilities": ("capabilities.add",),
    "resources": ("resources.memory", "resources.cpus", "resources.pids"),
}
_STRONGER = ("x-harden", "image:", "facts:", "declared:", "observed:")


@dataclass(frozen=True)
class Observed:
    """What runs of the stack showed about one service; every value with its fact."""

    user: str | None = None
    user_fact: str = ""
    tmpfs: tuple[str, ...] = ()
    tmpfs_fact: str = ""
    cap_add: tuple[str, ...] = ()
    cap_fact: str = ""
    memory: str | None = None
    memory_fact: str = ""
    pids: int | None = None
    pids_fact: str = ""
    skip: Mapping[str, str] = field(default_factory=dict)  # control -> reason
    doubts: Mapping[str, str] = field(default_factory=dict)  # control -> reason, where nothing stronger vouches for it
    verified: Mapping[str, str] = field(default_factory=dict)  # control -> what the run confirmed

    def merged(self, other: "Observed") -> "Observed":
        """This record with `other`'s additions (its user and limits where it sets them)."""
        def later(a: Any, b: Any) -> Any:
            return b if b not in (None, "", ()) else a

        return Observed(
            user=later(self.user, other.user), user_fact=later(self.user_fact, other.user_fact),
            tmpfs=tuple(dict.fromkeys((*self.tmpfs, *other.tmpfs))), tmpfs_fact=later(self.tmpfs_fact, other.tmpfs_fact),
            cap_add=tuple(dict.fromkeys((*self.cap_add, *other.cap_add))), cap_fact=later(self.cap_fact, other.cap_fact),
            memory=later(self.memory, other.memory), memory_fact=later(self.memory_fact, other.memory_fact),
            pids=later(self.pids, other.pids), pids_fact=later(self.pids_fact, other.pids_fact),
            skip={**self.skip, **other.skip}, doubts={**self.doubts, **other.doubts},
            verified={**self.verified, **other.verified},
        )

    def without_verified(self) -> "Observed":
        return replace(self, verified={})


def _weak(sources: Mapping[str, str], key: str) -> bool:
    """The value of `key` rests on nothing stronger than the profile."""
    return not sources.get(key, "").startswith(_STRONGER)


@dataclass
class Values:
    """The values `settings.resolve` has gathered so far, which this layer may change."""

    user: str
    tmpfs: tuple[TmpfsSpec, ...]
    cap_add: tuple[str, ...]
    memory: str
    pids: int
    sources: dict[str, str]
    skip: dict[str, str]


def apply(seen: Observed | None, now: Values) -> Values:
    """`now` with what `seen` adds (see the module docstring); `now.sources` records it."""
    if seen is None:
        return now
    src = now.sources
    for control, reason in seen.doubts.items():  # weighed against the layers below this one only
        if all(_weak(src, key) for key in KEYS.get(control, ())):
            now.skip.setdefault(control, f"{reason} (observed)")
    if seen.user and _weak(src, "user") and "user" not in now.skip:
        now.user, src["user"] = seen.user, f"observed:{seen.user_fact or 'processes ran as ' + seen.user}"
    if seen.tmpfs:
        have = {spec.path for spec in now.tmpfs}
        now.tmpfs += tuple(TmpfsSpec(path, owner="user") for path in seen.tmpfs if path not in have)
        if _weak(src, "tmpfs.paths"):
            src["tmpfs.paths"] = f"observed:{seen.tmpfs_fact or 'writes ' + ', '.join(seen.tmpfs)}"
    if seen.cap_add:
        now.cap_add = tuple(dict.fromkeys((*now.cap_add, *seen.cap_add)))
        src["capabilities.add"] = f"observed:{seen.cap_fact or 'needs ' + ', '.join(seen.cap_add)}"
    if seen.memory and (memory_bytes(seen.memory) or 0) > (memory_bytes(now.memory) or 0):
        now.memory, src["resources.memory"] = seen.memory, f"observed:{seen.memory_fact or 'memory ' + seen.memory}"
    if seen.pids and seen.pids > now.pids:
        now.pids, src["resources.pids"] = seen.pids, f"observed:{seen.pids_fact or f'{seen.pids} PIDs'}"
    for control, reason in seen.skip.items():
        now.skip.setdefault(control, f"{reason} (observed)")
    for control, note in seen.verified.items():
        for key in KEYS.get(control, ()):
            if _weak(src, key):
                src[key] = f"observed:{note}"
    return now
