"""The safety net: checks every output before anyone may write it.

1. The output parses, read by a second, independent loader (libyaml's parser).
2. Its data equals the original's data plus exactly the recorded changes, as computed on
   the plain model (`data.py`) independently of the tree edit and the text patch (deepdiff).
   "The original's data" is what the original file means, read from its own bytes: where
   the parser's normalised copy means something else (a block scalar that ends the file
   without a line break), the output must keep the file's meaning.
3. It has no compose-spec schema errors that the original did not have.
4. Planning again on the output finds nothing to do (idempotent).

Any failure raises `HardenError`; the caller then writes nothing.
"""

from __future__ import annotations

from typing import Any, Callable

from . import document, schema
from .model import Change, HardenError, RefusedError


def check(before: list[Any], intended: list[Any], output: str, replan: Callable[[], list[Change]], original: str | None = None) -> None:
    """`before` / `intended`: each document's data before, and as the plan says it must be
    after. `replan` plans again on the edited documents (which load to the output's data,
    as checked here first). `original`: the input text, read again as written."""
    if original is not None:
        meant = _original_meaning(original, before)
        if meant is not None:
            intended = [_overlay(want, old, raw) for want, old, raw in zip(intended, before, meant)]
    try:
        after = [d for d in document.load_data(output) if d is not None]
    except HardenError as exc:
        raise RefusedError(f"refused: the output does not parse ({exc.message})") from None
    pairs = [(old, want) for old, want in zip(before, intended) if want is not None]
    if len(pairs) != len(after):
        raise RefusedError(f"refused: the output has {len(after)} YAML documents, the input {len(pairs)}")
    for (old_data, want), new_data in zip(pairs, after):
        if want != new_data:  # deepdiff only describes it: it can call two different values equal
            from deepdiff import DeepDiff  # only to describe a failure: slow to import

            diff = DeepDiff(want, new_data, verbose_level=0).to_dict()
            first = next(iter(diff.items()), ("values differ", ""))
            raise RefusedError(f"refused: the output does not load to the intended data ({first[0]}: {str(first[1])[:160]})")
        if want != old_data:
            gained = schema.gained(old_data, new_data)
            if gained:
                raise RefusedError(f"refused: the output breaks the compose-spec schema ({sorted(gained)[0]})")
    again = replan()
    if again:
        raise RefusedError(f"refused: not idempotent, a second run would change {again[0].service}: {again[0].describe()}")


def _original_meaning(original: str, before: list[Any]) -> list[Any] | None:
    """Each document's data as the original bytes mean it, where that differs from `before`."""
    try:
        meant = document.load_data(original)
    except HardenError:
        return None
    return meant if len(meant) == len(before) and meant != before else None


def _overlay(intended: Any, before: Any, meant: Any) -> Any:
    """`intended`, with every value where `before` and `meant` differ taken from `meant`."""
    if before == meant:
        return intended
    if isinstance(intended, dict) and isinstance(before, dict) and isinstance(meant, dict):
        return {k: _overlay(v, before.get(k), meant[k]) if k in meant and k in before else v for k, v in intended.items()}
    if isinstance(intended, list) and isinstance(before, list) and isinstance(meant, list) and len(before) == len(meant):
        return [_overlay(v, before[i], meant[i]) if i < len(before) else v for i, v in enumerate(intended)]
    return meant
