"""How harden talks on a terminal: plurals, colour, verbosity.

Colour only where a person reads it: on when the stream is a terminal (and TERM is not
`dumb`), off otherwise; `NO_COLOR` (any non-empty value, https://no-color.org) turns it off
everywhere, `FORCE_COLOR` (non-empty, not `0`) turns it on for pipes and CI logs.
`NO_COLOR` wins when both are set.
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import IO, Mapping, Optional


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """`1 change`, `0 changes`, `2 services`; `many` for irregular plurals."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def use_colour(stream: Optional[IO[str]], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether to colour what goes to `stream` (see the module docstring)."""
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR")
    if force and force != "0":
        return True
    if environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class Verbosity(IntEnum):
    QUIET = 0  # errors, and what was asked for on stdout (diff, machine report, hardened text)
    NORMAL = 1
    VERBOSE = 2  # also why each change is made, and what discovery left out


def verbosity(quiet: bool, verbose: bool) -> Verbosity:
    if quiet:
        return Verbosity.QUIET
    return Verbosity.VERBOSE if verbose else Verbosity.NORMAL


# Styles of the text report, as click.style arguments; applied only when colour is on.
STYLES: dict[str, dict[str, object]] = {
    "path": {"bold": True},
    "error": {"fg": "red", "bold": True},
    "risk": {"fg": "red"},
    "warning": {"fg": "yellow"},
    "accepted": {"fg": "cyan"},
    "change": {"fg": "green"},
    "dim": {"dim": True},
}


def style(text: str, kind: str, colour: bool) -> str:
    if not colour:
        return text
    import click

    return click.style(text, **STYLES[kind])  # type: ignore[arg-type]
