"""`harden bulk`: many git repositories, one branch + commit each, rollback, resumable state."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardener.cli import app
from hardener.core import harden_text
from hardener.profile import load_profile

PLAIN = "services:\n  app:\n    image: example/app:1.0\n"
WEB = "# the web tier\nservices:\n  web:\n    image: nginx:1.27\n    ports:\n      - \"8080:80\"\n"
BAD = "services:\n  app:\n    image: [unclosed\n"
BRANCH = "harden/compose"
runner = CliRunner()


def hardened(text: str) -> str:
    return harden_text(text, load_profile("baseline"), frozenset()).text


@pytest.fixture(autouse=True)
def no_git_identity(monkeypatch: pytest.MonkeyPatch):
    """No global/system git config: harden must fall back to its own identity."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-C", str(repo), *args],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def make_repo(root: Path, name: str, files: dict[str, str]) -> Path:
    repo = root / name
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel, text in {"README.md": f"# {name}\n", **files}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def bulk(tmp_path: Path, *args: str):
    state = tmp_path / "state.json"
    result = runner.invoke(app, ["bulk", "--state", str(state), *args])
    try:
        data = json.loads(state.read_text())
    except (FileNotFoundError, ValueError):
        data = None
    return result, data


def has_branch(repo: Path, branch: str = BRANCH) -> bool:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], capture_output=True).returncode == 0


def assert_checkout_as_before(repo: Path) -> None:
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the temporary one is gone


def test_commits_on_a_new_branch_and_leaves_the_checkout_as_it_was(tmp_path: Path):
    a = make_repo(tmp_path, "a", {"compose.yaml": PLAIN, "deploy/docker-compose.prod.yml": WEB, "notes.yaml": "x: 1\n"})
    b = make_repo(tmp_path, "b", {"svc/compose.yml": WEB})
    git(b, "config", "user.name", "Bea Owner")
    git(b, "config", "user.email", "bea@example.com")
    (a / "docker-compose.override.yml").write_text(PLAIN)  # untracked: never hardened, never committed
    mtime = (a / "compose.yaml").stat().st_mtime_ns
    base = {r: git(r, "rev-parse", "HEAD") for r in (a, b)}
    report = tmp_path / "report.json"

    result, state = bulk(tmp_path, str(a), str(b), "--report", str(report))

    assert result.exit_code == 0, result.output
    for repo in (a, b):
        assert_checkout_as_before(repo)
        assert has_branch(repo)
        assert git(repo, "rev-parse", f"{BRANCH}^") == base[repo]  # one commit on top of the old HEAD
        assert git(repo, "rev-parse", "HEAD") == base[repo]
    assert git(a, "diff", "--name-only", "main", BRANCH).splitlines() == ["compose.yaml", "deploy/docker-compose.prod.yml"]
    assert git(a, "show", f"{BRANCH}:compose.yaml") + "\n" == hardened(PLAIN)
    assert git(a, "show", f"{BRANCH}:deploy/docker-compose.prod.yml") + "\n" == hardened(WEB)
    assert git(b, "diff", "--name-only", "main", BRANCH) == "svc/compose.yml"
    # the checkout keeps its files byte for byte, untracked ones included, and their timestamps
    assert (a / "compose.yaml").read_text() == PLAIN and (a / "compose.yaml").stat().st_mtime_ns == mtime
    assert (a / "docker-compose.override.yml").read_text() == PLAIN
    message = git(a, "log", "-1", "--format=%B", BRANCH)
    changes = state["repos"][str(a.resolve())]["changes"]
    assert message.splitlines()[0] == f"harden: harden 2 Compose files ({changes} changes)"
    assert "  compose.yaml: " in message and "  deploy/docker-compose.prod.yml: " in message
    rec = state["repos"][str(a.resolve())]
    assert f"  read_only: {rec['controls']['read_only']}" in message and "Hardened-by: harden" in message
    assert sum(rec["controls"].values()) == changes
    assert git(a, "log", "-1", "--format=%an <%ae>", BRANCH) == "harden <harden@localhost>"  # no identity configured
    assert git(b, "log", "-1", "--format=%an <%ae>", BRANCH) == "Bea Owner <bea@example.com>"
    assert rec["status"] == "committed" and rec["branch"] == BRANCH and rec["commit"] == git(a, "rev-parse", BRANCH)
    assert rec["files"] == ["compose.yaml", "deploy/docker-compose.prod.yml"] and rec["finished_at"]
    assert set(rec["controls"]) <= {"user", "read_only", "capabilities", "no_new_privileges", "resources"}
    data = json.loads(report.read_text())
    assert [r["status"] for r in data["repos"]] == ["committed", "committed"]
    assert f"{a.resolve()}: committed " in result.stderr
    assert "2 committed, 0 unchanged, 0 already done, 0 errors" in result.stderr


def test_nothing_to_do_leaves_no_branch(tmp_path: Path):
    done = make_repo(tmp_path, "done", {"compose.yaml": hardened(PLAIN)})
    empty = make_repo(tmp_path, "empty", {})
    result, state = bulk(tmp_path, str(done), str(empty))
    assert result.exit_code == 0, result.output
    for repo in (done, empty):
        assert not has_branch(repo)
        assert_checkout_as_before(repo)
        assert state["repos"][str(repo.resolve())]["status"] == "unchanged"
    assert git(done, "branch", "--format=%(refname:short)") == "main"


def test_dirty_repo_is_refused_and_untouched(tmp_path: Path):
    repo = make_repo(tmp_path, "dirty", {"compose.yaml": PLAIN})
    edited = PLAIN + "    restart: always\n"
    (repo / "compose.yaml").write_text(edited)
    head = git(repo, "rev-parse", "HEAD")
    result, state = bulk(tmp_path, str(repo))
    assert result.exit_code == 2
    assert "uncommitted changes to tracked files (compose.yaml)" in result.stderr
    assert not has_branch(repo)
    assert (repo / "compose.yaml").read_text() == edited
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == "M compose.yaml"
    assert state["repos"][str(repo.resolve())]["status"] == "error"


def test_bad_file_rolls_back_its_repo_while_the_others_succeed(tmp_path: Path):
    bad = make_repo(tmp_path, "bad", {"compose.yaml": PLAIN, "legacy/docker-compose.yml": BAD})
    good = make_repo(tmp_path, "good", {"compose.yaml": PLAIN})
    result, state = bulk(tmp_path, str(bad), str(good))
    assert result.exit_code == 2
    assert not has_branch(bad)
    assert_checkout_as_before(bad)
    assert (bad / "compose.yaml").read_text() == PLAIN and (bad / "legacy/docker-compose.yml").read_text() == BAD
    rec = state["repos"][str(bad.resolve())]
    assert rec["status"] == "error" and rec["commit"] is None and rec["files"] == []
    assert rec["message"].startswith("legacy/docker-compose.yml: invalid YAML")
    assert f"{bad.resolve()}: error: legacy/docker-compose.yml: invalid YAML" in result.stderr
    assert has_branch(good) and state["repos"][str(good.resolve())]["status"] == "committed"
    assert "1 committed, 0 unchanged, 0 already done, 1 error" in result.stderr


def test_rerun_skips_finished_repos_and_retries_errors(tmp_path: Path):
    bad = make_repo(tmp_path, "bad", {"compose.yaml": BAD})
    good = make_repo(tmp_path, "good", {"compose.yaml": PLAIN})
    same = make_repo(tmp_path, "same", {})
    result, state = bulk(tmp_path, str(bad), str(good), str(same))
    assert result.exit_code == 2
    first_commit = state["repos"][str(good.resolve())]["commit"]
    # Mark the finished repos' timestamps: a skipped repo keeps them, a retried one gets a new one.
    for rec in state["repos"].values():
        rec["finished_at"] = "2000-01-01T00:00:00+00:00"
    (tmp_path / "state.json").write_text(json.dumps(state))
    (bad / "compose.yaml").write_text(PLAIN)
    git(bad, "commit", "-q", "-am", "fix the YAML")

    result, state = bulk(tmp_path, str(bad), str(good), str(same))

    assert result.exit_code == 0, result.output
    recs = {Path(k).name: v for k, v in state["repos"].items()}
    assert recs["good"]["finished_at"] == recs["same"]["finished_at"] == "2000-01-01T00:00:00+00:00"
    assert recs["good"]["commit"] == first_commit == git(good, "rev-parse", BRANCH)
    assert recs["bad"]["status"] == "committed" and recs["bad"]["finished_at"] != "2000-01-01T00:00:00+00:00"
    assert f"{good.resolve()}: skipped: committed in an earlier run" in result.stderr
    assert "(2 from an earlier run)" in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic state writes leave no temp file


def test_existing_branch_already_done_or_refused(tmp_path: Path):
    repo = make_repo(tmp_path, "repo", {"compose.yaml": PLAIN})
    other = make_repo(tmp_path, "other", {"compose.yaml": PLAIN})
    git(other, "branch", BRANCH)  # somebody else's branch of that name
    result, _ = bulk(tmp_path, str(repo))
    assert result.exit_code == 0
    commit = git(repo, "rev-parse", BRANCH)
    (tmp_path / "state.json").unlink()  # state lost: the branch itself shows the work is done

    result, state = bulk(tmp_path, str(repo), str(other))

    assert result.exit_code == 2
    recs = {Path(k).name: v for k, v in state["repos"].items()}
    assert recs["repo"]["status"] == "already done" and recs["repo"]["commit"] == commit
    assert git(repo, "rev-parse", BRANCH) == commit
    assert recs["other"]["status"] == "error" and f"branch {BRANCH} exists" in recs["other"]["message"]
    assert git(other, "rev-parse", BRANCH) == git(other, "rev-parse", "main")  # not touched


def test_two_repos_in_parallel(tmp_path: Path):
    repos = [make_repo(tmp_path, f"r{i}", {"compose.yaml": PLAIN, "docker-compose.yml": WEB}) for i in range(2)]
    result, state = bulk(tmp_path, "--jobs", "2", "--branch", "sec/harden", *map(str, repos))
    assert result.exit_code == 0, result.output
    for repo in repos:
        assert has_branch(repo, "sec/harden") and not has_branch(repo)
        assert git(repo, "show", "sec/harden:docker-compose.yml") + "\n" == hardened(WEB)
        assert_checkout_as_before(repo)
        assert state["repos"][str(repo.resolve())]["status"] == "committed"


def test_not_a_repo_or_not_its_top_is_an_error(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "compose.yaml").write_text(PLAIN)
    repo = make_repo(tmp_path, "repo", {"sub/compose.yaml": PLAIN})
    result, state = bulk(tmp_path, str(plain), str(repo / "sub"), str(tmp_path / "missing"))
    assert result.exit_code == 2
    messages = {Path(k).name: v["message"] for k, v in state["repos"].items()}
    assert messages == {"plain": "not a git work tree", "sub": f"inside the git work tree {repo.resolve()}; pass the repository's top directory",
                        "missing": "no such directory"}
    assert (plain / "compose.yaml").read_text() == PLAIN and not has_branch(repo)


def test_corrupt_state_file_is_not_overwritten(tmp_path: Path):
    repo = make_repo(tmp_path, "repo", {"compose.yaml": PLAIN})
    (tmp_path / "state.json").write_text("{not json")
    result, _ = bulk(tmp_path, str(repo))
    assert result.exit_code == 2 and "cannot read state file" in result.stderr
    assert (tmp_path / "state.json").read_text() == "{not json" and not has_branch(repo)


def test_each_repository_is_hardened_with_its_own_harden_yaml(tmp_path: Path):
    own = make_repo(tmp_path, "own", {"compose.yaml": PLAIN, ".harden.yaml": "name: team-db\nresources:\n  memory: 1g\n"})
    plain = make_repo(tmp_path, "plain", {"compose.yaml": PLAIN})
    result, _ = bulk(tmp_path, str(own), str(plain))
    assert result.exit_code == 0, result.output
    assert "mem_limit: 1g" in git(own, "show", f"{BRANCH}:compose.yaml")
    assert git(plain, "show", f"{BRANCH}:compose.yaml") == hardened(PLAIN).rstrip("\n")
    assert "(profile team-db)" in git(own, "log", "-1", "--format=%B", BRANCH)
    assert "(profile baseline)" in git(plain, "log", "-1", "--format=%B", BRANCH)


def test_an_unexpected_exception_ends_as_that_repositorys_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import hardener.bulk.migrate as migrate

    real = migrate.process_paths

    def process_paths(paths, *args, **kwargs):
        if any("/boom/" in p for p in paths):
            raise RuntimeError("simulated failure")
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(migrate, "process_paths", process_paths)
    boom = make_repo(tmp_path, "boom", {"compose.yaml": PLAIN})
    fine = make_repo(tmp_path, "fine", {"compose.yaml": PLAIN})
    result, state = bulk(tmp_path, "--jobs", "1", str(boom), str(fine))
    assert result.exit_code == 2, result.output  # an escaped exception would end with exit code 1
    rec = state["repos"][str(boom.resolve())]
    assert rec["status"] == "error" and rec["commit"] is None and rec["files"] == []
    assert rec["message"].startswith("internal error (RuntimeError: simulated failure at test_bulk.py:")
    assert not has_branch(boom)
    assert_checkout_as_before(boom)
    assert state["repos"][str(fine.resolve())]["status"] == "committed" and has_branch(fine)
    assert "Traceback" not in result.output


def test_a_state_file_in_the_stored_format_resumes_and_keeps_its_format(tmp_path: Path):
    done = make_repo(tmp_path, "done", {"compose.yaml": PLAIN})
    odd = make_repo(tmp_path, "odd", {})
    other = make_repo(tmp_path, "other", {})
    earlier = {"status": "already done", "branch": BRANCH, "commit": "0" * 40, "files": [], "changes": 0, "message": "m",
               "finished_at": "2000-01-01T00:00:00+00:00", "base": None, "controls": {}, "findings": 0}
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "repos": {
        str(done.resolve()): earlier,
        str(odd.resolve()): {**earlier, "status": ["not", "a", "status"]},  # unusable: migrated again
        str(other.resolve()): {**earlier, "branch": "another/branch"},  # another branch: migrated again
    }}, indent=2) + "\n")
    result, state = bulk(tmp_path, "--jobs", "1", str(done), str(odd), str(other))
    assert result.exit_code == 0, result.output
    assert f"{done.resolve()}: skipped: already done in an earlier run (2000-01-01T00:00:00+00:00)" in result.stderr
    assert "0 committed, 2 unchanged, 1 already done, 0 errors (1 from an earlier run)" in result.stderr
    assert state["repos"][str(done.resolve())] == earlier and not has_branch(done)
    text = (tmp_path / "state.json").read_text()
    fresh = {**state["repos"][str(odd.resolve())]}
    assert list(fresh) == list(earlier) and fresh["status"] == "unchanged"
    assert text == json.dumps(state, indent=2) + "\n"
