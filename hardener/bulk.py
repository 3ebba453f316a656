"""`harden bulk REPO...`: harden the Compose files of many local git repositories at once.

For every repository the result is either a new branch holding one reviewable commit,
or nothing at all:

- REPO must be the top directory of a git work tree with at least one commit, and no
  uncommitted changes to tracked files (nor a merge / rebase / cherry-pick in progress);
  otherwise that repository is reported as an error and left untouched.
- The work happens in a temporary linked work tree (`git worktree add --detach`) checked
  out from the current HEAD, so the user's own checkout — its branch, index, files and
  their timestamps, untracked and ignored files — is never touched: when harden is done
  the original branch is still checked out with a clean tree, exactly as it was. Only
  Compose files tracked by git are hardened (`files.discover(..., recursive=True)`,
  `.git` skipped, filtered to `git ls-files`, symlinks leading out of the repository
  skipped), with `project.process_paths(..., write=True, jobs=1, use_compose=True)`
  (base and override files of one directory hardened as one project).
- If files changed, exactly those files are `git add`ed and committed as
  `harden: harden N Compose files (M changes)` with a body listing the files, the
  per-control counts, the risks that are never fixed automatically, and a
  `Hardened-by: harden <version>` trailer; the branch `--branch` is then created on that
  commit (whose parent is the HEAD the run started from). Where git has no identity
  configured, `-c user.name=harden -c user.email=harden@localhost` is used
  (GIT_AUTHOR_* / GIT_COMMITTER_* from the environment still win).
- If nothing changed, no branch is created: status "unchanged".
- If any file fails (a refused write, invalid YAML, the Compose loader rejecting the
  output, ...), the whole repository is rolled back — the temporary work tree is thrown
  away and no branch is created — and the status is "error" with the file's message.
- If the branch already exists: when it holds a harden commit and hardening its tip would
  change nothing, the status is "already done"; otherwise "error" (branch exists).

Repositories run in parallel in `--jobs` worker processes, each independent. A JSON
state file (`--state`, default `.harden-bulk.json` in the current directory) records per
repository {status, branch, commit, files, changes, message, finished_at} and is
rewritten atomically (temp file + `os.replace`) after each repository finishes; a rerun
skips the repositories already "committed" / "unchanged" / "already done" for the same
branch and retries the ones in "error". One line per repository and a summary go to
stderr; `--report FILE` receives a JSON report of all of them. Exit code 0 when every
repository ended committed / unchanged / already done, 2 if any errored.

harden never pushes, never fetches and never touches remotes: every git call runs with
`protocol.allow=never`, Git LFS smudging off and submodule recursion off. Git hooks are
not run for these internal checkouts and commits (`core.hooksPath=/dev/null`); the branch
meets the repository's checks when it is pushed and reviewed. Pushing the branches and
opening pull requests is left to you. For fleets beyond one machine, use an existing
bulk-change engine such as multi-gitter or git-xargs, which clone, branch, push and open
the pull requests, and have it run `harden fix --recursive .` followed by
`harden check --recursive .` in each repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from . import __version__
from .files import discover
from .project import process_paths
from .model import Status
from .profile import Profile

COMMITTED = "committed"
UNCHANGED = "unchanged"
ALREADY_DONE = "already done"
ERROR = "error"
DONE = frozenset({COMMITTED, UNCHANGED, ALREADY_DONE})
TRAILER = "Hardened-by: harden"
STATE_VERSION = 1

# Every git call: no network, no hooks, no LFS downloads, no submodule checkouts, no prompts.
GIT_CONFIG = ("-c", "protocol.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "submodule.recurse=false", "-c", "core.quotepath=false")
# Variables that would point git at another repository than the one passed with -C.
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                      "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES")


@dataclass
class RepoRecord:
    repo: str
    status: str
    branch: str
    commit: Optional[str] = None
    files: list[str] = field(default_factory=list)
    changes: int = 0
    message: str = ""
    finished_at: str = ""
    base: Optional[str] = None  # the HEAD commit the branch starts from
    controls: dict[str, int] = field(default_factory=dict)
    findings: int = 0


class GitError(Exception):
    pass


class RepoError(Exception):
    """This repository cannot be migrated; `message` says why. Nothing was changed."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_LFS_SKIP_SMUDGE="1")
    return env


def git(cwd: str, *args: str, check: bool = True, input: Optional[str] = None, config: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["git", *GIT_CONFIG, *config, "-C", cwd, *args],
        input=input if input is not None else "",
        capture_output=True, text=True, encoding="utf-8", errors="replace", env=_env(),
    )
    if check and proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise GitError(f"git {args[0]} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return proc


def _out(cwd: str, *args: str) -> str:
    return git(cwd, *args).stdout.strip()


# --- one repository --------------------------------------------------------------------


def _preflight(path: str) -> tuple[str, str]:
    """Check `path` is a clean git work tree top; return (top, HEAD sha)."""
    if not os.path.isdir(path):
        raise RepoError("no such directory" if not os.path.exists(path) else "not a directory")
    inside = git(path, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise RepoError("not a git work tree")
    top = os.path.realpath(_out(path, "rev-parse", "--show-toplevel"))
    if top != os.path.realpath(path):
        raise RepoError(f"inside the git work tree {top}; pass the repository's top directory")
    head = git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if head.returncode != 0:
        raise RepoError("no commits yet (HEAD does not point to a commit)")
    markers = {"MERGE_HEAD": "a merge", "rebase-merge": "a rebase", "rebase-apply": "a rebase or am",
               "CHERRY_PICK_HEAD": "a cherry-pick", "REVERT_HEAD": "a revert"}
    locations = _out(top, "rev-parse", *(arg for m in markers for arg in ("--git-path", m))).splitlines()
    for what, location in zip(markers.values(), locations):
        if os.path.exists(os.path.join(top, location)):
            raise RepoError(f"{what} is in progress; finish or abort it first")
    dirty = git(top, "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout
    if dirty:
        paths = [entry[3:] for entry in dirty.split("\0") if len(entry) > 3]
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise RepoError(f"uncommitted changes to tracked files ({shown}); commit or stash them first")
    return top, head.stdout.strip()


class _Worktree:
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


def _compose_files(tree: str) -> tuple[list[str], list[str]]:
    """Tracked Compose files in `tree` (absolute paths), and those skipped with the reason."""
    tracked = {p for p in git(tree, "ls-files", "-z").stdout.split("\0") if p}
    root = os.path.realpath(tree)
    files, skipped = [], []
    for path in discover([tree], recursive=True):
        rel = os.path.relpath(path, tree)
        if rel not in tracked or not os.path.isfile(path):
            continue
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) != root:
            skipped.append(f"{rel}: symlink leading out of the repository, skipped")
            continue
        files.append(path)
    return files, skipped


def _run_files(tree: str, profile: Profile | None, skips: frozenset[str], write: bool):
    files, skipped = _compose_files(tree)
    outcomes = process_paths(files, profile, skips, write=write, jobs=1, use_compose=True) if files else []
    errors = [f"{os.path.relpath(o.path, tree)}: {o.result.message}" for o in outcomes if o.result.status is Status.ERROR]
    return outcomes, errors, skipped


def _message(tree: str, outcomes: list, written: list[str]) -> tuple[str, Counter]:
    changed = [o for o in outcomes if o.written]
    total = sum(len(o.result.changes) for o in changed)
    controls: Counter = Counter(c.control for o in changed for c in o.result.changes)
    n = len(written)
    lines = [f"harden: harden {n} Compose file{'s' if n != 1 else ''} ({total} change{'s' if total != 1 else ''})", ""]
    lines.append("Adds what the services lack: a non-root user, a read-only root filesystem,")
    lines.append("dropped capabilities, no-new-privileges and resource limits (see `harden explain CONTROL`).")
    lines += ["", "Files:"]
    for o in changed:
        per = Counter(c.control for c in o.result.changes)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(per.items()))
        lines.append(f"  {os.path.relpath(o.path, tree)}: {len(o.result.changes)} changes ({detail})")
    lines += ["", "Changes per control:"]
    lines += [f"  {k}: {v}" for k, v in sorted(controls.items())]
    risks = [(o, f) for o in outcomes for f in o.result.findings]
    if risks:
        lines += ["", "Risks not fixed automatically (review by hand):"]
        lines += [f"  {os.path.relpath(o.path, tree)}:{f.line or '?'}: {f.service}: [{f.kind}] {f.message}" for o, f in risks]
    used = sorted({os.path.relpath(o.profile, tree) if os.path.isabs(o.profile) else o.profile for o in changed})
    lines += ["", f"{TRAILER} {__version__} (profile {', '.join(used)})"]
    return "\n".join(lines) + "\n", controls


def _identity(tree: str) -> tuple[str, ...]:
    extra: tuple[str, ...] = ()
    if not git(tree, "config", "user.name", check=False).stdout.strip():
        extra += ("-c", "user.name=harden")
    if not git(tree, "config", "user.email", check=False).stdout.strip():
        extra += ("-c", "user.email=harden@localhost")
    return extra


def _branch_exists(top: str, branch: str) -> Optional[str]:
    proc = git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _existing_branch(top: str, branch: str, tip: str, record: RepoRecord, profile: Profile | None, skips: frozenset[str]) -> RepoRecord:
    found = _out(top, "log", "-1", "--format=%H", f"--grep=^{TRAILER} ", tip)
    if not found:
        raise RepoError(f"branch {branch} exists and holds no harden commit; delete it or choose another --branch")
    with _Worktree(top, tip) as tree:
        outcomes, errors, _ = _run_files(tree, profile, skips, write=False)
    pending = [os.path.relpath(o.path, tree) for o in outcomes if o.result.status is Status.CHANGED]
    if errors or pending:
        why = errors[0] if errors else f"{pending[0]} would still change"
        raise RepoError(f"branch {branch} exists with a harden commit but is not fully hardened ({why}); delete it or choose another --branch")
    record.status, record.commit = ALREADY_DONE, found
    record.message = f"branch {branch} already holds harden commit {found[:12]}"
    return record


def migrate_repo(repo: str, profile: Profile | None, skips: frozenset[str], branch: str) -> RepoRecord:
    """Harden one repository onto a new branch; never raises."""
    record = RepoRecord(repo=repo, status=ERROR, branch=branch)
    try:
        top, head = _preflight(repo)
        record.base = head
        tip = _branch_exists(top, branch)
        if tip is not None:
            return _existing_branch(top, branch, tip, record, profile, skips)
        with _Worktree(top, head) as tree:
            outcomes, errors, skipped = _run_files(tree, profile, skips, write=True)
            record.findings = sum(len(o.result.findings) for o in outcomes)
            if errors:
                more = f" (and {len(errors) - 1} more file error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
                raise RepoError(errors[0] + more + "; repository rolled back")
            root = os.path.realpath(tree)
            written = sorted({os.path.relpath(os.path.realpath(o.path), root) for o in outcomes if o.written})
            if not written:
                record.status = UNCHANGED
                record.message = "nothing to harden" if outcomes else "no tracked Compose files"
                if skipped:
                    record.message += "; " + "; ".join(skipped)
                return record
            message, controls = _message(tree, outcomes, written)
            git(tree, "add", "--", *written)
            staged = sorted(p for p in git(tree, "diff", "--cached", "--name-only", "-z").stdout.split("\0") if p)
            if staged != written:
                raise RepoError(f"staged files {staged} differ from the hardened files {written}; repository rolled back")
            git(tree, "commit", "--quiet", "--no-verify", "-F", "-", input=message, config=_identity(tree))
            if git(tree, "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout:
                raise RepoError("work tree not clean after the commit; repository rolled back")
            commit = _out(tree, "rev-parse", "HEAD")
            # Created last and without --force: a branch that appeared meanwhile is never overwritten.
            created = git(top, "branch", "--no-track", branch, commit, check=False)
            if created.returncode != 0:
                raise RepoError(f"cannot create branch {branch}: {created.stderr.strip().splitlines()[-1] if created.stderr.strip() else 'git branch failed'}")
        record.status, record.commit, record.files = COMMITTED, commit, written
        record.changes = sum(controls.values())
        record.controls = dict(sorted(controls.items()))
        record.message = f"{len(written)} file{'s' if len(written) != 1 else ''}, {record.changes} changes"
        if record.findings:
            record.message += f"; {record.findings} risk{'s' if record.findings != 1 else ''} not fixed automatically, listed in the commit message"
        if skipped:
            record.message += "; " + "; ".join(skipped)
        return record
    except RepoError as exc:
        record.status, record.message = ERROR, str(exc)
    except GitError as exc:
        record.status, record.message = ERROR, str(exc) + "; repository left as it was"
    except Exception as exc:  # one repository never stops the others
        where = traceback.extract_tb(exc.__traceback__)[-1]
        record.status = ERROR
        record.message = f"internal error ({type(exc).__name__}: {exc} at {os.path.basename(where.filename)}:{where.lineno}); repository left as it was"
    record.commit, record.files, record.changes, record.controls = None, [], 0, {}
    return record


def _migrate_args(args: tuple[str, Profile | None, frozenset[str], str]) -> RepoRecord:
    record = migrate_repo(*args)
    record.finished_at = _now()
    return record


# --- state, report, driver ----------------------------------------------------------------


def load_state(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {"version": STATE_VERSION, "repos": {}}
    except (OSError, ValueError) as exc:
        raise RepoError(f"cannot read state file {path}: {exc}; fix or remove it") from None
    if not isinstance(data, dict) or not isinstance(data.get("repos"), dict):
        raise RepoError(f"state file {path} is not a harden bulk state file; fix or remove it")
    return data


def write_json(path: str, data: Any) -> None:
    """Write `data` as JSON to `path` atomically: temp file in the same directory, fsync, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".harden-bulk-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _line(record: RepoRecord, resumed: bool) -> str:
    if resumed:
        return f"{record.repo}: skipped: {record.status} in an earlier run ({record.finished_at})"
    if record.status == COMMITTED:
        return f"{record.repo}: committed {record.commit[:12]} on {record.branch}: {record.message}"
    if record.status == ERROR:
        return f"{record.repo}: error: {record.message}"
    return f"{record.repo}: {record.status}: {record.message}"


def _fail(message: str) -> int:
    print(f"harden: error: {message}", file=sys.stderr)
    return 2


def run_bulk(repos: list[str], profile: Profile | None, skips: frozenset[str], branch: str, jobs: int, state: str, report_file: Optional[str]) -> int:
    if shutil.which("git") is None:
        return _fail("git is not installed")
    if subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, env=_env()).returncode != 0:
        return _fail(f"invalid branch name {branch!r}")
    try:
        saved = load_state(state)
    except RepoError as exc:
        return _fail(str(exc))
    keys: list[str] = []
    for repo in repos:
        key = os.path.realpath(repo)
        if key not in keys:
            keys.append(key)
    results: dict[str, tuple[RepoRecord, bool]] = {}
    todo: list[str] = []
    for key in keys:
        old = saved["repos"].get(key)
        if isinstance(old, dict) and old.get("status") in DONE and old.get("branch") == branch:
            known = {k: v for k, v in old.items() if k in RepoRecord.__dataclass_fields__}
            results[key] = (RepoRecord(**{**known, "repo": key}), True)
            print(_line(results[key][0], True), file=sys.stderr)
        else:
            todo.append(key)

    def finished(record: RepoRecord) -> None:
        results[record.repo] = (record, False)
        saved["repos"][record.repo] = {k: v for k, v in asdict(record).items() if k != "repo"}
        saved["version"] = STATE_VERSION
        write_json(state, saved)
        print(_line(record, False), file=sys.stderr)

    work = [(key, profile, skips, branch) for key in todo]
    if jobs <= 1 or len(work) <= 1:
        for args in work:
            finished(_migrate_args(args))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            futures = {pool.submit(_migrate_args, args): args[0] for args in work}
            for future in as_completed(futures):
                try:
                    record = future.result()
                except Exception as exc:  # a worker died (killed, out of memory, ...)
                    record = RepoRecord(repo=futures[future], status=ERROR, branch=branch, finished_at=_now(),
                                        message=f"worker failed ({type(exc).__name__}: {exc}); check the repository with git status and git worktree prune")
                finished(record)

    ordered = [results[key] for key in keys]
    counts = Counter(r.status for r, _ in ordered)
    resumed = sum(1 for _, again in ordered if again)
    if report_file:
        write_json(report_file, {
            "tool": "harden", "version": __version__, "branch": branch,
            "profile": profile.name if profile else "each repository's .harden.yaml, else baseline",
            "repos": [{**asdict(r), "resumed": again} for r, again in ordered],
        })
    n = len(ordered)
    parts = [f"{counts[COMMITTED]} committed", f"{counts[UNCHANGED]} unchanged", f"{counts[ALREADY_DONE]} already done",
             f"{counts[ERROR]} error{'s' if counts[ERROR] != 1 else ''}"]
    changes = sum(r.changes for r, again in ordered if r.status == COMMITTED and not again)
    print(f"harden bulk: {n} repositor{'ies' if n != 1 else 'y'}: " + ", ".join(parts)
          + f" ({resumed} from an earlier run); {changes} changes committed on {branch}; nothing pushed", file=sys.stderr)
    return 2 if counts[ERROR] else 0
