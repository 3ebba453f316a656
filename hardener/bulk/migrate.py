"""Migrating one repository: harden its tracked Compose files in a temporary work tree and
commit them onto a new branch, or leave the repository exactly as it was.

`migrate_repo` never raises: whatever goes wrong ends as that repository's error record.
"""

from __future__ import annotations

import os
import traceback
from collections import Counter

from .. import __version__
from ..files import FileOutcome, discover
from ..model import Status
from ..profile import Profile
from ..project import process_paths
from .git import GitError, RepoError, Worktree, branch_tip, git, identity, last_line, out, preflight
from .state import RepoRecord, RepoStatus, now

TRAILER = "Hardened-by: harden"


def _plural(n: int, word: str, many: str = "s") -> str:
    return f"{word}{many if n != 1 else ''}"


def compose_files(tree: str) -> tuple[list[str], list[str]]:
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


def _run_files(tree: str, profile: Profile | None, skips: frozenset[str], write: bool) -> tuple[list[FileOutcome], list[str], list[str]]:
    """Harden (or, without `write`, only plan) the tree's Compose files: (outcomes, file errors, skipped)."""
    files, skipped = compose_files(tree)
    outcomes = process_paths(files, profile, skips, write=write, jobs=1, use_compose=True) if files else []
    errors = [f"{os.path.relpath(o.path, tree)}: {o.result.message}" for o in outcomes if o.result.status is Status.ERROR]
    return outcomes, errors, skipped


def commit_message(tree: str, outcomes: list[FileOutcome], written: list[str]) -> tuple[str, Counter]:
    """The commit message for the hardened files, and the number of changes per control."""
    changed = [o for o in outcomes if o.written]
    total = sum(len(o.result.changes) for o in changed)
    controls: Counter = Counter(c.control for o in changed for c in o.result.changes)
    n = len(written)
    lines = [f"harden: harden {n} Compose {_plural(n, 'file')} ({total} {_plural(total, 'change')})", ""]
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


def _existing_branch(top: str, branch: str, tip: str, record: RepoRecord, profile: Profile | None, skips: frozenset[str]) -> RepoRecord:
    """`branch` exists: done when it holds a harden commit and hardening its tip changes nothing."""
    found = out(top, "log", "-1", "--format=%H", f"--grep=^{TRAILER} ", tip)
    if not found:
        raise RepoError(f"branch {branch} exists and holds no harden commit; delete it or choose another --branch")
    with Worktree(top, tip) as tree:
        outcomes, errors, _ = _run_files(tree, profile, skips, write=False)
    pending = [os.path.relpath(o.path, tree) for o in outcomes if o.result.status is Status.CHANGED]
    if errors or pending:
        why = errors[0] if errors else f"{pending[0]} would still change"
        raise RepoError(f"branch {branch} exists with a harden commit but is not fully hardened ({why}); delete it or choose another --branch")
    record.status, record.commit = RepoStatus.ALREADY_DONE, found
    record.message = f"branch {branch} already holds harden commit {found[:12]}"
    return record


def _commit(top: str, tree: str, branch: str, written: list[str], message: str) -> str:
    """Commit exactly `written` in `tree` and create `branch` on that commit; return its sha."""
    git(tree, "add", "--", *written)
    staged = sorted(p for p in git(tree, "diff", "--cached", "--name-only", "-z").stdout.split("\0") if p)
    if staged != written:
        raise RepoError(f"staged files {staged} differ from the hardened files {written}; repository rolled back")
    git(tree, "commit", "--quiet", "--no-verify", "-F", "-", input=message, config=identity(tree))
    if git(tree, "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout:
        raise RepoError("work tree not clean after the commit; repository rolled back")
    commit = out(tree, "rev-parse", "HEAD")
    # Created last and without --force: a branch that appeared meanwhile is never overwritten.
    created = git(top, "branch", "--no-track", branch, commit, check=False)
    if created.returncode != 0:
        raise RepoError(f"cannot create branch {branch}: {last_line(created.stderr.strip()) or 'git branch failed'}")
    return commit


def _harden(top: str, head: str, record: RepoRecord, profile: Profile | None, skips: frozenset[str]) -> RepoRecord:
    """Harden a work tree of `head`; commit onto `record.branch` when anything changed."""
    with Worktree(top, head) as tree:
        outcomes, errors, skipped = _run_files(tree, profile, skips, write=True)
        record.findings = sum(len(o.result.findings) for o in outcomes)
        if errors:
            more = f" (and {len(errors) - 1} more file {_plural(len(errors) - 1, 'error')})" if len(errors) > 1 else ""
            raise RepoError(errors[0] + more + "; repository rolled back")
        root = os.path.realpath(tree)
        written = sorted({os.path.relpath(os.path.realpath(o.path), root) for o in outcomes if o.written})
        if not written:
            record.status = RepoStatus.UNCHANGED
            record.message = "nothing to harden" if outcomes else "no tracked Compose files"
            if skipped:
                record.message += "; " + "; ".join(skipped)
            return record
        message, controls = commit_message(tree, outcomes, written)
        commit = _commit(top, tree, record.branch, written, message)
    record.status, record.commit, record.files = RepoStatus.COMMITTED, commit, written
    record.changes = sum(controls.values())
    record.controls = dict(sorted(controls.items()))
    record.message = f"{len(written)} {_plural(len(written), 'file')}, {record.changes} changes"
    if record.findings:
        record.message += f"; {record.findings} {_plural(record.findings, 'risk')} not fixed automatically, listed in the commit message"
    if skipped:
        record.message += "; " + "; ".join(skipped)
    return record


def migrate_repo(repo: str, profile: Profile | None, skips: frozenset[str], branch: str) -> RepoRecord:
    """Harden one repository onto a new branch; never raises."""
    record = RepoRecord(repo=repo, status=RepoStatus.ERROR, branch=branch)
    try:
        top, head = preflight(repo)
        record.base = head
        tip = branch_tip(top, branch)
        if tip is not None:
            return _existing_branch(top, branch, tip, record, profile, skips)
        return _harden(top, head, record, profile, skips)
    except RepoError as exc:
        record.message = str(exc)
    except GitError as exc:
        record.message = str(exc) + "; repository left as it was"
    except Exception as exc:  # one repository never stops the others
        where = traceback.extract_tb(exc.__traceback__)[-1]
        record.message = f"internal error ({type(exc).__name__}: {exc} at {os.path.basename(where.filename)}:{where.lineno}); repository left as it was"
    record.status, record.commit, record.files, record.changes, record.controls = RepoStatus.ERROR, None, [], 0, {}
    return record


def migrate_and_stamp(args: tuple[str, Profile | None, frozenset[str], str]) -> RepoRecord:
    """`migrate_repo(*args)` with the time it finished; the unit of work of a worker process."""
    record = migrate_repo(*args)
    record.finished_at = now()
    return record


def worker_failed(repo: str, branch: str, exc: BaseException) -> RepoRecord:
    """The record of a repository whose worker process died before it could answer."""
    return RepoRecord(repo=repo, status=RepoStatus.ERROR, branch=branch, finished_at=now(),
                      message=f"worker failed ({type(exc).__name__}: {exc}); check the repository with git status and git worktree prune")
