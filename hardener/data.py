"""A plain model of one document that keeps YAML's sharing: anchors, aliases, merge keys.

A service written `web: &web {...}` and merged by `api: {<<: *web}`, or a list written
once as `&caps [...]` and aliased elsewhere, is one object in the file: a key added to it
shows up wherever it is merged or aliased. This model has the same sharing, so planning
sees what every service will really hold, and the safety net can compute exactly what
the output must load to from the original and the recorded changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Change, RefusedError, Op


@dataclass(eq=False)
class MapNode:
    own: dict[Any, Any] = field(default_factory=dict)
    bases: list["MapNode"] = field(default_factory=list)  # `<<:` sources, first wins

    def lookup(self, key: Any) -> tuple[bool, Any]:
        if key in self.own:
            return True, self.own[key]
        for base in self.bases:
            found, value = base.lookup(key)
            if found:
                return True, value
        return False, None


def resolve(value: Any) -> Any:
    """Plain data as a Compose loader sees it (merge keys applied)."""
    if isinstance(value, MapNode):
        out: dict[Any, Any] = {}
        for base in reversed(value.bases):
            out.update(resolve(base))
        out.update({k: resolve(v) for k, v in value.own.items()})
        return out
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def services(root: Any) -> MapNode | None:
    if not isinstance(root, MapNode):
        return None
    found, value = root.lookup("services")
    return value if found and isinstance(value, MapNode) else None


def apply(root: MapNode, change: Change) -> None:
    """Carry out one change on the model, with the semantics of `edit.apply` on the tree."""
    found, section = root.lookup("services")
    if not found or section is None:
        section = root.own["services"] = MapNode()
    present, service = section.lookup(change.service)
    if not present or service is None:
        service = section.own[change.service] = MapNode()
    if change.op is Op.ADD:
        key = change.path[0]
        if key in service.own:
            current = service.own[key]
            if isinstance(current, list):
                current.extend(change.new)  # shared with every alias of this list
            elif current is None:
                service.own[key] = list(change.new)
            else:
                service.own[key] = [current, *change.new]
            return
        inherited = resolve(service.lookup(key)[1])
        inherited = [inherited] if isinstance(inherited, str) else list(inherited or [])
        service.own[key] = [*inherited, *change.new]
        return
    node = service
    for key in change.path[:-1]:
        if key not in node.own:
            if node.lookup(key)[0]:
                raise RefusedError(f"refusing to edit {key!r} inherited through a merge key")
            node.own[key] = MapNode()
        node = node.own[key]
    node.own[change.path[-1]] = change.new
