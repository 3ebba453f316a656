"""The one module that edits the ruamel tree.

Passes plan `Change`s against a plain view; this module carries them out on the
round-trip tree: it appends keys and list items, never rewrites what is there, keeps flow
style where the author used it, and moves the comment block that ruamel hangs on a
service's last value (the next service's header comment) onto the new last key, so new
keys land inside their service and above the comment that introduces the next one.

A list or mapping written at the edited key as `*alias` is never extended or written
into (that would change every other place that names its anchor): the key gets a new
value, a copy with the additions (`data.apply` does the same on the plain model). One
written there with its anchor (`&name`) and aliased elsewhere cannot be copied without
moving the anchor: the planner leaves such changes out (`written_here`).
"""

from __future__ import annotations

from typing import Any, Iterable

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString, LiteralScalarString
from ruamel.yaml.tokens import CommentToken

from ..document import merge_position, own_keys
from ..model import Change, RefusedError, Op

_COMMENT = 2  # slot of the comment after a mapping value in ca.items
_ITEM_COMMENT = 0  # slot of the comment after a sequence item


def apply(services: CommentedMap, changes: Iterable[Change], unterminated: bool = False) -> None:
    """Carry out `changes` on the `services` mapping of one document, in order.

    `unterminated`: the document ends the file without a final line break. A block scalar
    (`command: |`) written last then means its text without a trailing newline; a key
    appended after it would give the value that newline. New keys of that service go
    before the key that holds it instead."""
    last = _last_block_key(services) if unterminated else None
    by_service: dict[str, list[Change]] = {}
    for change in changes:
        by_service.setdefault(change.service, []).append(change)
    for name, planned in by_service.items():
        service = services.get(name)
        if not isinstance(service, CommentedMap):
            raise RefusedError(f"service {name!r} is not a mapping", *_at(services, name))
        flow = is_flow(service)
        before = last[1] if last is not None and last[0] == name else None
        for change in planned:
            if change.op is Op.SET:
                _set_path(service, change.path, _scalar(change.path[-1], change.new, flow), before)
            else:
                current = service.get(change.path[0])
                in_flow = flow or (change.path[0] in own_keys(service) and is_flow(current))
                _add_items(service, change.path[0], [_scalar(change.path[0], v, in_flow) for v in change.new], before)


def _last_block_key(services: CommentedMap) -> tuple[Any, Any] | None:
    """(service, key) when the document's last value is a block scalar inside that key
    of the last service, written last in the file."""
    if not services:
        return None
    name = list(services.keys())[-1]
    service = services[name]
    if not isinstance(service, CommentedMap) or not service or is_flow(service):
        return None
    key = list(service.keys())[-1]
    node: Any = service[key]
    while isinstance(node, (CommentedMap, CommentedSeq)) and node and not is_flow(node):
        node = node[list(node.keys())[-1]] if isinstance(node, CommentedMap) else node[-1]
    return (name, key) if isinstance(node, (LiteralScalarString, FoldedScalarString)) else None


def _scalar(key: str, value: Any, flow: bool = False) -> Any:
    # `user: 1000:50` is base-60 in YAML 1.1 readers; always quote it. In a flow
    # collection, `[no-new-privileges:true]` is valid YAML 1.2 but YAML 1.1 parsers
    # (PyYAML, libyaml) reject the colon: quote such items there too.
    if isinstance(value, str) and (key == "user" or (flow and ":" in value)):
        return DoubleQuotedScalarString(value)
    return value


def _set_path(node: CommentedMap, path: tuple[str, ...], value: Any, before: Any = None) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if head in own_keys(node):
            raise RefusedError(f"refusing to overwrite existing key {head!r}", *_at(node, head))
        append_key(node, head, value, before)
        return
    child = node.get(head) if head in own_keys(node) else None
    if isinstance(child, CommentedMap) and not written_here(node, head):
        child = node[head] = fresh(child)  # an alias: a copy of its target, the anchor untouched
    if child is None:
        if head in node:  # inherited through a merge key: never edit the anchor
            raise RefusedError(f"refusing to edit {head!r} inherited through a merge key", *_at(node))
        built: Any = value
        for key in reversed(rest):
            built = CommentedMap([(key, built)])
        append_key(node, head, built, before)
        return
    if not isinstance(child, CommentedMap):
        raise RefusedError(f"cannot add {'.'.join(path)}: {head!r} is not a mapping", *_at(node, head))
    _set_path(child, rest, value)


def _add_items(service: CommentedMap, key: str, items: list[Any], before: Any = None) -> None:
    if key in own_keys(service):
        current = service[key]
        if current is None:  # `cap_drop:` with no value
            service[key] = CommentedSeq(items)
            return
        if isinstance(current, CommentedSeq) and not written_here(service, key):
            service[key] = fresh(current, extra=items)  # an alias: a new list, the anchor untouched
            return
        if isinstance(current, CommentedSeq):
            append_items(current, items)
            return
        if isinstance(current, str):  # `tmpfs: /run` written as a single string
            seq = CommentedSeq([current, *items])
            _copy_eol_comment(service, key, seq)
            service[key] = seq
            return
        raise RefusedError(f"cannot add to {key!r}: it is neither a list nor a string", *_at(service, key))
    inherited = service.get(key)
    inherited = [inherited] if isinstance(inherited, str) else list(inherited or [])
    seq = CommentedSeq([*inherited, *items])
    append_key(service, key, seq, before)


def _at(mapping: Any, key: Any = None) -> tuple[int | None, int | None]:
    """1-based (line, column) of `key` in `mapping` (of the mapping itself without a key),
    within the document: the caller adds where the document starts in the file."""
    try:
        line, col = mapping.lc.key(key) if key is not None else (mapping.lc.line, mapping.lc.col)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return None, None


def written_here(mapping: CommentedMap, key: Any) -> bool:
    """False where the value of `key` is written as `*alias` (its node starts before the
    key: an anchor is defined before every alias of it)."""
    value = mapping.get(key)
    try:
        start = (value.lc.line, value.lc.col)
        return start >= tuple(mapping.lc.key(key))
    except (AttributeError, KeyError, TypeError):
        return True


def fresh(node: Any, extra: Iterable[Any] = ()) -> Any:
    """A new collection equal to `node` (merge keys applied, `extra` appended to a list),
    in its style and with its tag, sharing no collection with it. `node` keeps its
    anchor written even where no alias of it is left."""
    anchor = getattr(node, "anchor", None)
    if getattr(anchor, "value", None):
        node.yaml_set_anchor(anchor.value, always_dump=True)
    if isinstance(node, CommentedMap):
        out: Any = CommentedMap((k, fresh(v)) for k, v in node.items())
    elif isinstance(node, CommentedSeq):
        out = CommentedSeq([*(fresh(v) for v in node), *extra])
    else:
        return node
    if is_flow(node):
        out.fa.set_flow_style()
    tag = getattr(node, "tag", None)
    if getattr(tag, "value", None):
        out.yaml_set_ctag(tag)
    return out


def _copy_eol_comment(service: CommentedMap, key: str, seq: CommentedSeq) -> None:
    token = _take_token(service, key, _COMMENT)
    if token is not None:
        seq.ca.items[0] = [token, None, None, None]


# --- appending with the trailing comment moved ----------------------------------------


def append_key(mapping: CommentedMap, key: str, value: Any, before: Any = None) -> None:
    if before is not None and before in mapping:  # new keys go above `before`, which stays last
        mapping.insert(list(mapping.keys()).index(before), key, value)
        return
    token = _detach_trailing(mapping)
    mapping[key] = value
    if token is not None:
        _attach_trailing(mapping, token)


def append_items(seq: CommentedSeq, items: list[Any]) -> None:
    token = _detach_trailing(seq)
    seq.extend(items)
    if token is not None:
        _attach_trailing(seq, token)


def is_flow(node: Any) -> bool:
    return bool(getattr(node, "fa", None) and node.fa.flow_style())


def is_alias(node: Any, key: Any, value: Any) -> bool:
    """True where `value` is written as `*alias` here: its comments live at the anchor."""
    try:
        here = tuple(node.lc.key(key) if isinstance(node, CommentedMap) else node.lc.item(key))
        return (value.lc.line, value.lc.col) < here
    except (AttributeError, KeyError, TypeError, IndexError):
        return False


def _last(node: Any) -> tuple[Any, int] | None:
    """(key or index, comment slot) of the last own entry of a block collection."""
    if isinstance(node, CommentedMap):
        keys = own_keys(node)
        return (keys[-1], _COMMENT) if keys else None
    if isinstance(node, CommentedSeq):
        return (len(node) - 1, _ITEM_COMMENT) if len(node) else None
    return None


def _take_token(node: Any, key: Any, slot: int) -> CommentToken | None:
    entry = node.ca.items.get(key)
    if not entry or len(entry) <= slot or entry[slot] is None:
        return None
    token = entry[slot]
    entry[slot] = None
    return token


def _key_column(node: Any) -> int:
    """Column of `node`'s entries in the file; for a node made here, deeper than any line."""
    try:
        if isinstance(node, CommentedMap):
            first = own_keys(node)[0]
            return node.lc.key(first)[1]
        return node.lc.item(0)[1]
    except (AttributeError, IndexError, KeyError, TypeError):
        return 1 << 30


def _detach_trailing(node: Any, column: int | None = None) -> str | None:
    """Cut the comment lines after `node`'s last value that belong to what follows.

    Returns the full-line text to re-hang after the new last entry, or None. The
    end-of-line comment of the last value stays, as do comment lines right below it that
    are indented at least as deep as `node`'s keys (commented-out entries of `node`).
    """
    if is_flow(node):
        return None
    last = _last(node)
    if last is None:
        return None
    key, slot = last
    merge_at = merge_position(node) if isinstance(node, CommentedMap) else None
    if merge_at is not None and merge_at >= len(own_keys(node)):
        return None  # `<<:` is written after the last key: what follows that key precedes it
    value = node[key]
    if column is None:
        column = _key_column(node)
    if isinstance(value, (CommentedMap, CommentedSeq)) and not is_flow(value) and len(value) and not is_alias(node, key, value):
        deeper = _detach_trailing(value, column)
        if deeper is not None:
            return deeper
    entry = node.ca.items.get(key)
    if not entry or len(entry) <= slot or entry[slot] is None:
        return None
    token = entry[slot]
    text = token.value
    if isinstance(value, (LiteralScalarString, FoldedScalarString)):
        # After a block scalar the token holds whole lines; its first line's indentation
        # is the token's column, not part of the text.
        column_of_first = getattr(token, "column", None) or 0
        head, rest = "", (" " * column_of_first + text if text.startswith("#") else text)
    elif "\n" in text:
        cut = text.index("\n") + 1
        head, rest = text[:cut], text[cut:]
    else:
        return None
    lines = rest.splitlines(keepends=True)
    keep = 0
    while keep < len(lines):
        stripped = lines[keep].lstrip(" ")
        if not stripped.startswith("#") or len(lines[keep]) - len(stripped) < column:
            break
        keep += 1
    if isinstance(value, (LiteralScalarString, FoldedScalarString)) and keep:
        # The token's first line is written at the token's column: keep that indentation.
        head = lines[0][column_of_first:] + "".join(lines[1:keep])
    else:
        head += "".join(lines[:keep])
    moved = "".join(lines[keep:])
    if not moved:
        return None
    if head in ("", "\n"):
        entry[slot] = None
    else:
        token.value = head
    return moved


def _attach_trailing(node: Any, moved: str) -> None:
    last = _last(node)
    if last is None:
        return
    key, slot = last
    value = node[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and not is_flow(value) and len(value) and not is_alias(node, key, value):
        _attach_trailing(value, moved)
        return
    _put_rest(node, key, moved, slot)


def _put_rest(node: Any, key: Any, moved: str, slot: int = _COMMENT) -> None:
    entry = node.ca.items.setdefault(key, [None, None, None, None])
    while len(entry) <= slot:
        entry.append(None)
    existing = entry[slot]
    if existing is not None:
        existing.value = existing.value + moved
        return
    entry[slot] = CommentToken("\n" + moved, CommentMark(0), None)


# Defined in flowtext.py; the core imports it from here.
from .flowtext import flow_append  # noqa: E402,F401
