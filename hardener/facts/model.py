"""The records: `ImageFacts` (what an image says about itself) and the entrypoint's
`EntrypointFacts` / `Drop`, with the small queries the hardening asks of them.

All values are plain data (str, int, tuple, dict) so a record pickles, compares and goes
to JSON (`to_dict` / `from_dict`, used by the cache). Treat the dicts as read-only.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, fields, replace
from typing import Any, Iterable

from . import accounts

@dataclass(frozen=True)
class Drop:
    """One privilege drop: `tool` switches to `user` (and `group`) before running the rest."""

    tool: str
    user: str | None  # name or uid after substitution; None when it depends on something unknown
    group: str | None
    written: str  # the user argument as written
    line: int  # 1-based line in the script; 0 for the exec-form entrypoint

    @property
    def spec(self) -> str | None:
        """`user` or `user:group`, as `user:` / `--user` take it; None when unknown."""
        if self.user is None:
            return None
        return f"{self.user}:{self.group}" if self.group else self.user


@dataclass(frozen=True)
class EntrypointFacts:
    drops: tuple[Drop, ...] = ()
    s6_overlay: bool = False
    puid_pgid: bool = False
    checks_root: bool = False  # it looks at its own uid (`id -u`, `$EUID`): it also runs as non-root
    chowns: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    script_globs: tuple[str, ...] = ()  # scripts it runs from a directory: `/docker-entrypoint.d/*.sh`

    @property
    def drops_privileges(self) -> bool:
        return bool(self.drops)

    @property
    def drop_user(self) -> str | None:
        """`user[:group]` of the first drop whose user is known."""
        return next((d.spec for d in self.drops if d.spec), None)

    def merged(self, other: "EntrypointFacts") -> "EntrypointFacts":
        def union(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
            return tuple(dict.fromkeys([*a, *b]))

        return EntrypointFacts(
            drops=self.drops + tuple(d for d in other.drops if d not in self.drops),
            s6_overlay=self.s6_overlay or other.s6_overlay,
            puid_pgid=self.puid_pgid or other.puid_pgid,
            checks_root=self.checks_root or other.checks_root,
            chowns=union(self.chowns, other.chowns),
            writes=union(self.writes, other.writes),
            unresolved=union(self.unresolved, other.unresolved),
            script_globs=union(self.script_globs, other.script_globs),
        )



Owner = tuple[int, int, int]  # uid, gid, permission bits (mode & 0o7777)


@dataclass(frozen=True)
class ImageFacts:
    """Facts about one image, from its config and, when `files_read`, its files.

    `reference` is the image as written (`${TAG:-16}` included); `resolved_reference` the
    reference looked up (its defaults applied), `digest` the config digest (`sha256:...`,
    the engine's image Id), `source` "engine" or "registry". Config: `user`, `entrypoint`,
    `cmd`, `volumes`, `env`, `workdir`, `exposed_ports`, `labels`. Files (empty unless
    `files_read`): `passwd` name -> (uid, gid, home), `groups` name -> gid, `owners` path ->
    (uid, gid, mode) for each volume, the workdir and the homes of the configured and the
    drop user, `s6_installed` (/etc/s6-overlay exists). `script` is the entrypoint script
    read (a path, `sh -c` for inline text, None), `entrypoint_facts` what it and the
    exec-form command line do, with what the scripts it runs from a directory do
    (`dir_scripts`: those read, from `entrypoint_facts.script_globs`). `program` is the
    file the container runs (the exec-form entrypoint[0], else cmd[0], through the
    image's PATH), `file_caps` path -> permitted capability names (`NET_BIND_SERVICE`)
    of the files among `program`, cmd[0] and the command after init wrappers that carry
    file capabilities (`setcap`). `notes` say what could not be read and why.
    """

    reference: str
    digest: str
    source: str
    resolved_reference: str = ""
    platform: str = ""
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    files_read: bool = False
    passwd: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    owners: dict[str, Owner] = field(default_factory=dict)
    s6_installed: bool = False
    script: str | None = None
    entrypoint_facts: EntrypointFacts = field(default_factory=EntrypointFacts)
    notes: tuple[str, ...] = ()
    from_cache: bool = field(default=False, compare=False)
    dir_scripts: tuple[str, ...] = ()
    program: str = ""
    file_caps: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.reference, self.digest, self.source))

    # --- users ---------------------------------------------------------------------------

    def resolve(self, user: str) -> str | None:
        """"uid:gid" the engine runs `user` (name, uid, with or without `:group`) as in this
        image; None when a name is unknown, or the gid of a bare uid cannot be known
        because the files were not read."""
        found = accounts.resolve(user, self.passwd if self.files_read else None,
                                 self.groups if self.files_read else None)
        return f"{found[0]}:{found[1]}" if found else None

    @property
    def runs_as_root(self) -> bool:
        """The configured `User` is root (empty, `root`, `0`, a name with uid 0)."""
        name = self.user.strip().partition(":")[0].strip()
        if name in accounts.ROOT_NAMES:
            return True
        resolved = self.resolve(self.user)
        return resolved is not None and resolved.split(":")[0] == "0"

    def numeric_user(self) -> str | None:
        """The configured `User` as "uid:gid" (`app` -> passwd's numbers, `1000` -> 1000
        with passwd's primary gid, gid 0 when passwd does not list uid 1000, as the engine
        does); None for root or when it cannot be resolved."""
        return None if self.runs_as_root else self.resolve(self.user)

    @property
    def drop_user(self) -> str | None:
        """`user[:group]` the entrypoint drops to, as written after substitution."""
        return self.entrypoint_facts.drop_user

    def drop_numeric(self) -> str | None:
        """The drop target as "uid:gid", None when there is none or it cannot be resolved."""
        return self.resolve(self.drop_user) if self.drop_user else None

    def runtime_user(self) -> str | None:
        """"uid:gid" the main process ends up as: the drop target when the image starts as
        root and its entrypoint drops, else the configured non-root user; None otherwise."""
        if self.runs_as_root:
            return self.drop_numeric()
        return self.numeric_user()

    def home(self, user: str | None = None) -> str | None:
        """Home directory of `user` (default: the configured one) from passwd."""
        return accounts.home(self.user if user is None else user, self.passwd if self.files_read else None)

    # --- paths ---------------------------------------------------------------------------

    def owner(self, path: str) -> Owner | None:
        return self.owners.get(posixpath.normpath(path)) if path else None

    def volume_owners(self) -> dict[str, Owner]:
        return {v: self.owners[v] for v in self.volumes if v in self.owners}

    def writes_outside_volumes(self) -> tuple[str, ...]:
        """Absolute paths the entrypoint writes or chowns that no declared volume holds:
        where a read-only root filesystem needs a tmpfs."""
        def inside(path: str) -> bool:
            return any(path == v or path.startswith(v.rstrip("/") + "/") for v in self.volumes)

        paths = dict.fromkeys([*self.entrypoint_facts.writes, *self.entrypoint_facts.chowns])
        return tuple(p for p in paths if p.startswith("/") and not inside(p))

    # --- capabilities ----------------------------------------------------------------------

    def program_caps(self) -> tuple[str, ...]:
        """Permitted file capabilities of the program the container runs (`program`):
        what exec gives it when the bounding set keeps them. The kernel refuses to exec
        a file whose capabilities are marked effective (`+ep`) when the bounding set
        lacks one of them: under `cap_drop: [ALL]` they belong in `cap_add`."""
        return self.file_caps.get(self.program, ()) if self.program else ()

    # --- conventions ---------------------------------------------------------------------

    @property
    def uses_s6_overlay(self) -> bool:
        return (self.entrypoint[:1] == ("/init",) or any(k.startswith("S6_") for k in self.env)
                or self.s6_installed or self.entrypoint_facts.s6_overlay)

    @property
    def uses_puid_pgid(self) -> bool:
        return "PUID" in self.env or "PGID" in self.env or self.entrypoint_facts.puid_pgid

    @property
    def used_default(self) -> bool:
        """The reference had `${VAR:-default}` and its default was looked up."""
        return bool(self.resolved_reference) and self.resolved_reference != self.reference

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "from_cache"}
        ep = self.entrypoint_facts
        data["entrypoint_facts"] = {f.name: getattr(ep, f.name) for f in fields(ep)}
        data["entrypoint_facts"]["drops"] = [{f.name: getattr(d, f.name) for f in fields(d)} for d in ep.drops]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImageFacts":
        """The record `to_dict` wrote; raises (KeyError, TypeError, ValueError) on anything else."""
        ep = dict(data["entrypoint_facts"])
        drops = tuple(Drop(**d) for d in ep.pop("drops"))
        entry = EntrypointFacts(drops=drops, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in ep.items()})
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in ("from_cache", "entrypoint_facts") or f.name not in data:
                continue
            value = data[f.name]
            if f.name in ("entrypoint", "cmd", "volumes", "exposed_ports", "notes", "dir_scripts"):
                value = tuple(str(v) for v in value)
            elif f.name in ("env", "labels"):
                value = {str(k): str(v) for k, v in value.items()}
            elif f.name == "passwd":
                value = {str(k): (int(v[0]), int(v[1]), str(v[2])) for k, v in value.items()}
            elif f.name == "groups":
                value = {str(k): int(v) for k, v in value.items()}
            elif f.name == "owners":
                value = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in value.items()}
            elif f.name == "file_caps":
                value = {str(k): tuple(str(c) for c in v) for k, v in value.items()}
            out[f.name] = value
        facts = cls(entrypoint_facts=entry, **out)
        if not (isinstance(facts.digest, str) and facts.digest.startswith("sha256:")):
            raise ValueError("not a facts record")
        if facts.source not in ("engine", "registry"):
            raise ValueError("not a facts record")
        return facts

    def with_reference(self, reference: str, resolved: str, *, from_cache: bool = False) -> "ImageFacts":
        return replace(self, reference=reference, resolved_reference=resolved, from_cache=from_cache)
