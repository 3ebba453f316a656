"""The short way to a patch: new keys written straight into the text.

Most documents only gain keys a service did not have (`user`, `cap_drop`, `deploy`, ...).
Such a change needs no dump of the whole tree: the new keys, built exactly as `edit.apply`
builds them, are dumped alone and inserted where `render.patch` would put them — after
the last line of the service's last value and the comment lines right below it that are
indented at least as deep as its keys (ruamel hangs the rest, the next service's header
comment, on that value; `edit` moves it below the new keys), at the column of the
service's keys.

`split` says where and what for each changed service it follows, and names the others
(written in a way this does not follow: a flow mapping, a merge key written last, a block
scalar or a value over several lines at its end, an existing key to extend, an alias);
the caller patches those another way (`rewrite`: each alone, or the whole document). The
ways give the same text wherever this one applies (tests/test_splice.py, on every fixture
and corpus file, and on generated texts).
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import (DoubleQuotedScalarString, FoldedScalarString, LiteralScalarString, ScalarString,
                                      SingleQuotedScalarString)

from ..document import Document, dump, merge_position, own_keys
from ..model import Change
from . import edit


Edit = tuple[int, int, list[str]]  # lines [start, stop) of the document replaced by these (an insertion: start == stop)
Order = tuple[list[Any], dict[Any, int]]  # the services in order, and each one's place in it


def insertions(doc: Document, section: CommentedMap, changes: list[Change]) -> list[Edit] | None:
    """The insertions that carry out `changes`, or None where some service needs the long
    way. Reads the tree before it is edited; edits nothing."""
    found = split(doc, section, changes)
    return found[0] if found is not None and not found[1] else None


def split(doc: Document, section: CommentedMap, changes: list[Change]) -> tuple[list[Edit], list[Any]] | None:
    """(insertions for the services the short way follows, names of the other changed
    services), or None where the `services` mapping itself is not followed."""
    if edit.is_flow(section) or merge_position(section) is not None or not changes:
        return None
    by_service: dict[Any, list[Change]] = {}
    for change in changes:
        by_service.setdefault(change.service, []).append(change)
    names = order(section)
    out: list[Edit] = []
    rest = []
    for name, planned in by_service.items():
        at = _place(doc, section, names, name, planned)
        if at is None:
            rest.append(name)
            continue
        line, column = at
        out.append((line, line, [" " * column + text if text else text for text in _new_keys(doc, planned)]))
    return out, rest


def _place(doc: Document, section: CommentedMap, names: Order, name: Any, planned: list[Change]) -> tuple[int, int] | None:
    """(line index, column) of the service's new keys, or None: the long way."""
    service = section.get(name)
    if not isinstance(service, CommentedMap) or not service or edit.is_flow(service):
        return None
    merge = merge_position(service)
    if (merge is not None and merge >= len(own_keys(service))) or not edit.written_here(section, name):
        return None  # `<<:` written last: what follows the last key precedes it
    if any(change.path[0] in service for change in planned):
        return None  # extends or writes into a key it has: the long way
    return _insert_at(doc, section, names, name, service)


def spliced(doc: Document, edits: list[Edit]) -> str:
    """The document's text with each edit made (none overlap)."""
    lines = doc.lines[:-1]  # the text ends with "\n": its last element is ""
    out: list[str] = []
    done = 0
    for start, stop, new in sorted(edits, key=lambda item: item[0]):
        out.extend(lines[done:start])
        out.extend(new)
        done = stop
    out.extend(lines[done:])
    return "\n".join(out) + "\n"


def service_range(doc: Document, section: CommentedMap, names: Order, name: Any) -> tuple[int, int] | None:
    """Lines [start, stop) of the document that are the service's: its key line up to the
    next service or top-level key (the comments before those included), or None.
    `names`: `order(section)`."""
    try:
        start = section.lc.key(name)[0]
    except (AttributeError, KeyError, TypeError):
        return None
    stop = _next_line(doc, section, names, name)
    return (start, stop) if stop is not None and stop > start else None


def _new_keys(doc: Document, planned: list[Change]) -> list[str]:
    """The lines `edit.apply` writes for these new keys, at column 0. Services of one
    profile mostly gain the same keys: each set is dumped once per run."""
    try:
        key = (doc.indent, tuple((change.op, change.path, _typed(change.new)) for change in planned))
        hash(key)
    except TypeError:  # a value that is a mapping: no key, dumped every time
        return _dump(doc.indent, planned)
    lines = _DUMPED.get(key)
    if lines is None:
        if len(_DUMPED) >= 256:
            _DUMPED.clear()
        lines = _DUMPED[key] = _dump(doc.indent, planned)
    return lines


_DUMPED: dict[Any, list[str]] = {}


def _typed(value: Any) -> Any:
    """`value` with its type, so that equal values written differently (1, 1.0, True) differ."""
    if isinstance(value, (tuple, list)):
        return type(value).__name__, tuple(_typed(v) for v in value)
    return type(value).__name__, value


def _dump(indent: tuple[int, int, int], planned: list[Change]) -> list[str]:
    name = planned[0].service
    scratch = CommentedMap([(name, CommentedMap())])
    edit.apply(scratch, planned)
    return dump(scratch[name], indent).split("\n")[:-1]


def _insert_at(doc: Document, section: CommentedMap, names: Order, name: Any, service: CommentedMap) -> tuple[int, int] | None:
    """(line index, column) where the service's new keys go, or None."""
    end = _end_line(service, doc.lines)
    if end is None:
        return None
    try:
        column = service.lc.key(own_keys(service)[0])[1]
    except (AttributeError, KeyError, IndexError, TypeError):
        return None
    lines = doc.lines
    stop = _next_line(doc, section, names, name)
    if stop is None or stop <= end:
        return None
    for index in range(end + 1, stop):  # between the last value and what follows: blanks and comments only
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#"):
            return None
    at = end + 1
    if _ends_in_flow(service) and any(lines[index].strip() for index in range(at, stop)):
        return None  # ruamel keeps the comments after a flow collection with it, the long way moves them
    while at < stop:  # comment lines right below, as deep as the keys: commented-out entries, kept above
        text = lines[at]
        stripped = text.lstrip(" ")
        if not stripped.startswith("#") or len(text) - len(stripped) < column:
            break
        at += 1
    return at, column


def order(section: CommentedMap) -> Order:
    """The services in order, and where each is in it."""
    names = list(section.keys())
    return names, {name: index for index, name in enumerate(names)}


def _next_line(doc: Document, section: CommentedMap, names: Order, name: Any) -> int | None:
    """Index of the first line after the service that belongs to something else: the next
    service, the next top-level key, or the end of the document's text."""
    listed, position = names[0], names[1][name]
    try:
        if position + 1 < len(listed):
            return section.lc.key(listed[position + 1])[0]
        top = list(doc.tree.keys())
        after = top.index("services") + 1
        if after < len(top):
            return doc.tree.lc.key(top[after])[0]
    except (AttributeError, KeyError, ValueError, TypeError):
        return None
    last = len(doc.lines) - 1  # the "" after the final line break
    return last


def _end_line(node: Any, lines: list[str], top: bool = True) -> int | None:
    """Index of the line where the last value of a block mapping or list ends, when it is
    written on one line; None where this does not follow it. Below the service (`top`),
    a mapping with a merge key is not followed."""
    if isinstance(node, CommentedMap):
        keys = own_keys(node)
        if not keys or (merge_position(node) is not None and not top) or edit.is_flow(node):
            return None
        key = keys[-1]
        value = node[key]
        if _block(value) and edit.written_here(node, key):
            return _end_line(value, lines, False)
        try:
            line, column = node.lc.key(key)[0], None
            if value is not None:
                line, column = node.lc.value(key)
                if line < node.lc.key(key)[0]:
                    return None  # an alias: the position is the anchor's
        except (AttributeError, KeyError, TypeError):
            return None
    elif isinstance(node, CommentedSeq):
        if not len(node) or edit.is_flow(node):
            return None
        value = node[-1]
        if _block(value) and not edit.is_alias(node, len(node) - 1, value):
            return _end_line(value, lines, False)
        if value is None:
            return None
        try:
            line, column = node.lc.item(len(node) - 1)
        except (AttributeError, KeyError, IndexError, TypeError):
            return None
    else:
        return None
    return line if _one_line(value, lines[line], column) else None


def _ends_in_flow(node: Any) -> bool:
    """The last value of a block mapping or list, followed down, is a flow collection."""
    while _block(node):
        node = node[own_keys(node)[-1]] if isinstance(node, CommentedMap) else node[-1]
    return isinstance(node, (CommentedMap, CommentedSeq))


def _block(value: Any) -> bool:
    return isinstance(value, (CommentedMap, CommentedSeq)) and len(value) > 0 and not edit.is_flow(value)


def _one_line(value: Any, line: str, column: int | None) -> bool:
    """False for values that may run over several lines in a way the line scan could
    mistake for comments: block scalars, and quoted strings that do not close on `line`
    (read from the value's `column`: only blanks or a comment may follow the quote)."""
    if isinstance(value, (LiteralScalarString, FoldedScalarString)):
        return False
    if not isinstance(value, ScalarString):
        return True
    quote = '"' if isinstance(value, DoubleQuotedScalarString) else "'" if isinstance(value, SingleQuotedScalarString) else None
    if quote is None or column is None or line[column:column + 1] != quote:
        return False
    at = column + 1
    while at < len(line):
        char = line[at]
        if quote == '"' and char == "\\":
            at += 2
            continue
        if char == quote:
            if quote == "'" and line[at + 1:at + 2] == "'":  # '' is a quote inside
                at += 2
                continue
            rest = line[at + 1:]
            return not rest.strip() or rest.lstrip(" ").startswith("#") and rest[:1] == " "
        at += 1
    return False
