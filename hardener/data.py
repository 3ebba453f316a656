"""A plain model of one document that keeps YAML's sharing: anchors, aliases, merge keys.

A service written `web: &web {...}` and merged by `api: {<<: *web}`, or a list written
once as `&caps [...]` and aliased elsewhere, is one object in the file: a key added to it
shows up wherever it is merged or aliased. This model has the same sharing, so planning
sees what every service will really hold, and the safety net can compute exactly what
the output must load to from the original and the recorded changes.

A change never extends a list or mapping that is referenced from more than one place:
that would change the other places too (`dns_opt: *caps` beside `cap_drop: &caps [...]`,
another service's `cap_add`). The change writes a new value at its own place instead
(`rewrite.edit` does the same on the tree: a value written there as `*alias` is replaced
by a copy); a shared value written (anchored) at the change's own place cannot be
copied there without moving the anchor, so the planner leaves that change out
(`shared_at`).

Compose's merge tags: `!reset` removes a key from the merged service, `!override`
replaces a value instead of merging it. `MapNode.tags` records them for the keys written
with one; `resolve` renders the data as the YAML loaders read it (the tag kept in a
scalar's text, a tagged list as a list: what the safety net compares), `compose` as
Compose reads it (a reset key gone, an override's value plain), `compose(marks=True)` with
`RESET` / `Override` markers where another file's data is merged in (`inherit.merge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .model import Change, RefusedError, Op

RESET_TAG, OVERRIDE_TAG = "reset", "override"


@dataclass(eq=False)
class MapNode:
    own: dict[Any, Any] = field(default_factory=dict)
    bases: list["MapNode"] = field(default_factory=list)  # `<<:` sources, first wins
    tags: dict[Any, str] = field(default_factory=dict)  # own key -> "reset" / "override" (Compose's merge tags)

    def lookup(self, key: Any) -> tuple[bool, Any]:
        if key in self.own:
            return True, self.own[key]
        for base in self.bases:
            found, value = base.lookup(key)
            if found:
                return True, value
        return False, None


class Reset:
    """Marker: `!reset` removes this key from what the files before this one hold."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reset)

    def __hash__(self) -> int:
        return hash(Reset)

    def __repr__(self) -> str:
        return "RESET"


RESET = Reset()


@dataclass(frozen=True)
class Override:
    """Marker: `!override` replaces the value the files before this one hold."""

    value: Any


def resolve(value: Any) -> Any:
    """Plain data as a YAML loader sees it (merge keys applied)."""
    if isinstance(value, MapNode):
        out: dict[Any, Any] = {}
        for base in reversed(value.bases):
            out.update(resolve(base))
        out.update({k: resolve(v) for k, v in value.own.items()})
        return out
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def compose(value: Any, marks: bool = False) -> Any:
    """Plain data as Compose reads it: a `!reset` key removed (a value a merge key
    brings in then shows through), an `!override` value as written. With `marks`, a reset
    key no merge key fills is `RESET` and an override value is `Override(value)`, for
    merging onto what another file holds (`inherit.merge`)."""
    if isinstance(value, MapNode):
        out: dict[Any, Any] = {}
        for base in reversed(value.bases):
            out.update(compose(base, marks))
        for key, item in value.own.items():
            tag = value.tags.get(key)
            if tag == RESET_TAG:
                if marks and key not in out:
                    out[key] = RESET
                continue
            plain = compose(untagged(item) if tag else item, marks)
            out[key] = Override(plain) if marks and tag == OVERRIDE_TAG else plain
        return out
    if isinstance(value, list):
        return [compose(v, marks) for v in value]
    return value


def untagged(value: Any) -> Any:
    """A tagged scalar's value (`!override 0.5` is kept as that text): the plain scalar."""
    if not isinstance(value, str) or not value.startswith("!"):
        return value
    text = value.split(" ", 1)[1] if " " in value else ""
    return _scalar(text)


def _scalar(text: str) -> Any:
    """A plain scalar's value under YAML 1.2's core schema (what Compose's loader uses)."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def tagged_paths(node: Any, tag: str, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths (from `node`) of the keys written with Compose's `tag` ("reset" / "override")."""
    if not isinstance(node, MapNode):
        return
    for key, item in node.own.items():
        if node.tags.get(key) == tag:
            yield (*path, key)
        elif isinstance(item, MapNode):
            yield from tagged_paths(item, tag, (*path, key))


def services(root: Any) -> MapNode | None:
    if not isinstance(root, MapNode):
        return None
    found, value = root.lookup("services")
    return value if found and isinstance(value, MapNode) else None


# --- sharing ------------------------------------------------------------------------------


def references(root: Any) -> dict[int, int]:
    """How many places refer to each list and mapping of the document (by `id`): more than
    one means it is written once and aliased (or merged) elsewhere."""
    counts: dict[int, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, (MapNode, list)):
            continue
        counts[id(node)] = counts.get(id(node), 0) + 1
        if counts[id(node)] > 1:
            continue  # its children were counted the first time
        if isinstance(node, MapNode):
            stack.extend(node.own.values())
            stack.extend(node.bases)
        else:
            stack.extend(node)
    return counts


def where(root: Any, target: Any, limit: int = 1000) -> list[tuple[Any, ...]]:
    """Paths of the places that refer to `target` (up to `limit`), in the order written;
    "<<" stands for a merge key."""
    found: list[tuple[Any, ...]] = []
    seen: set[int] = set()

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if len(found) >= limit:
            return
        if node is target and path:
            found.append(path)
            return
        if not isinstance(node, (MapNode, list)) or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, MapNode):
            for key, item in node.own.items():
                walk(item, (*path, key))
            for base in node.bases:
                walk(base, (*path, "<<"))
        else:
            for index, item in enumerate(node):
                walk(item, (*path, index))

    walk(root, ())
    return found


def targets(root: MapNode, change: Change) -> list[Any]:
    """The lists and mappings `change` would write into, outermost first (what exists of
    its path in the service's own keys)."""
    section = services(root)
    service = section.own.get(change.service) if section is not None else None
    if not isinstance(service, MapNode):
        return []
    out: list[Any] = []
    node: Any = service
    for key in change.path[:-1] if change.op is Op.SET else change.path:
        if not isinstance(node, MapNode) or key not in node.own:
            break
        node = node.own[key]
        if isinstance(node, (MapNode, list)):
            out.append(node)
    return out


def copy(value: Any) -> Any:
    """A new value equal to `value` that shares nothing with it."""
    if isinstance(value, MapNode):
        return MapNode({k: copy(v) for k, v in value.own.items()}, [copy(b) for b in value.bases], dict(value.tags))
    if isinstance(value, list):
        return [copy(v) for v in value]
    return value


# --- changes ------------------------------------------------------------------------------


def apply(root: MapNode, change: Change, shared: dict[int, int] | None = None) -> None:
    """Carry out one change on the model, with the semantics of `edit.apply` on the tree.
    `shared`: `references(root)`; a list or mapping referred to from elsewhere is copied
    at the change's place, never extended (the planner left out changes that would have
    to write into such a value where it is anchored)."""
    counts = shared if shared is not None else references(root)
    is_shared = lambda node: counts.get(id(node), 0) > 1  # noqa: E731
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
            if isinstance(current, list) and not is_shared(current):
                current.extend(change.new)
            elif isinstance(current, list):
                service.own[key] = [*copy(current), *change.new]  # a new value, the alias's target untouched
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
        elif isinstance(node.own[key], MapNode) and is_shared(node.own[key]):
            node.own[key] = copy(node.own[key])
        node = node.own[key]
    node.own[change.path[-1]] = change.new
