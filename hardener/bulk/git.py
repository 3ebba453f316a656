"""Git plumbing for `harden bulk`: one hardened way to call git, the checks a repository
must pass before anything is done to it, and the temporary work tree the work happens in.

Every git call runs with no network (`protocol.allow=never` and an empty
GIT_ALLOW_PROTOCOL, which a repository's `protocol.<name>.allow` cannot override), no
hooks, no submodule recursion, no prompts, no pager and no Git LFS downloads, and never
runs a command a repository's configuration names: no system or global configuration
(GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null, GIT_ATTR_NOSYSTEM,
core.attributesFile=/dev/null), fixed values for the keys that run commands
(`core.fsmonitor`, `core.hooksPath`, `core.sshCommand`, `core.pager`, `core.askPass`,
`core.editor`, `diff.external`, `uploadpack.packObjectsHook`, `credential.helper`,
`gpg.program` with signing off, `log.showSignature`, automatic gc / maintenance off), and
every driver the repository's configuration defines (`filter.<name>.clean / smudge /
process`, `diff.<name>.command / textconv`, `merge.<name>.driver`, `trailer.<name>.cmd`,
...) emptied by name: `-c` cannot unset a key, so each name found by `git config --list`
is given an empty command (`safe_config`). The environment holds only PATH, HOME, the
locale, TMPDIR and the GIT_AUTHOR_* / GIT_COMMITTER_* identity.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Optional

from ..files import is_temp_dir, temp_dir

# Every git call: no network, no hooks, no LFS downloads, no submodule checkouts, no prompts,
# no command from configuration.
_FIXED = {
    "protocol.allow": "never", "core.hooksPath": "/dev/null", "submodule.recurse": "false", "core.quotepath": "false",
    "core.fsmonitor": "false", "core.useBuiltinFSMonitor": "false", "core.sshCommand": "", "core.pager": "",
    "core.askPass": "", "core.editor": "", "sequence.editor": "", "core.attributesFile": "/dev/null",
    "core.excludesFile": "/dev/null", "core.alternateRefsCommand": "", "core.gitProxy": "", "diff.external": "",
    "uploadpack.packObjectsHook": "", "credential.helper": "", "commit.gpgSign": "false", "tag.gpgSign": "false",
    "push.gpgSign": "false", "gpg.program": "", "gpg.ssh.program": "", "gpg.x509.program": "",
    "gpg.ssh.defaultKeyCommand": "", "log.showSignature": "false", "gc.auto": "0", "maintenance.auto": "false",
    "fetch.recurseSubmodules": "false", "lfs.fetchexclude": "*",
}
GIT_CONFIG = tuple(arg for key, value in _FIXED.items() for arg in ("-c", f"{key}={value}"))
# Keys of named drivers / per-name settings that hold a command: emptied for every name a
# repository's configuration defines.
_NAMED_COMMANDS = re.compile(
    r"^(filter\.(?P<f>.+)\.(clean|smudge|process)|diff\.(?P<d>.+)\.(command|textconv)|merge\.(?P<m>.+)\.driver"
    r"|trailer\.(?P<t>.+)\.(cmd|command)|remote\.(?P<r>.+)\.(uploadpack|receivepack|vcs|proxy)"
    r"|credential\.(?P<c>.+)\.helper|pager\.(?P<p>.+)|protocol\.(?P<pr>.+)\.allow|submodule\.(?P<s>.+)\.update"
    r"|gpg\.(?P<g>.+)\.program)$",
    re.IGNORECASE,
)
_SAFE_VALUE = {"protocol": "never", "filter": "", "pager": "false", "submodule": "none"}
# What git gets of the environment: the rest (GIT_SSH_COMMAND, GIT_EXEC_PATH, GIT_CONFIG_*,
# GIT_EXTERNAL_DIFF, SSH_*, credentials, ...) stays out.
_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "EMAIL", "GIT_AUTHOR_NAME",
             "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE")
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
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEPT and k not in _GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_ATTR_NOSYSTEM="1", GIT_ALLOW_PROTOCOL="", GIT_PAGER="", PAGER="")
    return env


_safe: dict[str, dict[str, str]] = {}


def safe_config(cwd: str) -> dict[str, str]:
    """Environment entries (GIT_CONFIG_COUNT / _KEY_n / _VALUE_n: any key, unlike `-c`)
    that empty every command the configuration seen from `cwd` defines by name (filters,
    diff / merge drivers, ...); read once per directory."""
    key = os.path.realpath(cwd)
    if key not in _safe:
        proc = subprocess.run(["git", "--no-pager", *GIT_CONFIG, "-C", cwd, "config", "--list", "--includes", "-z"],
                              capture_output=True, env=git_env())
        pairs: dict[str, str] = {}
        for entry in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if proc.returncode == 0 else []:
            name = entry.split("\n", 1)[0]
            if _NAMED_COMMANDS.match(name):
                pairs[name] = _SAFE_VALUE.get(name.split(".", 1)[0].lower(), "")
                if name.lower().startswith("filter."):
                    pairs[name.rsplit(".", 1)[0] + ".required"] = "false"
        env = {"GIT_CONFIG_COUNT": str(len(pairs))}
        for index, (name, value) in enumerate(pairs.items()):
            env[f"GIT_CONFIG_KEY_{index}"], env[f"GIT_CONFIG_VALUE_{index}"] = name, value
        if len(_safe) >= 256:  # bounded: the oldest repository goes
            _safe.pop(next(iter(_safe)))
        _safe[key] = env
    return _safe[key]


def git(cwd: str, *args: str, check: bool = True, input: Optional[str] = None, config: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["git", "--no-pager", *GIT_CONFIG, *config, "-C", cwd, *args],
        input=input if input is not None else "",
        capture_output=True, text=True, encoding="utf-8", errors="replace", env={**git_env(), **safe_config(cwd)},
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
    prune_stale_worktrees(top)
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


def prune_stale_worktrees(top: str) -> list[str]:
    """Forget the temporary work trees of a killed harden run (their directories are gone:
    `files.remove_stale_tempdirs`): unlock each (a kill during `worktree add` leaves it
    locked), then `git worktree prune`. Returns their paths."""
    listing = git(top, "worktree", "list", "--porcelain", check=False).stdout
    stale = [line[len("worktree "):] for line in listing.splitlines() if line.startswith("worktree ")]
    stale = [p for p in stale if is_temp_dir(os.path.dirname(p), "bulk") and not os.path.exists(p)]
    for path in stale:
        git(top, "worktree", "unlock", path, check=False)
    if stale:
        git(top, "worktree", "prune", check=False)
    return stale


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
        self.parent = temp_dir("bulk")
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
