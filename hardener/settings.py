"""What one service gets: its `Settings`, resolved from every layer.

Layers, lowest first: the profile, the image knowledge entry matched for the service's
image (or, where none matched, the facts read from the image), what a run of the stack
showed (`observed`, from `harden tune`), `x-harden` in the service, command line `--skip`.
`sources` records which layer set each value, for the report and `harden profiles show`. A control's own options
that no typed field carries are in `profile` (the profile's sections) and `x_harden`
(the service's checked block): a pass reads them there.

No layer adds a dangerous capability quietly: `x-harden.cap_add` may name one only with
the reason in `x-harden.acknowledge` (else the file is refused at that entry), and is then
reported (`relaxed`) like every relaxation the profile makes; facts read from an image
never add one outside Docker's default set (`withheld`, reported instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from . import config_schemas, image_evidence
from .observed import Values as ObservedValues, apply as apply_observed
from .config import Config
from .images import TmpfsSpec, builtin_entries, match_service_image
from .values import cap_name, memory_bytes
from .view import ServiceView

if TYPE_CHECKING:
    from .profile import Profile


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
    unmounted_volumes: tuple[str, ...] = ()  # VOLUMEs the image declares that the service leaves unmounted
    facts: str | None = None  # "image:<digest>" when facts read from the image were used
    dangerous_caps: frozenset[str] = frozenset()
    sources: Mapping[str, str] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)  # the profile's data, every section
    x_harden: Mapping[str, Any] = field(default_factory=dict)  # the service's x-harden, checked
    relaxed: tuple[str, ...] = ()  # what configuration relaxes for this service, naming where it asked
    withheld: tuple[str, ...] = ()  # dangerous capabilities the image's facts asked for, not added


def evidence(settings: Settings, *keys: str) -> str:
    """What the value of profile key `keys[0]` (or the first of `keys` a stronger layer set)
    rests on, as a `Change.evidence`."""
    for key in keys:
        source = settings.sources.get(key, "")
        if source.startswith("x-harden"):
            return "x-harden"
        if source.startswith("image:"):
            return "knowledge:" + source[len("image:"):]
        if source.startswith(("facts:", "declared:", "observed:")):
            return source.split(":", 1)[1] if source.startswith("facts:") else source
    return "default"


def x_harden(view: ServiceView) -> dict[str, Any]:
    """The service's `x-harden` block, checked against its schema (`skip` as a list).
    Errors point at line:column of the offending value in the Compose file."""
    block = view.data.get("x-harden")
    if block is None:
        return {}
    config = Config(block, where=f"service {view.name!r}", prefix=("x-harden",), located=view.config)
    config.check(config_schemas.validator("x-harden"))
    skip = block.get("skip", [])
    return {**block, "skip": [skip] if isinstance(skip, str) else list(skip)}


# Docker's default capability set: keeping one of these after `cap_drop: [ALL]` gives the
# service nothing it did not have before hardening.
DOCKER_DEFAULT_CAPS = frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                                 "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})


def _acknowledged_caps(view: ServiceView, block: Mapping[str, Any], dangerous: frozenset[str]) -> list[str]:
    """`x-harden.cap_add` entries that are dangerous, each acknowledged with its reason in
    `x-harden.acknowledge`; an entry without one refuses the file, at that entry."""
    given = {cap_name(k): v.strip() for k, v in (block.get("acknowledge") or {}).items() if isinstance(v, str) and v.strip()}
    out = []
    for index, cap in enumerate(block.get("cap_add") or []):
        name = cap_name(cap)
        if name not in dangerous:
            continue
        if name not in given:
            config = Config(block, where=f"service {view.name!r}", prefix=("x-harden",), located=view.config)
            raise config.error(("cap_add", index), f"{name} is a dangerous capability; add it only with the reason: "
                                                   f"x-harden: {{acknowledge: {{{name}: \"why this service needs it\"}}}}")
        out.append(f"capability {name} added by x-harden in the file (dangerous, acknowledged: {given[name]})")
    return out


def resolve(profile: Profile, view: ServiceView, cli_skip: frozenset[str] = frozenset(), facts: Any = None,
            observed: Any = None) -> Settings:
    """`facts`: what was read from the service's image (`hardener.facts.ImageFacts`), if anything;
    `observed`: what runs of the stack showed about the service (`hardener.observed.Observed`)."""
    sources = dict(profile.sources)
    skip: dict[str, str] = {c: f"skipped by profile {profile.name}" for c in profile.skip}
    user, tmpfs, cap_add = profile.user, profile.tmpfs, profile.cap_add
    memory, pids = profile.memory, profile.pids
    match = match_service_image(view.data.get("image"), builtin_entries()) if profile.image_knowledge else None
    entry = match.entry if match is not None else None
    if match is not None and match.user_unknown:
        skip["user"] = match.user_unknown
    if entry is not None:
        tag = f"image:{entry.id}" + (f" ({match.note})" if match.note else "")
        if entry.user:
            user, sources["user"] = entry.user, tag
        if entry.tmpfs:
            by_path = {spec.path: spec for spec in (*tmpfs, *entry.tmpfs)}  # the image's spec wins for a path in both
            tmpfs, sources["tmpfs.paths"] = tuple(by_path.values()), tag
        if entry.cap_add:
            cap_add, sources["capabilities.add"] = tuple(dict.fromkeys((*cap_add, *entry.cap_add))), tag
        for control, reason in entry.skip.items():
            skip[control] = f"{entry.title}: {reason}"
        if entry.memory and (memory_bytes(entry.memory) or 0) > (memory_bytes(memory) or 0):
            memory, sources["resources.memory"] = entry.memory, tag
        if entry.pids and entry.pids > pids:
            pids, sources["resources.pids"] = entry.pids, tag
    found = image_evidence.layer(facts, view.data) if entry is None and facts is not None else None
    if found is not None:
        if found.user:
            user, sources["user"] = found.user, f"facts:{found.evidence} {found.user_fact}"
        if found.tmpfs:
            by_path = {spec.path: spec for spec in (*tmpfs, *found.tmpfs)}
            tmpfs, sources["tmpfs.paths"] = tuple(by_path.values()), f"facts:{found.evidence} {found.tmpfs_fact}"
        wanted = tuple(c for c in found.cap_add if cap_name(c) not in profile.dangerous_caps or cap_name(c) in DOCKER_DEFAULT_CAPS)
        withheld = tuple(c for c in found.cap_add if c not in wanted)
        if wanted:
            cap_add = tuple(dict.fromkeys((*cap_add, *wanted)))
            sources["capabilities.add"] = f"facts:{found.evidence} {found.cap_fact}"
        for control, reason in found.skip.items():
            skip[control] = f"{reason} ({found.evidence})"
        tmpfs = tuple(spec for spec in tmpfs if not any(spec.path == v or spec.path.startswith(v + "/") for v in found.volumes))
    if observed is not None:  # what a run showed: below the image's facts, above declared needs and the profile
        seen = apply_observed(observed, ObservedValues(user, tmpfs, cap_add, memory, pids, sources, skip))
        user, tmpfs, cap_add, memory, pids = seen.user, seen.tmpfs, seen.cap_add, seen.memory, seen.pids
    block = x_harden(view)
    extra: tuple[str, ...] = ()
    relaxed = list(getattr(profile, "relaxations", ()))
    if block:
        relaxed += _acknowledged_caps(view, block, profile.dangerous_caps)
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
        unmounted_volumes=found.unmounted if found else (),
        facts=found.evidence if found else None,
        dangerous_caps=profile.dangerous_caps,
        sources=sources,
        profile=profile.data,
        x_harden=block,
        relaxed=tuple(relaxed),
        withheld=withheld if found is not None else (),
    )

