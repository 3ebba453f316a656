"""A flow list the patcher cannot follow (a comment inside `[...]` over several lines): the
new items are appended in the text itself; the safety net still checks the result."""


from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ..document import own_keys
from .edit import is_flow, written_here


def flow_append(text: str, service: CommentedMap, key: str, items: list[Any]) -> str | None:
    """`text` (the document's) with `items` appended to the flow list of `key` in
    `service`, written into the text right after its last item, or None where that list
    is no own flow list of the service.

    The patcher aligns the original with a dump of the tree, and a dump drops the comments
    inside a flow collection: one the author wrote over several lines with a comment in
    it cannot be aligned. Appending in the text keeps every byte the author wrote; the
    caller re-reads the result, and the safety net checks what it loads to."""
    if key not in own_keys(service) or not written_here(service, key):
        return None
    seq = service[key]
    if not isinstance(seq, CommentedSeq) or not is_flow(seq):
        return None
    lines = text.split("\n")
    try:
        start = sum(len(line) + 1 for line in lines[:seq.lc.line]) + seq.lc.col
    except (AttributeError, TypeError):
        return None
    if text[start:start + 1] != "[":
        return None
    end = _flow_end(text, start)
    if end is None:
        return None
    last, at = _last_significant(text, start, end)
    rendered = ", ".join(_flow_item(v) for v in items)
    if last in ("[", ","):
        insert = (" " if last == "," else "") + rendered
    else:
        insert = ", " + rendered
    return text[:at] + insert + text[at:]


def _flow_end(text: str, start: int) -> int | None:
    """Index of the `]` that closes the flow list opened at `start`."""
    depth, i, n, prev = 0, start, len(text), "["
    while i < n:
        ch = text[i]
        if ch in "\"'" and prev in "[{,:":  # a quote opens a scalar only where one starts
            i = _closing_quote(text, i)
        elif ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i
        if not ch.isspace():
            prev = ch
        i += 1
    return None


def _closing_quote(text: str, i: int) -> int:
    """Index of the quote that closes the quoted scalar opened at `i` (`\\"` escapes in
    double quotes, `''` in single quotes)."""
    quote, n = text[i], len(text)
    i += 1
    while i < n:
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return n


def _last_significant(text: str, start: int, end: int) -> tuple[str, int]:
    """The last character of the list's content before its `]` that is neither a blank nor
    in a comment, and the index just after it."""
    last, at = "[", start + 1
    i = start + 1
    while i < end:
        ch = text[i]
        if ch == "#" and text[i - 1] in " \t\n":
            while i < end and text[i] != "\n":
                i += 1
            continue
        if ch in "\"'" and last in "[{,:":
            i = _closing_quote(text, i)
            last, at = ch, i + 1
        elif not ch.isspace():
            last, at = ch, i + 1
        i += 1
    return last, at


def _flow_item(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "_-./=" for c in text) and text[0] not in "-.":
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
