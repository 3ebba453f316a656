"""The command line: exit codes, stdin/stdout, in-place writes, reports."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardener.cli import app

PLAIN = "services:\n  app:\n    image: example/app:1.0\n"
runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


@pytest.fixture
def compose(tmp_path: Path) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(PLAIN)
    return path


def test_fix_writes_in_place_and_keeps_mode(compose: Path):
    os.chmod(compose, 0o640)
    result = run("fix", str(compose))
    assert result.exit_code == 0, result.output
    assert "read_only: true" in compose.read_text()
    assert stat.S_IMODE(compose.stat().st_mode) == 0o640
    assert [p.name for p in compose.parent.iterdir()] == ["compose.yaml"]
    assert run("fix", str(compose)).exit_code == 0  # nothing left to do


def test_fix_diff_writes_nothing_and_exits_1(compose: Path):
    result = run("fix", "--diff", str(compose))
    assert result.exit_code == 1
    assert "+    read_only: true" in result.stdout
    assert compose.read_text() == PLAIN


def test_check_exits_1_when_pending_0_when_clean(compose: Path):
    assert run("check", str(compose)).exit_code == 1
    assert compose.read_text() == PLAIN
    run("fix", str(compose))
    assert run("check", str(compose)).exit_code == 0


def test_bad_input_exits_2_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  app:\n    image: [unclosed\n")
    before = bad.read_bytes()
    result = run("fix", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:4:1: error: invalid YAML" in result.stderr
    assert bad.read_bytes() == before


def test_one_bad_file_does_not_stop_the_batch(tmp_path: Path, compose: Path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services: [1, 2]\n")
    result = run("fix", str(tmp_path))
    assert result.exit_code == 2
    assert "read_only: true" in compose.read_text()
    assert "1 hardened" in result.stderr and "1 error" in result.stderr


def test_stdin_to_stdout():
    result = run("fix", "-", stdin=PLAIN)
    assert result.exit_code == 0
    assert result.stdout.startswith(PLAIN.rstrip("\n"))
    assert 'user: "1000:1000"' in result.stdout


def test_stdin_diff_and_check():
    assert run("fix", "--diff", "-", stdin=PLAIN).exit_code == 1
    assert run("check", "-", stdin=PLAIN).exit_code == 1
    bad = run("fix", "-", stdin="services: [\n")
    assert bad.exit_code == 2 and "-:2:1: error:" in bad.stderr


def test_unknown_profile_and_skip_are_usage_errors(compose: Path):
    result = run("fix", "--profile", "baseliine", str(compose))
    assert result.exit_code == 2 and "did you mean 'baseline'" in result.stderr
    assert run("fix", "--skip", "nope", str(compose)).exit_code == 2
    assert compose.read_text() == PLAIN


def test_invalid_profile_file(tmp_path: Path, compose: Path):
    prof = tmp_path / "mine.yaml"
    prof.write_text("extends: baseline\nresources:\n  memroy: 1g\n")
    result = run("fix", "--profile", str(prof), str(compose))
    assert result.exit_code == 2
    assert "unknown key 'memroy'" in result.stderr and "did you mean 'memory'" in result.stderr


def test_profile_file_values_apply(tmp_path: Path, compose: Path):
    prof = tmp_path / "mine.yaml"
    prof.write_text("extends: baseline\nname: mine\nresources:\n  memory: 1g\n")
    assert run("fix", "--profile", str(prof), str(compose)).exit_code == 0
    assert "mem_limit: 1g" in compose.read_text()


def test_skip_control(compose: Path):
    run("fix", "--skip", "user", "--skip", "resources", str(compose))
    text = compose.read_text()
    assert "user:" not in text and "mem_limit" not in text and "read_only: true" in text


def test_missing_path_is_an_error(tmp_path: Path):
    result = run("check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_json_and_sarif_reports(compose: Path, tmp_path: Path):
    result = run("check", "--format", "json", str(compose))
    data = json.loads(result.stdout)
    assert data["files"][0]["status"] == "changed"
    assert {c["control"] for c in data["files"][0]["changes"]} == {"user", "read_only", "capabilities", "no_new_privileges", "resources"}
    report = tmp_path / "out.sarif"
    run("check", "--format", "sarif", "--report", str(report), str(compose))
    sarif = json.loads(report.read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


def test_explain_and_profiles():
    result = run("explain", "read_only")
    assert result.exit_code == 0 and "CIS Docker Benchmark 5.13" in result.stdout
    assert run("explain", "nope").exit_code == 2
    shown = run("profiles", "show", "strict")
    assert shown.exit_code == 0 and "profile:strict" in shown.stdout and "profile:baseline" in shown.stdout
    assert "baseline" in run("profiles").stdout


def test_directory_discovery(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(PLAIN)
    (tmp_path / "docker-compose.override.yml").write_text(PLAIN)
    (tmp_path / "app.compose.yaml").write_text(PLAIN)
    (tmp_path / "notes.yaml").write_text(PLAIN)
    result = run("check", "--format", "json", str(tmp_path))
    names = sorted(Path(f["path"]).name for f in json.loads(result.stdout)["files"])
    assert names == ["app.compose.yaml", "compose.yaml", "docker-compose.override.yml"]


def test_module_entry_point(compose: Path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "hardener", "check", str(compose)], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 1 and "would change" in proc.stderr


def test_project_profile_file_is_the_default(tmp_path: Path, monkeypatch):
    (tmp_path / ".harden.yaml").write_text("resources:\n  memory: 1g\n")  # extends baseline
    (tmp_path / "compose.yaml").write_text(PLAIN)
    monkeypatch.chdir(tmp_path)
    assert run("fix", "compose.yaml").exit_code == 0
    text = (tmp_path / "compose.yaml").read_text()
    assert "mem_limit: 1g" in text and 'user: "1000:1000"' in text
    shown = run("profiles", "show", ".harden.yaml")
    assert "file:.harden.yaml" in shown.stdout and "profile:baseline" in shown.stdout


def _memory(path: Path) -> str:
    return next(line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if "mem_limit" in line)


def test_each_project_takes_its_nearest_profile(tmp_path: Path, monkeypatch):
    """Without --profile, a Compose file takes the nearest .harden.yaml above it, not above
    its repository root (.git), whatever the working directory; --profile overrides all."""
    repo = tmp_path / "repo"
    for sub in ("a", "b/deep", "c"):
        (repo / sub).mkdir(parents=True)
        (repo / sub / "compose.yaml").write_text(PLAIN)
    (repo / ".git").mkdir()
    (repo / ".harden.yaml").write_text("resources:\n  memory: 1g\n")
    (repo / "b" / ".harden.yaml").write_text("extends: ../.harden.yaml\nresources:\n  memory: 2g\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "compose.yaml").write_text(PLAIN)
    (tmp_path / ".harden.yaml").write_text("resources:\n  memory: 9g\n")  # above the repository root: not used for it
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    result = run("fix", "--format", "json", str(repo / "a"), str(repo / "b" / "deep"), str(repo / "c" / "compose.yaml"), str(outside))
    assert result.exit_code == 0, result.output
    assert [_memory(repo / s / "compose.yaml") for s in ("a", "b/deep", "c")] == ["1g", "2g", "1g"]
    assert _memory(outside / "compose.yaml") == "9g"  # no repository: the nearest one above
    profiles = {Path(f["path"]).parent.name: f["profile"] for f in json.loads(result.stdout)["files"]}
    assert profiles["a"] == str(repo / ".harden.yaml") and profiles["deep"] == str(repo / "b" / ".harden.yaml")
    (repo / "c" / "compose.yaml").write_text(PLAIN)
    assert run("fix", "--profile", "strict", str(repo / "c")).exit_code == 0
    assert _memory(repo / "c" / "compose.yaml") != "1g"


def test_bad_project_profile_fails_its_project_only(tmp_path: Path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    for d in (good, bad):
        d.mkdir()
        (d / ".git").mkdir()
        (d / "compose.yaml").write_text(PLAIN)
    (bad / ".harden.yaml").write_text("resources:\n  memroy: 1g\n")
    result = run("fix", str(good), str(bad))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith(str(bad / "compose.yaml")) and ".harden.yaml" in errors[0] and "memroy" in errors[0]
    assert (bad / "compose.yaml").read_text() == PLAIN
    assert "read_only: true" in (good / "compose.yaml").read_text()


def test_pre_commit_hooks_match_discovery_and_run():
    """The hooks in .pre-commit-hooks.yaml select the same file names as directory discovery
    and run commands that exist."""
    import fnmatch
    import re
    import shlex

    from ruamel.yaml import YAML

    from hardener.files import PATTERNS

    hooks = YAML(typ="safe").load((Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text())
    names = ["compose.yaml", "compose.yml", "compose.override.yaml", "compose.prod.yml", "docker-compose.yml",
             "docker-compose.override.yaml", "docker-compose-dev.yml", "app.compose.yaml", "a.b.compose.yml",
             "compose.yaml.bak", "my-compose.yaml", "compose.json", "values.yaml", "composer.yaml", "docker-compose.yml.orig"]
    assert {h["id"] for h in hooks} == {"harden-check", "harden-fix"}
    for hook in hooks:
        for name in names:
            for path in (name, f"deploy/stack/{name}"):
                expected = any(fnmatch.fnmatchcase(name, p) for p in PATTERNS)
                assert bool(re.search(hook["files"], path)) == expected, (hook["id"], path)
        command, *args = shlex.split(hook["entry"])
        assert command == "harden"
        assert run(*args, "--help").exit_code == 0
