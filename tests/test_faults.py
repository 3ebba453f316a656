"""Fault injection: `harden fix` killed with SIGKILL while it rewrites many files.

Afterwards every file holds either its old bytes or its complete new bytes, never a mix,
never empty. Two ways in:
- random: a real `python -m hardener fix` over 200 files, killed (its whole process group,
  so `--jobs` workers die too) after delays spread over a full run;
- exact: a child that kills itself at each step of the atomic write (after creating the
  temp file, half-way through writing it, just before and just after the rename).

A SIGKILL between creating the temp file and the rename leaves `.harden-XXXXXXXX.tmp`
behind (nothing can clean up after SIGKILL). Decision: harden never deletes files it did
not create in this run (it writes only the Compose files it was given); the leftovers
never match a discovery pattern, so they are never read as Compose files, and a rerun
finishes the job. See hardener/files.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from typer.testing import CliRunner

from hardener.cli import app
from hardener.core import harden_text
from hardener.files import discover
from hardener.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
FILES = 200
# The expected bytes come from the core alone: no Compose loader run, no image look-up
# (which would also write its cache through a temp file and a rename).
FIX = ("--no-compose-check", "--no-image-facts")
IMAGES = ["example/app:1.0", "nginx:1.25", "postgres:16", "redis:7-alpine", "node:20-alpine", "caddy:2", "busybox"]


def compose_file(index: int, rng: random.Random) -> str:
    """A varied Compose file: 1-4 services, some settings already there, CRLF now and then."""
    lines = [f"# stack {index}", "services:"]
    for number in range(rng.randint(1, 4)):
        lines += [f"  svc{number}:", f"    image: {rng.choice(IMAGES)}"]
        if rng.random() < 0.3:
            lines.append("    cap_drop: [NET_RAW]")
        if rng.random() < 0.3:
            lines += ["    environment:", f"      INDEX: \"{index}\"", "      MODE: production  # keep"]
        if rng.random() < 0.2:
            lines += ["    deploy:", "      resources:", "        limits:", "          memory: 512M"]
        lines.append("")
    text = "\n".join(lines) + "\n"
    return text.replace("\n", "\r\n") if index % 7 == 0 else text


def make_corpus(files: int) -> dict[str, tuple[bytes, bytes]]:
    """name -> (original bytes, expected hardened bytes), expected from the core itself."""
    rng = random.Random(20240601)
    baseline = load_profile("baseline")
    out = {}
    for index in range(files):
        text = compose_file(index, rng)
        result = harden_text(text, baseline)
        assert result.status.value == "changed", result.message
        out[f"stack-{index:03}.compose.yaml"] = (text.encode(), result.text.encode())
    return out


@pytest.fixture(scope="module")
def corpus() -> dict[str, tuple[bytes, bytes]]:
    return make_corpus(FILES)


@pytest.fixture(scope="module")
def small_corpus() -> dict[str, tuple[bytes, bytes]]:
    return make_corpus(12)  # the first 12 files of `corpus`


def lay_out(directory: Path, corpus: dict[str, tuple[bytes, bytes]]) -> None:
    directory.mkdir(parents=True)
    for name, (original, _) in corpus.items():
        (directory / name).write_bytes(original)


def harden_fix(directory: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hardener", "fix", *FIX, *extra, str(directory)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def judge(directory: Path, corpus: dict[str, tuple[bytes, bytes]]) -> tuple[int, int, list[Path]]:
    """(old, new, leftover temp files); fails on any file that is neither."""
    old = new = 0
    for name, (original, expected) in corpus.items():
        data = (directory / name).read_bytes()
        if data == original:
            old += 1
        elif data == expected:
            new += 1
        else:
            pytest.fail(f"{name}: neither the old nor the complete new bytes ({len(data)} bytes)")
    leftovers = sorted(directory.glob(".harden-*"))
    others = {p.name for p in directory.iterdir()} - set(corpus) - {p.name for p in leftovers}
    assert others == set(), others
    return old, new, leftovers


def finish(directory: Path, corpus: dict[str, tuple[bytes, bytes]], leftovers: list[Path]) -> None:
    """Leftover temp files are never discovered; a rerun completes every file."""
    found = discover([str(directory)])
    assert len(found) == FILES and not any(".harden-" in f for f in found)
    proc = subprocess.run([sys.executable, "-m", "hardener", "fix", *FIX, "--jobs", "2", str(directory)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all((directory / name).read_bytes() == expected for name, (_, expected) in corpus.items())
    assert sorted(directory.glob(".harden-*")) == leftovers  # left alone, by decision


@pytest.mark.properties  # randomised, ~1-2 minutes: the property tier; the exact test below is the fast tier's
def test_sigkill_at_random_moments(tmp_path: Path, corpus):
    # A full run first: how long it takes, and that the CLI writes exactly what the core says.
    reference = tmp_path / "reference"
    lay_out(reference, corpus)
    started = time.monotonic()
    proc = harden_fix(reference, "--jobs", "1")
    _, err = proc.communicate(timeout=300)
    full = time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    assert judge(reference, corpus) == (0, FILES, [])

    rng = random.Random(7)
    rounds = 10
    partial_rounds = 0
    for round_ in range(rounds):
        directory = tmp_path / f"round-{round_}"
        lay_out(directory, corpus)
        jobs = 2 if round_ % 3 == 2 else 1  # with --jobs 2 the workers die with the group
        delay = full / jobs * (round_ + rng.random()) / rounds
        proc = harden_fix(directory, "--jobs", str(jobs))
        time.sleep(delay)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
        time.sleep(0.2)  # let killed workers go away
        old, new, leftovers = judge(directory, corpus)
        partial_rounds += 0 < new < FILES
        if round_ in (0, rounds // 2, rounds - 1):
            finish(directory, corpus, leftovers)
        shutil.rmtree(directory)
    # the kills really landed in the middle of runs (not all before or after them)
    assert partial_rounds >= rounds // 2, f"only {partial_rounds} of {rounds} kills landed mid-run (full run {full:.1f} s)"


# A child that runs the CLI and SIGKILLs itself at one step of the Nth atomic write of a
# Compose file (temp files named .harden-*; other temp files, e.g. a cache, do not count).
CHILD = textwrap.dedent(
    """
    import os, signal, sys, tempfile
    point, nth = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}
    ours = set()

    def compose_temp(name):
        return os.path.basename(str(name)).startswith(".harden-")

    def due():
        calls["n"] += 1
        return calls["n"] == nth

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_mkstemp, real_fdopen, real_replace = tempfile.mkstemp, os.fdopen, os.replace

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if compose_temp(name):
            ours.add(fd)
            if point == "after-mkstemp" and due():
                die()
        return fd, name

    class HalfWriter:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)
        def write(self, data):
            if due():
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                die()
            return self.handle.write(data)
        def __getattr__(self, name):
            return getattr(self.handle, name)

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        return HalfWriter(handle) if point == "mid-write" and fd in ours else handle

    def replace(src, dst, *args, **kwargs):
        mine = compose_temp(src)
        if mine and point == "before-rename" and due():
            die()
        real_replace(src, dst, *args, **kwargs)
        if mine and point == "after-rename" and due():
            die()

    tempfile.mkstemp, os.fdopen, os.replace = mkstemp, fdopen, replace
    sys.argv = ["harden", "fix", "--no-compose-check", "--no-image-facts", "--jobs", "1", sys.argv[3]]
    from hardener.cli import main
    main()
    """
)


@pytest.mark.parametrize("point, new_files, leftover", [
    ("after-mkstemp", 4, 1),
    ("mid-write", 4, 1),
    ("before-rename", 4, 1),
    ("after-rename", 5, 0),
])
def test_sigkill_at_each_step_of_the_atomic_write(tmp_path: Path, small_corpus, point, new_files, leftover):
    subset = small_corpus
    directory = tmp_path / "stacks"
    lay_out(directory, subset)
    proc = subprocess.run([sys.executable, "-c", CHILD, point, "5", str(directory)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    old, new, leftovers = judge(directory, subset)
    assert (old, new, len(leftovers)) == (len(subset) - new_files, new_files, leftover)
    if point == "mid-write":
        assert 0 < leftovers[0].stat().st_size < len(list(subset.values())[4][1])  # the half-written temp file
    found = discover([str(directory)])
    assert not any(".harden-" in f for f in found)
    rerun = CliRunner().invoke(app, ["fix", *FIX, "--jobs", "1", str(directory)])  # in this process: quicker
    assert rerun.exit_code == 0, rerun.output
    assert all((directory / name).read_bytes() == expected for name, (_, expected) in subset.items())
