"""Fixture pairs under fixtures/<control>/<case>.yaml (+ <case>.expected.yaml), by glob.

A case without an expected file must come back byte-identical. Every case also passes
the invariants: untouched lines kept (the strict check of `invariants.lost_lines`), byte
facts kept, idempotent, and every control a service still lacks reported as a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardener.core import harden_text
from hardener.model import Status
from hardener.profile import load_profile
from invariants import facts, lost_lines, unreported

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CASES = sorted(p for p in FIXTURES.glob("*/*.yaml") if not p.name.endswith(".expected.yaml"))


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def test_fixtures_found():
    assert len(CASES) >= 30
    assert {p.parent.name for p in CASES} >= {"user", "read_only", "capabilities", "no_new_privileges", "resources", "edges"}


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture(case: Path):
    original = read(case)
    result = harden_text(original, load_profile("baseline"))
    assert result.status is not Status.ERROR, result.message
    expected_path = case.with_name(case.stem + ".expected.yaml")
    expected = read(expected_path) if expected_path.exists() else original
    assert result.text == expected
    assert lost_lines(original, result.text) == []
    if result.status is not Status.SKIPPED:
        assert unreported(result) == []
    assert facts(result.text)[:2] == facts(original)[:2]
    if result.status is Status.CHANGED:
        assert result.text.endswith("\n") == original.endswith("\n")
        again = harden_text(result.text, load_profile("baseline"))
        assert again.status is Status.UNCHANGED, [c.describe() for c in again.changes]
        assert again.text == result.text
