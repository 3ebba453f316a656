"""The services of a document: where each is written, its x-harden positions, the
author's signals, and the plain model (`data.MapNode`) of the tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap

from .. import data
from ..model import InputError
from ..signals import author_signals
from .read import Document, key_line, own_keys, positions, scalar, value_position


@dataclass(frozen=True)
class Layout:
    """Where one service is written: its key's line, its own keys' lines, and the
    (line, column) of every value of its `x-harden` block."""

    line: int | None
    keys: dict[str, int]
    config: dict[tuple[Any, ...], tuple[int, int]]
    signals: dict[str, str]  # control -> the author's comment that says to leave it alone


def services(doc: Document) -> CommentedMap | None:
    """The document's `services:` mapping (empty for `services:` with no value), or None
    when the document has none; bad input raises `HardenError` at the value."""
    tree = doc.tree
    if not isinstance(tree, CommentedMap) or "services" not in tree:
        return None
    section = tree["services"]
    if section is None:
        return CommentedMap()
    if not isinstance(section, CommentedMap):
        raise InputError("services is not a mapping", *value_position(tree, "services", doc.first_line))
    return section


def service_names(doc: Document) -> list[Any]:
    section = services(doc)
    return list(section) if section is not None else []


def layout(doc: Document, name: Any) -> Layout:
    section = services(doc)
    node = section[name] if section is not None else None
    if node is not None and not isinstance(node, dict):
        raise InputError(f"service {name!r} is not a mapping", *value_position(section, name, doc.first_line))
    keys: dict[str, int] = {}
    config: dict[tuple[Any, ...], tuple[int, int]] = {}
    if isinstance(node, CommentedMap):
        for key in own_keys(node):
            line = key_line(node, key, doc.first_line)
            if line is not None:
                keys[str(key)] = line
        block = node.get("x-harden")
        if block is not None:
            config = positions(block, doc.first_line, ("x-harden",))
            where = value_position(node, "x-harden", doc.first_line)
            if where[0] is not None:
                config[("x-harden",)] = where  # type: ignore[assignment]
    line = key_line(section, name, doc.first_line)
    signals = author_signals(doc.lines, line - 1 - doc.first_line, doc.first_line) if line is not None and "#" in doc.text else {}
    return Layout(line, keys, config, signals)


def model(node: Any, memo: dict[int, Any] | None = None) -> Any:
    """The plain model (`data.MapNode`, lists, scalars) of a tree, one model object per YAML
    node, so anchors, aliases and merge keys stay shared as in the file."""
    memo = {} if memo is None else memo
    if isinstance(node, dict):
        if id(node) in memo:
            return memo[id(node)]
        out = memo[id(node)] = data.MapNode()
        for key in own_keys(node):
            out.own[scalar(key)] = model(node[key], memo)
        for base in getattr(node, "merge", None) or []:
            base = base[1] if isinstance(base, tuple) else base
            out.bases.append(model(base, memo))
        return out
    if isinstance(node, list):
        if id(node) in memo:
            return memo[id(node)]
        out_list: list[Any] = []
        memo[id(node)] = out_list
        out_list.extend(model(v, memo) for v in node)
        return out_list
    return scalar(node)
