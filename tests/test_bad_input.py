"""Bad input, through the real command line, one test per case.

Every bad file ends the same way: exit 2; on stderr exactly one line for it,
`PATH[:LINE[:COL]]: error: MESSAGE` (with the position where the input has one); its bytes
untouched; no `.harden-*` temp file left; and a good file named in the same invocation
still hardened (one bad file never stops a batch).

Decisions recorded here:
- A symlink is followed: the file it points to is rewritten, the link stays a link.
  A dangling link or a link loop is an error for that path.
- A directory with no Compose file in it is an error for that path (not silently dropped).
- An invalid profile is a usage error: nothing is read or written, so "the rest of the
  batch" does not apply; the one error line names the profile.
- Permissions are tested as uid 65534 (nobody): the suite runs as root in CI, and root
  ignores file modes. The CLI runs in a forked child that drops its uid (the interpreter
  lives under /root, which nobody could not exec); as a non-root user it runs directly.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hardener.cli  # noqa: F401  (loads the I/O modules whose core calls are patched)
from hardener import oracle
from hardener.cli import app
from hardener.core import harden_text
from hardener.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
GOOD = "services:\n  app:\n    image: example/app:1.0\n"
NOBODY = 65534
runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good" / "compose.yaml"
    path.parent.mkdir()
    path.write_text(GOOD)
    return path


def bad_file(tmp_path: Path, content: bytes | str, name: str = "compose.yaml") -> Path:
    path = tmp_path / "bad" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def temp_files(*dirs: Path) -> list[Path]:
    return [p for d in dirs if d.is_dir() for p in d.iterdir() if p.name.startswith(".harden-")]


def error_lines(stderr: str, path: Path | str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{path}:")]


def assert_refused(result, bad: Path | str, good: Path, message: str, *, before: bytes | None = None, line: int | str | None = None) -> str:
    """The common contract of a bad file; returns its one error line."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.output
    mine = error_lines(result.stderr, bad)
    assert len(mine) == 1, result.stderr
    assert re.match(rf"{re.escape(str(bad))}(:\d+(:\d+)?)?: error: ", mine[0]), mine[0]
    assert message in mine[0], mine[0]
    if line is not None:
        assert mine[0].startswith(f"{bad}:{line}:"), mine[0]
    if before is not None:
        assert Path(bad).read_bytes() == before
    assert temp_files(Path(bad).parent, good.parent) == []
    assert good.read_text() != GOOD and "read_only: true" in good.read_text(), "the good file of the batch was not hardened"
    assert "1 hardened" in result.stderr and "1 error" in result.stderr, result.stderr
    return mine[0]


def refuse(tmp_path: Path, good: Path, content: bytes | str, message: str, line: int | str | None = None, *extra: str,
           compose_check: bool = False) -> str:
    """`fix BAD GOOD`: BAD refused, GOOD hardened. The Docker Compose loader check (which
    only the good file reaches; ~0.2 s a run) is off unless the case is about it: it is
    covered in the batch tests below and in test_project.py."""
    bad = bad_file(tmp_path, content)
    before = bad.read_bytes()
    result = run("fix", *([] if compose_check else ["--no-compose-check"]), *extra, str(bad), str(good))
    return assert_refused(result, bad, good, message, before=before, line=line)


# --- not YAML, not a mapping, duplicate keys -------------------------------------------


@pytest.mark.parametrize(
    "content, message, line",
    [
        ("services:\n  app:\n    image: [unclosed\n", "invalid YAML", 4),
        ("services:\n  app:\n    image: x\n   bad: indentation\n", "invalid YAML", 4),
        ("services:\n\tapp:\n", "invalid YAML", 2),
        ('services:\n  app:\n    image: "no end\n', "invalid YAML", 4),
    ],
    ids=["unclosed-flow", "bad-indentation", "tab-indent", "unclosed-quote"],
)
def test_not_yaml(tmp_path, good, content, message, line):
    refuse(tmp_path, good, content, message, line)


@pytest.mark.parametrize(
    "content, message, line",
    [
        ("- a\n- b\n", "top level is a list, not a mapping", "1:1"),
        ("just a sentence\n", "top level is a string, not a mapping", "1:1"),
        ("# header\n42\n", "top level is a number, not a mapping", "2:1"),
        ("services: [1, 2]\n", "services is not a mapping", "1:11"),
        ("services:\n  app: [image, nginx]\n", "service 'app' is not a mapping", "2:8"),
    ],
    ids=["list", "string", "number", "services-list", "service-list"],
)
def test_yaml_that_is_not_a_mapping(tmp_path, good, content, message, line):
    refuse(tmp_path, good, content, message, line)


@pytest.mark.parametrize(
    "content, key, line",
    [
        ("services:\n  app:\n    image: a\n    image: b\n", '"image"', 4),
        ("services:\n  app:\n    image: a\n  app:\n    image: b\n", '"app"', 4),
        ("services:\n  app:\n    image: a\nservices:\n  b:\n    image: b\n", '"services"', 4),
    ],
    ids=["key", "service", "top-level"],
)
def test_duplicate_keys(tmp_path, good, content, key, line):
    refuse(tmp_path, good, content, f"duplicate key {key}", line)


@pytest.mark.parametrize(
    "content, message, line",
    [
        ("services:\n  app:\n    image: x\n    environment:\n      1: one\n", "non-string mapping key 1 (number)", 5),
        ("services:\n  app:\n    image: x\n    labels:\n      true: yes\n", "non-string mapping key true (boolean)", 5),
        (": no key\nservices:\n  app:\n    image: x\n", "non-string mapping key null (null)", 1),
        ("services:\n  app:\n    image: x\n    labels:\n      ? [a, b]\n      : c\n", "complex (non-scalar) mapping key", None),
        ("x-base: &base\n  cap_drop: [ALL]\n  inner:\n    <<: *base\nservices:\n  app:\n    image: x\n", "invalid YAML: the YAML loader cannot read it", None),
    ],
    ids=["int-key", "bool-key", "null-key", "complex-key", "anchor-merged-into-itself"],
)
def test_keys_compose_does_not_accept(tmp_path, good, content, message, line):
    """Compose takes only string keys ("non-string key in services.app.environment: 1");
    these once made the core raise and stopped the whole batch."""
    refuse(tmp_path, good, content, message, line)


# --- bytes that are not UTF-8 text, empty and comment-only files ---------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary content (NUL byte)"),
        (b"services:\n  app:\n    image: caf\xe9\n", "not UTF-8 text (byte 0xe9 at offset 31)"),
        (b"\xff\xd8\xff\xe0JFIF", "not UTF-8 text (byte 0xff at offset 0)"),
        ("services:\n  app:\n    image: x\n".encode("utf-16"), "UTF-16 text"),
        (b"services:\n  app:\n    image: x\x00\n", "binary content (NUL byte)"),
    ],
    ids=["png", "latin-1", "jpeg", "utf-16", "nul-in-text"],
)
def test_binary_or_not_utf8(tmp_path, good, content, message):
    refuse(tmp_path, good, content, message)


@pytest.mark.parametrize("content", ["", "\n\n", "   \n\t\n", "\ufeff", "\ufeff\r\n"], ids=["zero-bytes", "newlines", "blanks", "bom-only", "bom-and-newline"])
def test_empty_file(tmp_path, good, content):
    refuse(tmp_path, good, content, "empty file; not a Compose file")


@pytest.mark.parametrize(
    "content",
    ["# only a comment\n", "# one\n\n  # two\n", "---\n# comment\n...\n", "# no final newline"],
    ids=["one", "several", "markers", "no-newline"],
)
def test_only_comments(tmp_path, good, content):
    refuse(tmp_path, good, content, "only comments, no YAML content")


# --- resource exhaustion: size, alias bomb, nesting -------------------------------------


def test_50_megabyte_file_refused_fast(tmp_path, good):
    bad = bad_file(tmp_path, b"")
    with open(bad, "wb") as handle:
        handle.write(b"services:\n  app:\n    image: example/app\n")
        line = b"# " + b"x" * 1021 + b"\n"
        handle.write(line * (50 * 1024))
    assert bad.stat().st_size > 50 * 1024 * 1024
    started = time.monotonic()
    result = run("fix", str(bad), str(good))
    elapsed = time.monotonic() - started
    line = assert_refused(result, bad, good, "file too large")
    assert "10,485,760 bytes" in line
    assert bad.stat().st_size > 50 * 1024 * 1024 and bad.read_bytes().startswith(b"services:")
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_50_megabyte_stdin_refused():
    result = run("fix", "-", stdin=GOOD + "#" * (50 * 1024 * 1024) + "\n")
    assert result.exit_code == 2
    assert error_lines(result.stderr, "-") == ["-: error: input too large (over 10,485,760 bytes; Compose files over 10,485,760 bytes are refused)"]
    assert result.stdout == ""


def billion_laughs(used_by_service: bool) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) nodes once expanded."""
    levels = ["lol0: &lol0 [" + ", ".join(['"lol"'] * 9) + "]"]
    levels += [f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "x-laughs:\n" + "".join(f"  {line}\n" for line in levels) + "services:\n  app:\n    image: example/app\n"
    return text + ("    labels:\n      bomb: *lol8\n" if used_by_service else "")


@pytest.mark.parametrize("used_by_service", [False, True], ids=["in-extension", "in-service"])
def test_alias_bomb_refused_within_seconds_without_expanding(tmp_path, good, monkeypatch, used_by_service):
    text = billion_laughs(used_by_service)
    seen: list[str] = []
    real_config = oracle.config

    def spy(source: str, *args, **kwargs):
        seen.append(source)
        return real_config(source, *args, **kwargs)

    monkeypatch.setattr(oracle, "config", spy)
    started = time.monotonic()
    line = refuse(tmp_path, good, text, "(alias bomb; limit 50,000); refused", None, "--jobs", "1", compose_check=True)  # in this process: the spy sees
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert "x-laughs" not in "".join(seen), "Docker Compose was run on the alias bomb"
    assert "aliases would add" in line

    # the core alone, measured: well under a second, in bounded memory (nothing expanded)
    started = time.monotonic()
    result = harden_text(text, load_profile("baseline"))
    assert result.status.value == "error" and "alias bomb" in result.message
    assert time.monotonic() - started < 2


def test_small_aliases_are_not_a_bomb(tmp_path, good):
    """The limit is on what aliases add; ordinary anchors and merges pass."""
    text = (
        "x-env: &env\n" + "".join(f"  VAR_{i}: value-{i}\n" for i in range(50)) +
        "services:\n" + "".join(f"  s{i}:\n    image: example/app\n    environment: *env\n" for i in range(100))
    )
    bad = bad_file(tmp_path, text)
    result = run("fix", "--no-compose-check", str(bad), str(good))
    assert result.exit_code == 0, result.stderr
    assert bad.read_text().count("read_only: true") == 100


DEEP = 10_000


@pytest.mark.parametrize(
    "content",
    [
        "services:\n  app:\n    image: example/app\n    labels: " + "[" * DEEP + "]" * DEEP + "\n",
        "services:\n  app:\n    image: example/app\nx-deep:\n" + " [\n" * DEEP + " ]\n" * DEEP,
        "x-deep: " + "{a: " * DEEP + "1" + "}" * DEEP + "\nservices:\n  app:\n    image: example/app\n",
        "x-deep:\n  " + "- " * DEEP + "leaf\nservices:\n  app:\n    image: example/app\n",
        "x-deep:\n" + "".join(" " * i + "k:\n" for i in range(1, 3001)) + " " * 3001 + "leaf\nservices:\n  app:\n    image: example/app\n",
        "x-deep:\n" + "".join(" " * i + "- k:\n" for i in range(0, 6000, 2)) + " " * 6002 + "leaf\nservices:\n  app:\n    image: example/app\n",
    ],
    ids=["flow-seq-one-line", "flow-seq-multi-line", "flow-map", "block-compact-seq", "block-map-3000", "block-seq-of-maps-3000"],
)
def test_deep_nesting(tmp_path, good, content):
    """10,000 levels where a line can hold them; indented block nesting is quadratic in
    size (10,000 levels of one-space indentation are 50 MB), so 3,000 levels there."""
    started = time.monotonic()
    refuse(tmp_path, good, content, "nesting too deep to be a Compose file")
    assert time.monotonic() - started < 10


# --- paths: directories, missing paths, symlinks -----------------------------------------


def test_directory_without_compose_files(tmp_path, good):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.yaml").write_text(GOOD)  # not a Compose file name
    result = run("fix", str(empty), str(good))
    assert_refused(result, empty, good, "is a directory with no Compose files in it")
    assert (empty / "notes.yaml").read_text() == GOOD


@pytest.mark.parametrize("kind", ["missing", "missing-dir", "through-a-file"])
def test_missing_path(tmp_path, good, kind):
    path = {
        "missing": tmp_path / "nope.yaml",
        "missing-dir": tmp_path / "no" / "such" / "dir",
        "through-a-file": good / "compose.yaml",
    }[kind]
    result = run("fix", str(path), str(good))
    assert_refused(result, path, good, "no such file" if kind != "through-a-file" else "Not a directory")
    assert not path.exists()


def test_symlink_is_followed_and_stays_a_link(tmp_path, good):
    """Decision: the file a symlink points to is rewritten; the link stays a link."""
    real = tmp_path / "elsewhere" / "real.yaml"
    real.parent.mkdir()
    real.write_text(GOOD)
    link = tmp_path / "links" / "compose.yaml"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(real, link.parent))
    target = os.readlink(link)
    result = run("fix", str(link), str(good))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == target
    assert "read_only: true" in real.read_text()
    assert temp_files(real.parent, link.parent) == []
    # the directory is discovered through the link too, and a second run has nothing to do
    again = run("fix", str(link.parent))
    assert again.exit_code == 0 and "1 unchanged" in again.stderr


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_broken_symlink(tmp_path, good, kind):
    link = tmp_path / "bad" / "compose.yaml"
    link.parent.mkdir()
    if kind == "dangling":
        link.symlink_to(tmp_path / "gone.yaml")
        message = "no such file (broken symlink)"
    else:
        other = tmp_path / "bad" / "other.yaml"
        link.symlink_to(other)
        other.symlink_to(link)
        message = "Too many levels of symbolic links"
    result = run("fix", str(link), str(good))
    assert_refused(result, link, good, message)
    assert link.is_symlink()
    assert not (tmp_path / "gone.yaml").exists()


# --- permissions (as a non-root user) -----------------------------------------------------


def run_unprivileged(*args: str) -> tuple[int, str, str]:
    """Run the CLI as uid/gid 65534 when root (in a forked child), else as we are."""
    if os.geteuid() != 0:
        result = run(*args)
        return result.exit_code, result.stdout, result.stderr
    # Warm up: typer and friends import modules lazily, and the child could not read them.
    run("fix", "--no-compose-check", "--diff", "-", stdin=GOOD)
    run("fix", "--no-compose-check", "/nonexistent/compose.yaml")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 70
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = run(*args)
            crash = "" if result.exception is None or isinstance(result.exception, SystemExit) else "".join(traceback.format_exception(result.exception))
            payload = json.dumps([result.exit_code, result.stdout, result.stderr + crash])
            with os.fdopen(write, "w") as out:
                out.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as inp:
        payload = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and payload, f"child failed: {status}"
    code, out, err = json.loads(payload)
    return code, out, err


class Outcome:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr, self.output, self.exception = code, stdout, stderr, stdout + stderr, None


@pytest.fixture
def shared_dir():
    """A directory that uid 65534 can reach (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="harden-perm-"))
    os.chmod(path, 0o777)
    yield path
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, 0o777)
    shutil.rmtree(path)


def make_shared(shared: Path, sub: str, name: str, content: str, mode: int, dir_mode: int = 0o777, owner: int | None = None) -> Path:
    directory = shared / sub
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(content)
    if owner is not None and os.geteuid() == 0:
        os.chown(path, owner, owner)
    os.chmod(path, mode)
    os.chmod(directory, dir_mode)
    return path


@pytest.mark.parametrize(
    "file_mode, dir_mode, message",
    [
        (0o000, 0o777, "permission denied (cannot read)"),
        (0o444, 0o777, "permission denied (cannot write)"),
        (0o666, 0o555, "permission denied (cannot write in its directory)"),
        (0o666, 0o700, "permission denied (cannot reach the file)"),
    ],
    ids=["no-read", "no-write", "read-only-directory", "unreachable-directory"],
)
def test_permissions_for_a_non_root_user(shared_dir, file_mode, dir_mode, message):
    """Files owned by root; the run as uid 65534. A read-only file in a writable directory
    could be replaced by a rename; harden refuses instead of overriding the mode."""
    good = make_shared(shared_dir, "good", "compose.yaml", GOOD, 0o644, owner=NOBODY)
    bad = make_shared(shared_dir, "bad", "compose.yaml", GOOD, file_mode, dir_mode)
    code, out, err = run_unprivileged("fix", "--no-compose-check", str(bad), str(good))
    os.chmod(bad.parent, 0o777)
    assert_refused(Outcome(code, out, err), bad, good, message, before=GOOD.encode())
    assert stat.S_IMODE(bad.stat().st_mode) == file_mode
    assert good.stat().st_uid == (NOBODY if os.geteuid() == 0 else os.geteuid())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can rewrite another user's file")
def test_owner_and_mode_kept_when_root_rewrites_a_users_file(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(GOOD)
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, 0o640)
    result = run("fix", "--no-compose-check", str(path))
    assert result.exit_code == 0, result.stderr
    assert "read_only: true" in path.read_text()  # rewritten, not left alone
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o640)


# --- races and write failures ---------------------------------------------------------------


def patch_core(monkeypatch, wrapper) -> None:
    """Run `wrapper` in place of the core wherever the I/O shell calls it (after the read,
    before the write)."""
    for name in ("hardener.files", "hardener.project"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "harden_text"):
            monkeypatch.setattr(module, "harden_text", wrapper)


def test_file_changed_between_read_and_write_is_not_overwritten(tmp_path, good, monkeypatch):
    bad = bad_file(tmp_path, GOOD.replace("app", "web"))
    theirs = b"services:\n  web:\n    image: example/other:2.0  # edited by someone else\n"
    real = harden_text

    def meanwhile(text, *args, **kwargs):
        if "web" in text:
            time.sleep(0.05)  # past the file system's clock tick: the edit gives the file a new ctime
            bad.write_bytes(theirs)  # another writer, after harden read the file
        return real(text, *args, **kwargs)

    patch_core(monkeypatch, meanwhile)
    result = run("fix", "--jobs", "1", str(bad), str(good))  # in this process, where the patch is
    line = assert_refused(result, bad, good, "file changed on disk since it was read", before=theirs)
    assert line.endswith("not overwritten"), line
    assert "another file now has its name" not in line, line  # not a claim the edit in place disproves


def test_file_removed_between_read_and_write(tmp_path, good, monkeypatch):
    bad = bad_file(tmp_path, GOOD.replace("app", "web"))
    real = harden_text

    def meanwhile(text, *args, **kwargs):
        if "web" in text:
            bad.unlink()
        return real(text, *args, **kwargs)

    patch_core(monkeypatch, meanwhile)
    result = run("fix", "--jobs", "1", str(bad), str(good))  # in this process, where the patch is
    assert_refused(result, bad, good, "file removed since it was read; not written")
    assert not bad.exists()


def test_disk_full_during_the_write(tmp_path, good, monkeypatch):
    """ENOSPC, simulated where the data is made durable (fsync) for the bad file's directory."""
    bad = bad_file(tmp_path, GOOD)
    real = os.fsync
    calls: list[str] = []

    def fsync(fd: int) -> None:
        where = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(where)
        if where.startswith(str(bad.parent) + "/"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = run("fix", "--jobs", "1", str(bad), str(good))  # in this process, where the patch is
    assert_refused(result, bad, good, "write failed, file left untouched: No space left on device", before=GOOD.encode())
    assert any(".harden-" in c and c.startswith(str(bad.parent)) for c in calls)


@pytest.fixture
def tiny_filesystem(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; ENOSPC is covered by test_disk_full_during_the_write")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); ENOSPC is covered by test_disk_full_during_the_write")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_disk_really_full(tiny_filesystem, good):
    """The same on a real, full filesystem (a 64 KiB tmpfs)."""
    bad = tiny_filesystem / "compose.yaml"
    bad.write_text(GOOD)
    fd = os.open(tiny_filesystem / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    result = run("fix", str(bad), str(good))
    assert_refused(result, bad, good, "No space left on device", before=GOOD.encode())


# --- profiles ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, content, message",
    [
        ("unknown-name", None, "unknown profile 'baseliine' (did you mean 'baseline'?)"),
        ("missing-file", None, "cannot read"),
        ("not-yaml", "extends: baseline\nresources: [\n", "invalid YAML"),
        ("unknown-key", "extends: baseline\nresources:\n  memroy: 1g\n", "unknown key 'memroy' (did you mean 'memory'?)"),
        ("wrong-type", "extends: baseline\nresources:\n  pids: many\n", "resources.pids"),
        ("not-a-mapping", "- baseline\n", "must be a mapping"),
    ],
)
def test_invalid_profile(tmp_path, good, kind, content, message):
    """A usage error: exit 2 before any file is read, one line naming the profile."""
    if kind == "unknown-name":
        ref = "baseliine"
    else:
        ref = str(tmp_path / "mine.yaml")
        if content is not None:
            Path(ref).write_text(content)
    bad = bad_file(tmp_path, GOOD)
    result = run("fix", "--profile", ref, str(bad), str(good))
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and lines[0].startswith("harden: error: ") and ref in lines[0], result.stderr
    assert message in lines[0], lines[0]
    assert bad.read_text() == GOOD and good.read_text() == GOOD
    assert temp_files(bad.parent, good.parent) == []


# --- a whole batch of bad files at once ------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_every_bad_file_in_one_batch(tmp_path, jobs):
    cases = {
        "not-yaml": "services:\n  app: [\n",
        "list": "- a\n",
        "duplicate": "services:\n  a:\n    image: x\n  a:\n    image: y\n",
        "latin-1": b"image: caf\xe9\n",
        "empty": "",
        "comments": "# nothing\n",
        "bomb": billion_laughs(True),
        "deep": "x: " + "[" * DEEP + "\n",
        "int-key": "services:\n  a:\n    image: x\n    environment:\n      1: x\n",
    }
    paths = []
    for index, (name, content) in enumerate(cases.items()):
        path = tmp_path / f"{index}-{name}.compose.yaml"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        paths.append(path)
        good = tmp_path / f"{index}-good.compose.yaml"
        good.write_text(GOOD)
    before = {p: p.read_bytes() for p in paths}
    result = run("fix", "--jobs", jobs, str(tmp_path))
    assert result.exit_code == 2
    for path in paths:
        assert len(error_lines(result.stderr, path)) == 1, (path, result.stderr)
        assert path.read_bytes() == before[path]
    assert f"{len(cases)} hardened" in result.stderr and f"{len(cases)} errors" in result.stderr
    assert temp_files(tmp_path) == []


# --- not bad input ------------------------------------------------------------------------


def test_several_yaml_documents_are_one_project(tmp_path, good):
    """Compose v2 merges the documents of a file into one project: every document's
    services are hardened and the `---` separators stay."""
    text = (
        "# first\nname: demo\nservices:\n  a:\n    image: example/app:1.0\n"
        "---\nservices:\n  b:\n    image: example/app:1.0\n"
        "...\n---\n# third: no services\nvolumes:\n  data: {}\n"
    )
    path = bad_file(tmp_path, text)
    result = run("fix", str(path), str(good))
    assert result.exit_code == 0, result.stderr
    out = path.read_text()
    assert [line for line in out.splitlines() if line in ("---", "...")] == ["---", "...", "---"]
    assert out.count("read_only: true") == 2 and out.count('user: "1000:1000"') == 2
    assert out.endswith("volumes:\n  data: {}\n")
    if oracle.compose_binary():
        loaded = oracle.config(out, str(path.parent), as_json=True)
        assert loaded.ok, loaded.error
        assert {name: svc.get("read_only") for name, svc in loaded.model["services"].items()} == {"a": True, "b": True}


def test_already_hardened_file_is_left_byte_identical(tmp_path, good):
    path = tmp_path / "hardened" / "compose.yaml"
    path.parent.mkdir()
    shutil.copy(ROOT / "fixtures" / "edges" / "already_hardened.yaml", path)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    result = run("fix", str(path))
    assert result.exit_code == 0 and "1 unchanged" in result.stderr, result.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    assert temp_files(path.parent) == []
    assert run("check", str(path)).exit_code == 0


@pytest.mark.parametrize("content", ["services: {}\n", "services:\n", "name: x\nservices:  # none yet\n"], ids=["flow", "null", "comment"])
def test_empty_services_mapping(tmp_path, good, content):
    path = bad_file(tmp_path, content)
    result = run("fix", str(path), str(good))
    assert result.exit_code == 0, result.stderr
    assert path.read_text() == content
    assert "read_only: true" in good.read_text()
    assert "1 hardened, 1 unchanged" in result.stderr


def test_module_entry_point_reports_bad_input(tmp_path, good):
    """The same contract through `python -m hardener`, in a separate process."""
    bad = bad_file(tmp_path, "services:\n  app:\n    image: a\n    image: b\n")
    proc = subprocess.run([sys.executable, "-m", "hardener", "fix", str(bad), str(good)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert error_lines(proc.stderr, bad) == [f'{bad}:4:5: error: invalid YAML: duplicate key "image"']
    assert "read_only: true" in good.read_text()
