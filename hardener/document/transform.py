"""A Compose text edited as plain data: round-trip loaded, changed in place, dumped."""

from __future__ import annotations

import io
from typing import Any, Callable

from .read import make_yaml


def transform(text: str, edit: Callable[[Any], None]) -> str:
    """`text` loaded round-trip, handed to `edit(tree)` to change in place as mappings
    (dicts) and lists (the tree is None for an empty text), and dumped. Comments and
    quoting survive; layout does not: the result is for Docker Compose, not for a reader."""
    yaml = make_yaml()
    tree = yaml.load(text)
    edit(tree)
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()
