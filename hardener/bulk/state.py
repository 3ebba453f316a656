"""What `harden bulk` remembers: the outcome of each repository, and the state file that
lets a rerun skip the repositories already finished.

The state file is JSON, `{"version": 1, "repos": {"/abs/repo": {status, branch, commit,
files, changes, message, finished_at, base, controls, findings}}}`, rewritten atomically
after every repository. Statuses are stored as their plain strings ("committed",
"unchanged", "already done", "error").
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

STATE_VERSION = 1
TEMP_NAME = re.compile(r"\A\.harden-bulk-[a-z0-9_]{8}\.tmp\Z")  # `write_json`'s temp files


class RepoStatus(StrEnum):
    """How one repository ended; the value is what the state file and report hold."""

    COMMITTED = "committed"
    UNCHANGED = "unchanged"
    ALREADY_DONE = "already done"
    ERROR = "error"


# Finished for good: a rerun with the same branch skips these.
DONE = frozenset({RepoStatus.COMMITTED, RepoStatus.UNCHANGED, RepoStatus.ALREADY_DONE})


@dataclass
class RepoRecord:
    repo: str
    status: RepoStatus
    branch: str
    commit: Optional[str] = None
    files: list[str] = field(default_factory=list)
    changes: int = 0
    message: str = ""
    finished_at: str = ""
    base: Optional[str] = None  # the HEAD commit the branch starts from
    controls: dict[str, int] = field(default_factory=dict)
    findings: int = 0

    def entry(self) -> dict[str, Any]:
        """The record as the state file keeps it, under its repository's key."""
        return {k: v for k, v in asdict(self).items() if k != "repo"}


_FIELDS = frozenset(f.name for f in fields(RepoRecord))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StateError(Exception):
    """The state file cannot be used; the message says what to do."""


class StateFile:
    """The state of earlier runs, read from `path` (empty when there is none yet)."""

    def __init__(self, path: str):
        self.path = path
        self.data = _read(path)

    def finished(self, repo: str, branch: str) -> Optional[RepoRecord]:
        """The earlier record of `repo` when it finished for good on `branch`, else None."""
        old = self.data["repos"].get(repo)
        if not isinstance(old, dict) or old.get("branch") != branch:
            return None
        status = old.get("status")
        if not isinstance(status, str) or status not in DONE:
            return None
        known = {k: v for k, v in old.items() if k in _FIELDS}
        return RepoRecord(**{**known, "repo": repo, "status": RepoStatus(status)})

    def save(self, record: RepoRecord) -> None:
        """Store `record` and rewrite the file at once."""
        self.data["repos"][record.repo] = record.entry()
        self.data["version"] = STATE_VERSION
        write_json(self.path, self.data)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"version": STATE_VERSION, "repos": {}}
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read state file {path}: {exc}; fix or remove it") from None
    if not isinstance(data, dict) or not isinstance(data.get("repos"), dict):
        raise StateError(f"state file {path} is not a harden bulk state file; fix or remove it")
    return data


def write_json(path: str, data: Any) -> None:
    """Write `data` as JSON to `path` atomically: temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".harden-bulk-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
