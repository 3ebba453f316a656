"""A second, independent reader: the safe loader (libyaml's parser where installed), for
the plain data the safety net compares and for cheap scans of many files."""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode, SequenceNode

from ..model import HardenError, InputError
from .read import parse, plain, positions


class _DataConstructor(SafeConstructor):
    """Safe constructor that keeps unknown tags (`!reset`, `!override`) as `scalar()` does."""


def _tagged(constructor: SafeConstructor, suffix: str, node: Any) -> Any:
    if isinstance(node, ScalarNode):
        return f"!{suffix} {node.value}"
    if isinstance(node, SequenceNode):
        return constructor.construct_sequence(node, deep=True)
    return constructor.construct_mapping(node, deep=True)


_DataConstructor.add_multi_constructor("!", _tagged)


def safe_load_all(text: str) -> list[Any]:
    """Every document as the safe loader builds it (libyaml's parser where installed;
    unknown tags such as `!reset` kept as `scalar()` keeps them). Aliases stay shared
    objects: nothing is expanded here."""
    yaml = YAML(typ="safe")
    yaml.Constructor = _DataConstructor
    try:
        return list(yaml.load_all(text))
    except YAMLError as exc:
        raise InputError(f"invalid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def load_data(text: str) -> list[Any]:
    """Plain data of every document, read by a second loader (libyaml's parser where
    installed): what the safety net compares against the intended data. Where that
    YAML 1.1 parser refuses what the file's author wrote (e.g. `[a:b]` in a flow list,
    valid YAML 1.2 that Compose reads), the round-trip loader reads it instead."""
    try:
        return [plain(doc) for doc in safe_load_all(text)]
    except HardenError:
        _, documents = parse(text)
        return [plain(doc.tree) if doc.tree is not None else None for doc in documents]


def load_one(text: str) -> Any:
    """One document with the safe loader (configuration files); bad YAML is an `InputError`
    at the line:column the parser names."""
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) if isinstance(exc, MarkedYAMLError) else None
        reason = problem or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InputError(f"invalid YAML: {reason}", mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None


def text_positions(text: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(line, column) of every value of a one-document text, by path (`read.positions`)."""
    tree = YAML(typ="rt").load(text)
    return positions(tree) if isinstance(tree, (dict, list)) else {}
