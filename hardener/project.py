"""Compose projects made of several files, hardened as one.

Compose merges `compose.yaml` with `compose.override.yaml` (and `docker-compose.yml` with
`docker-compose.<env>.yml` given as further `-f` files), and a service may `extends` one in
another file. Hardening each file alone puts the same `security_opt` entry in two files
that Compose merges, which it rejects. So the files of one directory are planned in merge
order: base first, then each override planned against what the files before it will
hold once hardened; an override adds only what is still missing, and one that loosens the
base (privileged, read_only: false, cap_add ALL, root) is reported. The merged result is
checked with the real loader (`docker-compose -f base -f override config`) before anything
is written. A file given without the files Compose merges with it (an override without
its base, a base without its `*.override.*`) is planned and checked with them as they are
on disk. Files named `*.compose.yaml` are separate stacks, hardened on their own.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from . import document, oracle
from .core import harden_text
from .inherit import merge
from .image_lookup import FactsOptions, facts_for_text
from .files import (FileOutcome, Keep, atomic_write, decode, error_result, loader_check, merged_includes, read_bytes, kept, refused,
                    remove_stale_temps, remove_stale_tempdirs, say, temp_dir)
from .model import Failure, HardenError, Project, Result, Status
from .passes import CONTROLS
from .profile import Profile, profile_for

BASES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
_OVERLAY = re.compile(r"^(docker-)?compose\.[^.]+\.ya?ml$")


def group(paths: list[str]) -> list[list[str]]:
    """Split paths into projects: per directory, the base file then its overrides; the
    files one `include:` entry merges (`path: [a, b]`) are one project, in that order."""
    groups = _by_directory(paths)
    given = {os.path.realpath(p): p for p in paths}
    for path in paths:
        for entry in merged_includes(path):
            members = [given[os.path.realpath(m)] for m in entry if os.path.realpath(m) in given]
            if len(members) < 2 or any(members == g for g in groups):
                continue
            groups = [rest for g in groups if (rest := [p for p in g if p not in members])] + [members]
    return groups


def _by_directory(paths: list[str]) -> list[list[str]]:
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        by_dir.setdefault(os.path.dirname(os.path.abspath(path)), []).append(path)
    groups: list[list[str]] = []
    for members in by_dir.values():
        names = {os.path.basename(p): p for p in members}
        base = next((names[b] for b in BASES if b in names), None)
        overlays = sorted((p for p in members if p != base and _OVERLAY.match(os.path.basename(p))),
                          key=lambda p: (".override." not in p, p))
        if base is not None:
            groups.append([base, *overlays])
            rest = [p for p in members if p != base and p not in overlays]
        else:
            rest = members
        groups += [[p] for p in rest]
    return groups


def _extends_targets(text: str, directory: str, profile: Profile, skip: frozenset[str]) -> dict[tuple[str, str], Any]:
    """Planned data of the services in other files that services here `extends`."""
    if "extends" not in text or "file" not in text:
        return {}
    try:
        _, documents = document.parse(text)
    except HardenError:
        return {}
    targets: dict[tuple[str, str], Any] = {}
    for doc in documents:
        services = doc.tree.get("services") if isinstance(doc.tree, dict) else None
        for name, service in (services or {}).items():
            ext = service.get("extends") if isinstance(service, dict) else None
            if not isinstance(ext, dict) or not isinstance(ext.get("file"), str):
                continue
            path = os.path.join(directory, ext["file"])
            try:
                other = harden_text(decode(read_bytes(path)), profile, skip)
            except HardenError:
                continue
            target = str(ext.get("service", name))
            if target in other.planned:
                targets[(ext["file"], target)] = other.planned[target]
    return targets


def _context(paths: list[str]) -> tuple[list[str], set[str]]:
    """The project in merge order, with the files Compose merges that were not given:
    the base of an override given alone, the `*.override.*` file beside a base given
    alone. Those are read as they are on disk, never changed or reported."""
    directory = os.path.dirname(os.path.abspath(paths[0]))
    names = [os.path.basename(p) for p in paths]
    on_disk = lambda candidates: [os.path.join(directory, c) for c in candidates if os.path.isfile(os.path.join(directory, c))]  # noqa: E731
    before: list[str] = []
    after: list[str] = []
    if names[0] not in BASES and _OVERLAY.match(names[0]):
        before = on_disk(BASES)[:1]
    elif names[0] in BASES:
        override = "docker-compose.override" if names[0].startswith("docker-") else "compose.override"
        after = [p for p in on_disk((f"{override}.yaml", f"{override}.yml")) if os.path.basename(p) not in names]
    return [*before, *paths, *after], set(before + after)


def process_project(paths: list[str], profile: Profile, skip: frozenset[str], write: bool, use_compose: bool = True,
                    facts: FactsOptions = FactsOptions(enabled=False)) -> list[FileOutcome]:
    """Harden the files of one project in merge order; write only if the whole project passes."""
    members, context = _context(paths)
    merged: dict[str, Any] = {}
    outcomes: list[tuple[str, bytes | None, Result]] = []
    for path in members:
        try:
            data = read_bytes(path)
            text = decode(data)
        except HardenError as exc:
            outcomes.append((path, None, error_result(exc.message)))
            continue
        directory = os.path.dirname(os.path.abspath(path))
        project = Project(dict(merged), _extends_targets(text, directory, profile, skip), facts_for_text(text, facts))
        as_is = skip | set(CONTROLS) if path in context else skip
        try:
            result = harden_text(text, profile, frozenset(as_is), project)
        except Exception as exc:  # a bug must cost one file, never the batch
            outcomes.append((path, None, error_result(f"internal error, file left untouched: {type(exc).__name__}: {exc}", failure=Failure.INTERNAL)))
            continue
        result = loader_check(result, directory, use_compose) if path not in context else result
        for name, value in result.planned.items():
            merged[name] = merge(merged[name], value) if isinstance(merged.get(name), dict) and isinstance(value, dict) else value
        outcomes.append((path, data, result))
    if use_compose and len(members) > 1 and any(r.status is Status.CHANGED for _, _, r in outcomes):
        reason = _merged_check(outcomes)
        if reason:
            outcomes = [(p, d, refused(r, reason) if r.status is Status.CHANGED else r)
                        for p, d, r in outcomes]
    done = []
    try:
        for path, data, result in outcomes:
            if path in context:
                continue
            if not write or result.status is not Status.CHANGED or data is None:
                done.append(FileOutcome(path, result))
                continue
            with _held_interrupt():  # a Ctrl-C takes effect once the file is written and recorded, or not written
                try:
                    atomic_write(path, result.text.encode("utf-8"), data)
                except HardenError as exc:
                    done.append(FileOutcome(path, refused(result, exc.message)))
                    continue
                done.append(FileOutcome(path, result, written=True))
                _journal(done[-1], profile.name)
    except KeyboardInterrupt:  # say which files of this project were written before it
        raise Interrupted([o.path for o in done if o.written]) from None
    return done


def _merged_check(outcomes: list[tuple[str, bytes | None, Result]]) -> str | None:
    """The merged project must load wherever the merged originals did."""
    readable = [(p, r) for p, d, r in outcomes if d is not None and r.status is not Status.ERROR]
    if len(readable) < 2:
        return None
    directory = os.path.dirname(os.path.abspath(readable[0][0]))
    before = oracle.config_files([(p, r.original) for p, r in readable], directory)
    if not before.ran:
        return oracle.not_run(before)
    if not before.ok:
        return None
    after = oracle.config_files([(p, r.text) for p, r in readable], directory)
    if not after.ran:
        return oracle.not_run(after)
    names = " + ".join(os.path.basename(p) for p, _ in readable)
    return None if after.ok else f"refused: Docker Compose rejects the merged project {names}: {after.error}"


def _run_group(args: tuple[list[str], Profile | None, frozenset[str], bool, bool, FactsOptions, Keep]) -> list[FileOutcome]:
    paths, profile, skip, write, use_compose, facts, keep = args
    if profile is None:  # the project's own .harden.yaml, else baseline
        try:
            profile = profile_for(os.path.dirname(os.path.abspath(paths[0])))
        except HardenError as exc:
            return [FileOutcome(p, error_result(exc.message)) for p in paths]
    outcomes = process_project(paths, profile, skip, write, use_compose, facts)
    return [kept(FileOutcome(o.path, o.result, o.written, profile.name), keep) for o in outcomes]


def process_paths(paths: list[str], profile: Profile | None, skip: frozenset[str], write: bool, jobs: int = 1, use_compose: bool = True,
                  facts: FactsOptions = FactsOptions(enabled=False), keep: Keep = Keep.ALL) -> list[FileOutcome]:
    """Every path, grouped into projects; one bad file never stops the others. Without a
    `profile`, each project takes its nearest `.harden.yaml` (`profile.project_profile_ref`).
    Each outcome is cut down to what `keep` keeps as soon as its project is done (in the
    worker), so a run's memory does not grow with the texts of every file."""
    work = [(g, profile, skip, write, use_compose, facts, keep) for g in group(paths)]
    if write:
        for leftover in remove_stale_temps(paths):
            say(f"removed {leftover}: a temp file an interrupted run left behind")
    remove_stale_tempdirs()
    if use_compose:
        oracle.announce()  # once, before any worker starts
    if jobs <= 1 or len(work) < 8:  # a pool costs more than it saves on a few files
        overlap = use_compose and len(work) > 1 and oracle.compose_binary()
        results = _pooled(work, OVERLAP, paths, threads=True) if overlap else _in_turn(work)
    else:
        results = _pooled(work, jobs, paths)
    order = {p: i for i, p in enumerate(paths)}
    return sorted((o for group_outcomes in results for o in group_outcomes), key=lambda o: order.get(o.path, 0))


def _in_turn(work: list[Any]) -> list[list[FileOutcome]]:
    results: list[list[FileOutcome]] = []
    try:
        for w in work:
            results.append(_run_group(w))
    except KeyboardInterrupt as exc:
        raise Interrupted(_written(results) + getattr(exc, "written", [])) from None
    return results


#: groups in flight in one process (`_pooled` with threads): while one waits for its Docker
#: Compose loader check (a process of its own), the next is planned, on another core
OVERLAP = 3


def _submitted(pool: Any, work: list[Any]) -> dict[Any, int]:
    """Every group submitted to `pool`: future -> the group's index."""
    return {pool.submit(_run_group, w): i for i, w in enumerate(work)}


def _collect(futures: dict[Any, int], results: dict[int, list[FileOutcome]]) -> None:
    """Each group's outcomes into `results`, by index, as it ends. The wait wakes every
    tenth of a second: a Ctrl-C that reached another thread of this process is handled
    by this one, which may otherwise sleep through it."""
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
        for future in done:
            results[futures[future]] = future.result()


def _ended(futures: dict[Any, int], results: dict[int, list[FileOutcome]]) -> dict[int, list[FileOutcome]]:
    """`results` with every group that ended well once the pool stopped."""
    for future, index in futures.items():
        if index not in results and future.done() and not future.cancelled() and future.exception() is None:
            results[index] = future.result()
    return results


# --- worker processes, interrupts -----------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; `written` lists the files written before it stopped (every
    other file is as it was)."""

    def __init__(self, written: list[str]):
        super().__init__()
        self.written = written


_JOURNAL: str | None = None  # in a pool worker: where each file written is recorded as it happens


@contextmanager
def _held_interrupt() -> Iterator[None]:
    """SIGINT held back (blocked, not lost) for the duration: it arrives afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_start(journal: str) -> None:
    global _JOURNAL
    _JOURNAL = journal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it lets running groups finish


def _journal(outcome: FileOutcome, profile: str) -> None:
    """In a pool worker: record a file as written, at once (the worker may die next)."""
    if _JOURNAL is None:
        return
    light = replace(outcome.result, original="", text="", planned={})
    record = pickle.dumps(FileOutcome(outcome.path, light, True, profile))
    with open(os.path.join(_JOURNAL, str(os.getpid())), "ab") as handle:
        handle.write(len(record).to_bytes(8, "big") + record)


def _read_journal(journal: str) -> dict[str, FileOutcome]:
    written: dict[str, FileOutcome] = {}
    for name in os.listdir(journal):
        with open(os.path.join(journal, name), "rb") as handle:
            data = handle.read()
        at = 0
        while at + 8 <= len(data):
            size = int.from_bytes(data[at:at + 8], "big")
            if at + 8 + size > len(data):
                break  # the worker died while recording: that last record is incomplete
            outcome = pickle.loads(data[at + 8:at + 8 + size])
            written[outcome.path] = outcome
            at += 8 + size
    return written


def _written(results: Any) -> list[str]:
    return [o.path for group_outcomes in results for o in group_outcomes if o.written]


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _as_really(outcomes: list[FileOutcome], journal: dict[str, FileOutcome], before: dict[str, tuple[int, int] | None]) -> list[FileOutcome]:
    """Outcomes of a group run again in this process after its worker died: a file that
    worker had already written shows as unchanged now; report it as written."""
    out = []
    for o in outcomes:
        if o.result.status is Status.UNCHANGED and o.path in journal:
            o = journal[o.path]
        elif o.result.status is Status.UNCHANGED and _identity(o.path) != before.get(o.path):
            message = "written by a worker process that died before it could report the changes"
            o = FileOutcome(o.path, replace(o.result, status=Status.CHANGED, message=message), True, o.profile)
        out.append(o)
    return out


def _terminate(pool: ProcessPoolExecutor) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _pooled(work: list[Any], jobs: int, paths: list[str], threads: bool = False) -> list[list[FileOutcome]]:
    """`_run_group` over `work` in `jobs` worker processes (`threads`: threads of this
    process, `OVERLAP` of them, so that the next group is planned while one waits for its
    Docker Compose loader check), each group reported as it ends. A worker that dies (OOM killer, ...): the groups not reported yet run again in this
    process, and what the dead worker wrote is reported as written. Ctrl-C: no new group
    starts, the running ones finish (Ctrl-C again stops them at once), and `Interrupted`
    says what was written."""
    before = {p: _identity(p) for p in paths}
    results: dict[int, list[FileOutcome]] = {}
    journal = temp_dir("run")
    pool: Executor = (ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="harden") if threads else
                      ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start, initargs=(journal,)))
    futures: dict[Any, int] = {}
    try:
        futures = _submitted(pool, work)
        try:
            _collect(futures, results)
        except BrokenProcessPool:
            say("a worker process died; finishing its files in this process")
            pool.shutdown(wait=True, cancel_futures=True)
            recorded = _read_journal(journal)
            for index, w in enumerate(work):
                if index not in results:
                    results[index] = _as_really(_run_group(w), recorded, before)
    except KeyboardInterrupt as exc:
        say("interrupted: finishing the files being written now, starting no others (Ctrl-C again stops at once)")
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            _terminate(pool)
        written = _written(_ended(futures, results).values())
        written += [p for p in _read_journal(journal) if p not in written]
        written += [p for p in getattr(exc, "written", []) if p not in written]
        raise Interrupted(written) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(journal, ignore_errors=True)
    return [results[i] for i in range(len(work))]
