"""Running the groups of a run: one after another, in threads of this process (so that one
group is planned while another waits for its Docker Compose loader check), or in worker
processes; outcomes handed on in the order of the paths given; what Ctrl-C and a worker
that dies leave behind, said and reported. `run` is the function that hardens one group
(`project._run_group`), given here so that this module knows nothing of hardening.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from .files import FileOutcome, say, temp_dir
from .model import Status

Run = Callable[[Any], "list[FileOutcome]"]


class _InOrder:
    """Outcomes handed to `emit` in the order of the paths given, each as soon as every one
    before it is done; the run keeps what `emit` returns (`finish`)."""

    def __init__(self, paths: list[str], emit: Callable[[FileOutcome], FileOutcome] | None):
        self.order: dict[str, int] = {}
        for index, path in enumerate(paths):
            self.order.setdefault(path, index)
        self.used = set(self.order.values())  # a path given twice is one file, at its first place
        self.count = len(paths)
        self.emit = emit or (lambda o: o)
        self.waiting: dict[int, list[FileOutcome]] = {}
        self.kept: list[FileOutcome] = []
        self.next = 0

    def add(self, outcomes: list[FileOutcome]) -> list[str]:
        """Take a group's outcomes; returns what the pool remembers of them: the files written."""
        for o in outcomes:
            self.waiting.setdefault(self.order.get(o.path, 0), []).append(o)
        while self.next in self.waiting or (self.next < self.count and self.next not in self.used):
            self.kept.extend(self.emit(o) for o in self.waiting.pop(self.next, []))
            self.next += 1
        return [o.path for o in outcomes if o.written]

    def finish(self) -> list[FileOutcome]:
        for index in sorted(self.waiting):
            self.kept.extend(self.emit(o) for o in self.waiting.pop(index))
        return self.kept


def _in_turn(work: list[Any], in_order: _InOrder, run: Run) -> None:
    results: list[list[str]] = []  # each group's files written
    try:
        for w in work:
            results.append(in_order.add(run(w)))
    except KeyboardInterrupt as exc:
        raise Interrupted(_written(results) + getattr(exc, "written", [])) from None


#: groups in flight in one process (`_pooled` with threads): while one waits for its Docker
#: Compose loader check (a process of its own), the next is planned, on another core
OVERLAP = 3


def _collect(pool: Executor, work: list[Any], futures: dict[Any, int], results: dict[int, list[str]],
             in_order: _InOrder, window: int, run: Run) -> None:
    """Run `work` in `pool`, at most `window` groups submitted at a time (`futures`: those
    in flight, future -> index), each group's files written into `results` as it ends. The
    wait wakes every tenth of a second: a Ctrl-C that reached another thread of this
    process is handled by this one, which may otherwise sleep through it."""
    queue = iter(enumerate(work))
    while True:
        while len(futures) < window:
            item = next(queue, None)
            if item is None:
                break
            futures[pool.submit(run, item[1])] = item[0]
        if not futures:
            return
        done, _ = wait(list(futures), timeout=0.1, return_when=FIRST_COMPLETED)
        for future in done:
            results[futures.pop(future)] = in_order.add(future.result())


def _ended(futures: dict[Any, int], results: dict[int, list[str]], in_order: _InOrder) -> dict[int, list[str]]:
    """`results` with every group that ended well once the pool stopped."""
    for future, index in futures.items():
        if index not in results and future.done() and not future.cancelled() and future.exception() is None:
            results[index] = in_order.add(future.result())
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
    """The files written, from each group's list of them."""
    return [path for paths in results for path in paths]


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


def _pooled(work: list[Any], jobs: int, paths: list[str], in_order: _InOrder, run: Run, threads: bool = False) -> None:
    """`run` over `work` in `jobs` worker processes (`threads`: threads of this
    process, `OVERLAP` of them, so that the next group is planned while one waits for its
    Docker Compose loader check), each group reported as it ends. A worker process that
    dies (OOM killer, ...): the groups not reported yet run again in this process, and
    what the dead worker wrote is reported as written. Ctrl-C: no new group
    starts, the running ones finish (Ctrl-C again stops them at once), and `Interrupted`
    says what was written."""
    before = {} if threads else {p: _identity(p) for p in paths}  # only a worker process can die
    results: dict[int, list[str]] = {}  # each group's files written
    journal = temp_dir("run")
    pool: Executor = (ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="harden") if threads else
                      ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start, initargs=(journal,)))
    futures: dict[Any, int] = {}
    try:
        try:
            _collect(pool, work, futures, results, in_order, jobs * 2 + 2, run)
        except BrokenProcessPool:
            say("a worker process died; finishing its files in this process")
            pool.shutdown(wait=True, cancel_futures=True)
            recorded = _read_journal(journal)
            for index, w in enumerate(work):
                if index not in results:
                    results[index] = in_order.add(_as_really(run(w), recorded, before))
    except KeyboardInterrupt as exc:
        say("interrupted: finishing the files being written now, starting no others (Ctrl-C again stops at once)")
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            _terminate(pool)
        written = _written(_ended(futures, results, in_order).values())
        written += [p for p in _read_journal(journal) if p not in written]
        written += [p for p in getattr(exc, "written", []) if p not in written]
        raise Interrupted(written) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(journal, ignore_errors=True)
