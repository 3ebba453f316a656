"""Records shared by every layer: what a pass plans and what a run reports.

One `Change` drives the diff annotations, the text / JSON / SARIF report and the safety
net; a `Skip` says what was deliberately left alone and why; a `Finding` names a risk that
is never fixed automatically. All are frozen: passes return them, nobody mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

FINDINGS: tuple[str, ...] = ("privileged", "host_namespace", "docker_socket", "unconfined", "dangerous_cap", "weakened", "unmounted_volume",
                             "relaxed")


class Op(str, Enum):
    SET = "set"  # give a missing key its value
    ADD = "add"  # append missing items to a list (creating it when absent)


@dataclass(frozen=True, slots=True)
class Located:
    """Where in the file a record points: its line (None when unknown) and the index of the
    YAML document in a multi-document stream. Keyword-only, after each record's own fields."""

    line: int | None = field(default=None, kw_only=True)
    document: int = field(default=0, kw_only=True)


@dataclass(frozen=True, slots=True)
class Change(Located):
    """One planned edit of one service.

    `path` is relative to the service mapping, e.g. ("cap_drop",) or
    ("deploy", "resources", "limits", "memory"). For `Op.ADD`, `new` is the tuple of
    items appended; for `Op.SET`, the value written.
    """

    control: str
    service: str
    path: tuple[str, ...]
    op: Op
    new: Any
    reason: str
    old: Any = None
    caveat: str | None = None
    # What the value rests on, strongest first: "x-harden", "knowledge:<entry>",
    # "image:<digest> <fact>", "declared:<key> <value>", "observed:<what>", or "default"
    # (the profile's value, not checked against this service).
    evidence: str = "default"

    @property
    def unverified(self) -> bool:
        return self.evidence == "default"

    def describe(self) -> str:
        key = ".".join(self.path)
        if self.op is Op.ADD:
            value = ", ".join(str(v) for v in self.new)
            return f"{key} += [{value}]"
        if isinstance(self.new, bool):
            return f"{key} = {str(self.new).lower()}"
        return f"{key} = {self.new!r}" if not isinstance(self.new, str) else f'{key} = "{self.new}"'


@dataclass(frozen=True, slots=True)
class Skip(Located):
    control: str
    service: str
    reason: str


@dataclass(frozen=True, slots=True)
class Finding(Located):
    kind: str
    service: str
    message: str


class Status(str, Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    ERROR = "error"


class Failure(str, Enum):
    """Why a file ended as an error."""

    INPUT = "input"  # the input (or its configuration) is bad: fix the file
    REFUSED = "refused"  # the input is fine, but harden would not write what it made of it
    INTERNAL = "internal"  # a bug in harden; the file is left untouched


@dataclass(frozen=True)
class Result:
    """The outcome of hardening one text: never raises across this boundary."""

    status: Status
    original: str
    text: str
    changes: tuple[Change, ...] = ()
    skips: tuple[Skip, ...] = ()
    findings: tuple[Finding, ...] = ()
    matches: tuple[tuple[str, str], ...] = ()  # (service, image entry id)
    message: str = ""
    services: int = 0
    planned: Mapping[str, Any] = field(default_factory=dict)  # service -> data once hardened
    line: int | None = None  # where an error is, 1-based, when known
    col: int | None = None
    failure: Failure | None = None  # for Status.ERROR: whose fault it is


@dataclass(frozen=True)
class Project:
    """What the other files of a Compose project contribute to one file's services.

    `merged`: services defined in the files Compose merges before this one (base before
    override), as they will be once hardened. `extends`: (file as written, service) ->
    data of a service in another file that a service here `extends`. `observed`: service ->
    what runs of the stack showed about it (`harden tune`), the `observed:` evidence.
    """

    merged: Mapping[str, Any] = field(default_factory=dict)
    extends: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    images: Mapping[str, Any] = field(default_factory=dict)  # `image:` as written -> facts read from it
    observed: Mapping[str, Any] = field(default_factory=dict)  # service -> what runs showed (`hardener.observed.Observed`)


class HardenError(Exception):
    """Bad input or a refused result; `line`/`col` are 1-based where known."""

    def __init__(self, message: str, line: int | None = None, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col

    def where(self) -> str:
        if self.line is None:
            return ""
        return f":{self.line}:{self.col}" if self.col is not None else f":{self.line}"


class InputError(HardenError):
    """The input cannot be hardened as it is: not a Compose file, bad YAML, bad `x-harden`,
    unreadable. The message says what to fix."""


class RefusedError(HardenError):
    """The input is fine but the output was refused (a safety check failed, a change cannot
    be placed, the file changed on disk): nothing was written."""
