"""Table tests of each pass's `plan()` on plain data: no text, no YAML tree.

`settings_for` is the one place that builds a service's `Settings` (through the public
path: a profile, then `resolve`); if that path moves, only this function changes.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Callable

import pytest

from hardener.model import Change, Skip
from hardener.view import ServiceView


@cache
def _profile(name: str):
    from hardener.profile import load_profile

    return load_profile(name)


def settings_for(view: ServiceView, profile: str = "baseline", skip: frozenset[str] = frozenset()):
    """The `Settings` the runner gives `view` under a built-in profile."""
    from hardener.profile import resolve

    return resolve(_profile(profile), view, skip)


def make_view(data: dict[str, Any], **fields: Any) -> ServiceView:
    """A service written as `data` (every key its own unless `own` says otherwise)."""
    fields.setdefault("own", frozenset(data))
    return ServiceView(name="svc", data=data, **fields)


def summary(records: list[Change | Skip], control: str) -> list[tuple[Any, ...]]:
    """("set" | "add", "dotted.path", new) per change, ("skip", reason) per skip; every
    record must be the pass's own and name the service."""
    out: list[tuple[Any, ...]] = []
    for record in records:
        assert record.control == control and record.service == "svc", record
        if isinstance(record, Skip):
            out.append(("skip", record.reason))
        else:
            assert isinstance(record, Change), record
            out.append((record.op.value, ".".join(record.path), record.new))
    return out


def matches(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    """Equal, except that an expected skip gives a fragment of the reason."""
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected):
        if want[0] == "skip":
            if got[0] != "skip" or want[1] not in got[1]:
                return False
        elif got != want:
            return False
    return True


@pytest.fixture
def check_plan() -> Callable[..., list[tuple[Any, ...]]]:
    """check_plan(pass_module, data, expected, **view_fields): asserts that the pass plans
    `expected` for a service written as `data` (an expected skip gives a fragment of its
    reason) and returns the summary."""

    def run(hardening: Any, data: dict[str, Any], expected: list[tuple[Any, ...]], **fields: Any) -> list[tuple[Any, ...]]:
        view = make_view(data, **fields)
        actual = summary(hardening.plan(view, settings_for(view)), hardening.ID)
        assert matches(actual, expected), f"planned {actual}, expected {expected}"
        return actual

    return run
