"""A Compose text edited as plain data: round-trip loaded, changed in place, dumped."""

from __future__ import annotations

from typing import Any, Callable

from .read import dump, make_yaml


def transform(text: str, edit: Callable[[Any], None]) -> str:
    """`text` loaded round-trip, handed to `edit(tree)` to change in place as mappings
    (dicts) and lists (the tree is None for an empty text), and dumped. Comments and
    quoting survive; layout does not: the result is for Docker Compose, not for a reader."""
    tree = make_yaml().load(text)
    edit(tree)
    return dump(tree)
