"""The safety net: checks every output before anyone may write it.

1. The output parses, read by a second, independent loader (libyaml's parser).
2. Its data equals the original's data plus exactly the recorded changes, as computed on
   the plain model (`data.py`) independently of the tree edit and the text patch (deepdiff).
3. It has no compose-spec schema errors that the original did not have.
4. Planning again on the output finds nothing to do (idempotent).

Any failure raises `HardenError`; the caller then writes nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from deepdiff import DeepDiff

from . import document, schema
from .model import Change, HardenError, RefusedError


def check(before: list[Any], intended: list[Any], output: str, replan: Callable[[], list[Change]]) -> None:
    """`before` / `intended`: each document's data before, and as the plan says it must be
    after. `replan` plans again on the edited documents (which load to the output's data,
    as checked here first)."""
    try:
        after = [d for d in document.load_data(output) if d is not None]
    except HardenError as exc:
        raise RefusedError(f"refused: the output does not parse ({exc.message})") from None
    pairs = [(old, want) for old, want in zip(before, intended) if want is not None]
    if len(pairs) != len(after):
        raise RefusedError(f"refused: the output has {len(after)} YAML documents, the input {len(pairs)}")
    for (old_data, want), new_data in zip(pairs, after):
        diff = None if want == new_data else DeepDiff(want, new_data, verbose_level=0)
        if diff:
            first = next(iter(diff.to_dict().items()))
            raise RefusedError(f"refused: the output does not load to the intended data ({first[0]}: {str(first[1])[:160]})")
        if want != old_data:
            gained = schema.errors(new_data)
            gained = gained - schema.errors(old_data) if gained else gained
            if gained:
                raise RefusedError(f"refused: the output breaks the compose-spec schema ({sorted(gained)[0]})")
    again = replan()
    if again:
        raise RefusedError(f"refused: not idempotent, a second run would change {again[0].service}: {again[0].describe()}")
