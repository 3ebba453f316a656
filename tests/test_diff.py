"""The unified diff `fix --diff` prints, and what a run keeps of each file once it is done.

The diff is difflib's, made in linear time: the same lines as `difflib.unified_diff` for
texts of up to a couple of thousand lines, and beyond that hunks that still apply exactly.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import pytest

from hardener.core import harden_text
from hardener.files import FileOutcome, Keep, kept, unified_diff
from hardener.model import Finding, Result, Status
from hardener.profile import load_profile
from hardener.project import process_paths

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted(p for p in (ROOT / "fixtures").rglob("*.y*ml") if ".expected." not in p.name)
PROFILE = load_profile("baseline")
NO_SKIPS: frozenset[str] = frozenset()

sys.path.insert(0, str(ROOT / "tests" / "bench"))
import big  # noqa: E402  (tests/bench/big.py: generated Compose files of any size)


def difflib_diff(path: str, result: Result) -> str:
    lines = difflib.unified_diff(result.original.splitlines(keepends=True), result.text.splitlines(keepends=True),
                                 fromfile=f"a/{path}", tofile=f"b/{path}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def apply(original: str, diff: str) -> str:
    """`original` with the hunks of `diff` applied; every context and removed line must be
    where the hunk says, or the diff does not apply."""
    lines = original.splitlines(keepends=True)
    out: list[str] = []
    at = 0
    body = diff.splitlines(keepends=True)[2:]
    i = 0
    while i < len(body):
        match = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", body[i])
        assert match, body[i]
        start = int(match.group(1)) - (0 if match.group(2) == "0" else 1)
        out.extend(lines[at:start])
        at = start
        i += 1
        while i < len(body) and not body[i].startswith("@@"):
            tag, line = body[i][0], body[i][1:]
            if i + 1 < len(body) and body[i + 1].startswith("\\"):
                line = line[:-1]  # no newline at the end of the file
                i += 1
            if tag in " -":
                assert lines[at] == line, (at, lines[at], line)
                at += 1
            if tag in " +":
                out.append(line)
            i += 1
    return "".join(out + lines[at:])


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_diff_is_difflibs_on_every_fixture(fixture: Path):
    result = harden_text(fixture.read_text(encoding="utf-8"), PROFILE, NO_SKIPS)
    name = str(fixture.relative_to(ROOT))
    if result.text == result.original:
        assert unified_diff(name, result) == ""
        return
    assert unified_diff(name, result) == difflib_diff(name, result)
    assert apply(result.original, unified_diff(name, result)) == result.text


@pytest.mark.parametrize("services", [5, 300])
def test_the_diff_of_a_big_file_applies_exactly(tmp_path: Path, services: int):
    """300 services are some 7,000 lines: past the part aligned as difflib aligns it."""
    big.generate(tmp_path / "compose.yaml", services=services)
    result = harden_text((tmp_path / "compose.yaml").read_text(encoding="utf-8"), PROFILE, NO_SKIPS)
    assert result.status is Status.CHANGED
    diff = unified_diff("compose.yaml", result)
    assert apply(result.original, diff) == result.text
    if services == 5:
        assert diff == difflib_diff("compose.yaml", result)


def outcome() -> FileOutcome:
    text = "services:\n  a:\n    image: busybox\n    privileged: true\n  b:\n    image: busybox\n"
    result = harden_text(text, PROFILE, NO_SKIPS)
    assert result.status is Status.CHANGED and any(f.service == "a" for f in result.findings)
    return FileOutcome("compose.yaml", result)


def test_keep_all_keeps_everything():
    whole = outcome()
    assert kept(whole, Keep.ALL) is whole


def test_keep_diff_keeps_the_diff_in_place_of_the_texts():
    whole = outcome()
    light = kept(whole, Keep.DIFF)
    assert light.diff == unified_diff("compose.yaml", whole.result) and light.diff.startswith("--- a/compose.yaml")
    assert light.result.original == light.result.text == ""
    assert light.result.changes == whole.result.changes and light.result.findings == whole.result.findings


def test_keep_report_keeps_the_data_of_services_with_a_risk_only():
    whole = outcome()
    light = kept(whole, Keep.REPORT)
    assert light.diff is None and light.result.text == ""
    assert set(whole.result.planned) == {"a", "b"}
    assert set(light.result.planned) == {f.service for f in whole.result.findings} == {"a"}
    assert light.result.planned["a"] == whole.result.planned["a"]


def test_a_finding_of_a_service_without_data_is_kept_without_data():
    result = Result(Status.UNCHANGED, "x", "x", findings=(Finding("privileged", "gone", "m"),), planned={"other": {}})
    assert kept(FileOutcome("f", result), Keep.REPORT).result.planned == {}


@pytest.mark.parametrize("keep", [Keep.DIFF, Keep.REPORT])
def test_a_run_returns_outcomes_cut_down_as_asked(tmp_path: Path, keep: Keep):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n")
    paths = [str(tmp_path / n / "compose.yaml") for n in ("one", "two")]
    outcomes = process_paths(paths, PROFILE, NO_SKIPS, write=False, jobs=1, use_compose=False, keep=keep)
    assert [o.result.status for o in outcomes] == [Status.CHANGED, Status.CHANGED]
    assert all(o.result.text == "" for o in outcomes)
    assert all((o.diff is not None) == (keep is Keep.DIFF) for o in outcomes)


@pytest.mark.parametrize("jobs", [1, 2])
def test_outcomes_are_handed_on_in_the_order_of_the_paths_and_the_run_keeps_what_emit_returns(tmp_path: Path, jobs: int):
    """Twelve stacks (enough for worker processes with jobs=2): each outcome reaches `emit`
    once, in the order the paths were given, whatever order the workers end in."""
    paths = []
    for n in range(12):
        folder = tmp_path / f"s{(n * 7) % 12:02d}"  # given in an order that is not the folders' order
        folder.mkdir()
        (folder / "compose.yaml").write_text(f"services:\n  a{n}:\n    image: busybox\n" + "".join(f"  x{i}:\n    image: busybox\n" for i in range(n % 3)))
        paths.append(str(folder / "compose.yaml"))
    seen: list[str] = []

    def emit(o: FileOutcome) -> FileOutcome:
        seen.append(o.path)
        assert o.diff is not None and o.diff.startswith(f"--- {o.path}")
        return FileOutcome(o.path, o.result, o.written, "kept")

    outcomes = process_paths(paths, PROFILE, NO_SKIPS, write=False, jobs=jobs, use_compose=False, keep=Keep.DIFF, emit=emit)
    assert seen == paths
    assert [o.path for o in outcomes] == paths and all(o.profile == "kept" for o in outcomes)


def test_fix_diff_prints_each_files_review_lines_and_diff_in_the_order_given(tmp_path: Path):
    from typer.testing import CliRunner

    from hardener.cli import app

    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n")
    paths = [str(tmp_path / "b" / "compose.yaml"), str(tmp_path / "a" / "compose.yaml")]
    out = CliRunner().invoke(app, ["fix", "--diff", "--no-compose-check", "--no-image-facts", *paths]).stdout
    heads = [line for line in out.splitlines() if line.startswith(("# ", "--- "))]
    assert [h.split()[1] for h in heads if h.startswith("--- ")] == paths
    assert heads[0].startswith("# ") and "unverified" in heads[0]
    first_diff = heads.index(f"--- {paths[0]}")
    assert all(h.startswith("# ") or h == f"--- {paths[0]}" for h in heads[: first_diff + 1])
    assert any(h.startswith("# ") and paths[1] in h for h in heads[first_diff:])  # b's review lines come after a's diff


def test_fix_diff_counts_the_changes_it_no_longer_keeps_and_a_report_file_still_lists_them(tmp_path: Path):
    import json

    from typer.testing import CliRunner

    from hardener.cli import app

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "compose.yaml").write_text("services:\n  web:\n    image: busybox\n  db:\n    image: busybox\n")
    paths = [str(tmp_path / n / "compose.yaml") for n in ("a", "b")]
    flags = ["--no-compose-check", "--no-image-facts"]
    listed = json.loads(CliRunner().invoke(app, ["check", *flags, "--format", "json", *paths]).stdout)
    total = sum(len(f["changes"]) for f in listed["files"])
    assert total > 0
    run = CliRunner().invoke(app, ["fix", "--diff", *flags, *paths])
    assert f"; {total} changes," in run.stderr
    report = tmp_path / "report.json"
    CliRunner().invoke(app, ["fix", "--diff", *flags, "--format", "json", "--report", str(report), *paths])
    assert [len(f["changes"]) for f in json.loads(report.read_text())["files"]] == [len(f["changes"]) for f in listed["files"]]
