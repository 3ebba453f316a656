"""Git plumbing for `harden bulk`: one hardened way to call git, the checks a repository
must pass before anything is done to it, and the temporary work tree the work happens in.

Every git call runs with no network (`protocol.allow=never`), no hooks, no submodule
recursion, no prompts and no Git LFS downloads, and with the variables that could point
git at another repository removed from its environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Optional

# Every git call: no network, no hooks, no LFS downloads, no submodule checkouts, no prompts.
GIT_CONFIG = ("-c", "protocol.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false", "-c", "core.quotepath=false")
# Variables that would point git at another repository than the one passed with -C.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                      "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES")
# Where git keeps the marker of each operation that leaves a repository half-way.
_IN_PROGRESS = {"MERGE_HEAD": "a merge", "rebase-merge": "a rebase", "rebase-apply": "a rebase or am",
                "CHERRY_PICK_HEAD": "a cherry-pick", "REVERT_HEAD": "a revert"}


class GitError(Exception):
    """A git command failed; the message names the command and git's last line."""


class RepoError(Exception):
    """This repository cannot be migrated; `message` says why. Nothing was changed."""


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1")
    return env


def git(cwd: str, *args: str, check: bool = True, input: Optional[str] = None, config: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["git", *GIT_CONFIG, *config, "-C", cwd, *args],
        input=input if input is not None else "",
        capture_output=True, text=True, encoding="utf-8", errors="replace", env=git_env(),
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {last_line(proc.stderr or proc.stdout) or f'exit code {proc.returncode}'}")
    return proc


def out(cwd: str, *args: str) -> str:
    """The stripped standard output of a git command that must succeed."""
    return git(cwd, *args).stdout.strip()


def last_line(text: str) -> str:
    """The last non-blank line of `text` (git's own explanation comes last), or ""."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def valid_branch_name(branch: str) -> bool:
    return subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, env=git_env()).returncode == 0


def preflight(path: str) -> tuple[str, str]:
    """Check `path` is a clean git work tree top; return (top, HEAD sha)."""
    if not os.path.isdir(path):
        raise RepoError("no such directory" if not os.path.exists(path) else "not a directory")
    inside = git(path, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise RepoError("not a git work tree")
    top = os.path.realpath(out(path, "rev-parse", "--show-toplevel"))
    if top != os.path.realpath(path):
        raise RepoError(f"inside the git work tree {top}; pass the repository's top directory")
    head = git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise RepoError("no commits yet (HEAD does not point to a commit)")
    locations = out(top, "rev-parse", *(arg for m in _IN_PROGRESS for arg in ("--git-path", m))).splitlines()
    for what, location in zip(_IN_PROGRESS.values(), locations):
        if os.path.exists(os.path.join(top, location)):
            raise RepoError(f"{what} is in progress; finish or abort it first")
    dirty = git(top, "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout
    if dirty:
        paths = [entry[3:] for entry in dirty.split("\0") if len(entry) > 3]
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise RepoError(f"uncommitted changes to tracked files ({shown}); commit or stash them first")
    return top, head.stdout.strip()


def branch_tip(top: str, branch: str) -> Optional[str]:
    """The commit local branch `branch` points to, or None when there is no such branch."""
    proc = git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def identity(tree: str) -> tuple[str, ...]:
    """`-c` options giving harden's own name and e-mail where git has none configured."""
    extra: tuple[str, ...] = ()
    if not git(tree, "config", "user.name", check=False).stdout.strip():
        extra += ("-c", "user.name=harden")
    if not git(tree, "config", "user.email", check=False).stdout.strip():
        extra += ("-c", "user.email=harden@localhost")
    return extra


class Worktree:
    """A temporary detached work tree of `commit`, removed again on exit."""

    def __init__(self, repo: str, commit: str):
        self.repo, self.commit = repo, commit
        self.parent = tempfile.mkdtemp(prefix="harden-bulk-")
        self.path = os.path.join(self.parent, os.path.basename(repo) or "repo")

    def __enter__(self) -> str:
        try:
            git(self.repo, "worktree", "add", "--detach", "--quiet", self.path, self.commit)
        except BaseException:
            self._cleanup()
            raise
        return self.path

    def __exit__(self, *exc: Any) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        git(self.repo, "worktree", "remove", "--force", "--force", self.path, check=False)
        shutil.rmtree(self.parent, ignore_errors=True)
        git(self.repo, "worktree", "prune", check=False)
