"""The plain, read-only view of one service that passes plan against."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .model import Change, Op


@dataclass(frozen=True)
class ServiceView:
    """A service as Compose sees it (merge keys resolved), plus where things are written."""

    name: str
    data: Mapping[str, Any]
    own: frozenset[str]  # keys written in the service itself, not inherited via `<<:`
    lines: Mapping[str, int] = field(default_factory=dict)  # key -> 1-based line
    line: int | None = None  # line of the service's own key
    document: int = 0
    file_form: str | None = None  # "deploy" / "short": the limits form other services use
    target: str = "compose"  # "swarm" for a stack file (`docker stack deploy`): only what swarm accepts
    stack_pids: bool = True  # the stack file's format takes deploy.resources.limits.pids (3.9 on)
    extended: frozenset[str] = frozenset()  # keys that come from a same-file `extends` base
    config: Mapping[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)  # x-harden path -> (line, col)
    signals: Mapping[str, str] = field(default_factory=dict)  # control -> the author's comment against it

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def inherited(self, key: str) -> bool:
        """True for a key that comes through a `<<:` merge key (not `extends`)."""
        return key in self.data and key not in self.own and key not in self.extended

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key, self.line)

    def with_changes(self, changes: list[Change]) -> "ServiceView":
        """The view as it will be once `changes` are applied (passes see earlier passes)."""
        data = dict(self.data)
        for change in changes:
            if change.op is Op.ADD:
                key = change.path[0]
                current = data.get(key)
                items = [current] if isinstance(current, str) else list(current or [])
                data[key] = [*items, *change.new]
            else:
                node = data
                for key in change.path[:-1]:
                    node[key] = dict(node.get(key) or {})
                    node = node[key]
                node[change.path[-1]] = change.new
        return replace(self, data=data, own=self.own | {c.path[0] for c in changes})
