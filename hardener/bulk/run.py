"""The `harden bulk` driver: check the arguments, skip what an earlier run finished, migrate
the rest (in worker processes with `jobs` > 1), record each outcome as it comes, report."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from typing import Callable, Optional

from .. import __version__, oracle
from ..files import remove_stale_tempdirs, remove_stale_temps
from ..profile import Profile
from .git import valid_branch_name
from .migrate import migrate_and_stamp, worker_failed
from .state import TEMP_NAME, RepoRecord, RepoStatus, StateError, StateFile, write_json

Work = tuple[str, Optional[Profile], frozenset[str], str]


def _line(record: RepoRecord, resumed: bool) -> str:
    if resumed:
        return f"{record.repo}: skipped: {record.status} in an earlier run ({record.finished_at})"
    if record.status == RepoStatus.COMMITTED:
        return f"{record.repo}: committed {record.commit[:12]} on {record.branch}: {record.message}"
    if record.status == RepoStatus.ERROR:
        return f"{record.repo}: error: {record.message}"
    return f"{record.repo}: {record.status}: {record.message}"


def _fail(message: str) -> int:
    print(f"harden: error: {message}", file=sys.stderr)
    return 2


def _migrate_all(work: list[Work], jobs: int, finished: Callable[[RepoRecord], None]) -> None:
    """Migrate every repository of `work`, handing each record to `finished` as it comes."""
    if jobs <= 1 or len(work) <= 1:
        for args in work:
            finished(migrate_and_stamp(args))
        return
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        futures = {pool.submit(migrate_and_stamp, args): args for args in work}
        for future in as_completed(futures):
            try:
                record = future.result()
            except Exception as exc:  # a worker died (killed, out of memory, ...)
                repo, _, _, branch = futures[future]
                record = worker_failed(repo, branch, exc)
            finished(record)


def _summary(ordered: list[tuple[RepoRecord, bool]], branch: str) -> str:
    counts = Counter(r.status for r, _ in ordered)
    resumed = sum(1 for _, again in ordered if again)
    n = len(ordered)
    errors = counts[RepoStatus.ERROR]
    parts = [f"{counts[RepoStatus.COMMITTED]} committed", f"{counts[RepoStatus.UNCHANGED]} unchanged",
             f"{counts[RepoStatus.ALREADY_DONE]} already done", f"{errors} error{'s' if errors != 1 else ''}"]
    changes = sum(r.changes for r, again in ordered if r.status == RepoStatus.COMMITTED and not again)
    return (f"harden bulk: {n} repositor{'ies' if n != 1 else 'y'}: " + ", ".join(parts)
            + f" ({resumed} from an earlier run); {changes} changes committed on {branch}; nothing pushed")


def run_bulk(repos: list[str], profile: Profile | None, skips: frozenset[str], branch: str, jobs: int, state: str, report_file: Optional[str]) -> int:
    if shutil.which("git") is None:
        return _fail("git is not installed")
    if not valid_branch_name(branch):
        return _fail(f"invalid branch name {branch!r}")
    try:
        saved = StateFile(state)
    except StateError as exc:
        return _fail(str(exc))
    # what a killed run left: temp work trees (their git entries are pruned per repository) and state temp files
    for leftover in remove_stale_tempdirs() + remove_stale_temps([state], TEMP_NAME):
        print(f"harden bulk: removed {leftover}, left by an interrupted run", file=sys.stderr)
    oracle.announce()  # once, before any worker starts
    keys = list(dict.fromkeys(os.path.realpath(repo) for repo in repos))
    results: dict[str, tuple[RepoRecord, bool]] = {}
    todo: list[str] = []
    for key in keys:
        earlier = saved.finished(key, branch)
        if earlier is None:
            todo.append(key)
        else:
            results[key] = (earlier, True)
            print(_line(earlier, True), file=sys.stderr)

    def finished(record: RepoRecord) -> None:
        results[record.repo] = (record, False)
        saved.save(record)
        print(_line(record, False), file=sys.stderr)

    _migrate_all([(key, profile, skips, branch) for key in todo], jobs, finished)

    ordered = [results[key] for key in keys]
    if report_file:
        write_json(report_file, {
            "tool": "harden", "version": __version__, "branch": branch,
            "profile": profile.name if profile else "each repository's .harden.yaml, else baseline",
            "repos": [{**asdict(r), "resumed": again} for r, again in ordered],
        })
    print(_summary(ordered, branch), file=sys.stderr)
    return 2 if any(r.status == RepoStatus.ERROR for r, _ in ordered) else 0
