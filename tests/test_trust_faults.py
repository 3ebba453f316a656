"""Trust under attack and interruption: harden runs as root over directories other users
own, and gets killed or interrupted.

8. `atomic_write` in a directory an attacker owns: every metadata call goes through the
   open descriptor, the temp file is created O_EXCL|O_NOFOLLOW, the target is checked by
   inode before the rename; an attacker swapping the temp file, the target or the
   directory for a symlink, at any step, gets no root-owned file and no chown / chmod of
   a file of root's. Hard links are refused; setuid/setgid, extended attributes (ACLs)
   and the owner are kept.
13. Ctrl-C with or without the worker pool stops cleanly and says what was written; a
   worker that dies does not turn the files it wrote into "unchanged"; temp files a
   SIGKILL left are removed by the next run (only harden's own, stale, owned by us).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hardener.cli  # noqa: F401
from hardener import files, oracle
from hardener.cli import app
from hardener.files import atomic_write, read_bytes
from hardener.model import RefusedError

ROOT = Path(__file__).resolve().parents[1]
STACK = "services:\n  web:\n    image: nginx:1.27\n"
runner = CliRunner()
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the attack is a second user against a root run")


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def hardened(text: str = STACK) -> bytes:
    result = run("fix", "--no-compose-check", "-", stdin=text)
    assert result.exit_code == 0, result.output
    return result.stdout.encode()


# --- 8. the symlink / swap attacks, one step at a time --------------------------------------

ATTACKER = 4242  # a uid that owns the directory; no account needed for the step-by-step attacks


class Scene:
    """An attacker-owned directory `d` (inside the attacker-owned `base`) holding
    compose.yaml, and a root-owned `victim` directory holding `secret` (0600)."""

    def __init__(self, root: Path):
        self.base = root / "base"
        self.d = self.base / "d"
        self.d.mkdir(parents=True)
        self.victim = root / "victim"
        self.victim.mkdir()
        self.secret = self.victim / "secret"
        self.secret.write_text("root only\n")
        os.chmod(self.secret, 0o600)
        self.compose = self.d / "compose.yaml"
        self.compose.write_text(STACK)
        for path in (self.base, self.d, self.compose):
            os.chown(path, ATTACKER, ATTACKER)
        self.secret_before = self._secret_state()
        self.victim_before = sorted(os.listdir(self.victim))

    def _secret_state(self):
        info = os.lstat(self.secret)
        return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), self.secret.read_bytes()

    def assert_victim_untouched(self) -> None:
        assert self._secret_state() == self.secret_before, "the attacker redirected a chown/chmod/write onto a root file"
        assert sorted(os.listdir(self.victim)) == self.victim_before, f"files appeared where the attacker points: {os.listdir(self.victim)}"

    # the attacks: each acts once, at the moment the test chooses
    def temp_to_symlink(self) -> None:
        for name in os.listdir(self.d):
            if name.startswith(".harden-"):
                os.unlink(self.d / name)
                os.symlink(self.secret, self.d / name)

    def dir_to_symlink(self) -> None:
        if not self.d.is_symlink():
            os.rename(self.d, self.base / "d.real")
            os.symlink(self.victim, self.d)

    def target_to_symlink(self) -> None:
        os.unlink(self.compose)
        os.symlink(self.secret, self.compose)

    def target_to_identical_copy(self) -> None:
        data = self.compose.read_bytes()
        os.unlink(self.compose)
        self.compose.write_bytes(data)
        os.chown(self.compose, ATTACKER, ATTACKER)  # the attacker's own file


HOOKED = ("open", "stat", "lstat", "fstat", "fsync", "fchmod", "fchown", "chmod", "chown", "replace", "rename", "access",
          "listxattr", "getxattr", "setxattr", "removexattr", "pread", "close", "unlink", "write")


def attack_at(monkeypatch: pytest.MonkeyPatch, step: int, attack) -> list[str]:
    """Make `attack()` happen just before the `step`-th os call the write makes."""
    calls: list[str] = []
    busy = [False]
    for name in HOOKED:
        real = getattr(os, name)

        def hooked(*args, __real=real, __name=name, **kwargs):
            if not busy[0]:
                calls.append(__name)
                if len(calls) == step:
                    busy[0] = True
                    try:
                        attack()
                    finally:
                        busy[0] = False
            return __real(*args, **kwargs)

        monkeypatch.setattr(os, name, hooked)
    return calls


@needs_root
@pytest.mark.parametrize("attack", ["temp_to_symlink", "dir_to_symlink", "target_to_symlink", "target_to_identical_copy"])
def test_an_attacker_swapping_things_at_any_step_gets_nothing(tmp_path, monkeypatch, attack):
    new = hardened()
    steps = 0
    while True:
        steps += 1
        scene = Scene(tmp_path / f"round-{steps}")
        expect = read_bytes(str(scene.compose))
        with monkeypatch.context() as patch:
            calls = attack_at(patch, steps, getattr(scene, attack))
            try:
                atomic_write(str(scene.compose), new, expect)
                wrote = True
            except RefusedError:
                wrote = False
        scene.assert_victim_untouched()
        real_dir = scene.base / "d.real" if (scene.base / "d.real").exists() else scene.d
        target = real_dir / "compose.yaml"
        if wrote and not target.is_symlink():
            assert target.read_bytes() in (new, STACK.encode())
            if target.read_bytes() == new:
                assert (os.stat(target).st_uid, os.stat(target).st_gid) == (ATTACKER, ATTACKER)
        assert not [n for n in os.listdir(real_dir) if n.startswith(".harden-")], "temp file left behind"
        if steps > len(calls):  # the attack came after the last call: every step was tried
            break
    assert steps > 10


@needs_root
def test_the_identical_bytes_swap_is_caught(tmp_path):
    scene = Scene(tmp_path)
    expect = read_bytes(str(scene.compose))
    scene.target_to_identical_copy()
    with pytest.raises(RefusedError, match=r"changed on disk since it was read \(edited, or replaced by another file\)"):
        atomic_write(str(scene.compose), hardened(), expect)
    assert scene.compose.read_text() == STACK


def test_metadata_is_never_set_by_path(tmp_path, monkeypatch):
    path = tmp_path / "compose.yaml"
    path.write_text(STACK)
    expect = read_bytes(str(path))
    for name in ("chmod", "chown", "lchown", "setxattr", "removexattr"):
        real = getattr(os, name)

        def by_fd_only(target, *args, __real=real, __name=name, **kwargs):
            assert isinstance(target, int), f"os.{__name} by path: {target}"
            return __real(target, *args, **kwargs)

        monkeypatch.setattr(os, name, by_fd_only)
    atomic_write(str(path), hardened(), expect)
    assert path.read_bytes() == hardened()


def test_the_temp_file_is_created_exclusively_without_following_symlinks(tmp_path, monkeypatch):
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(target, flags, mode=0o777, **kwargs):
        opened.append((str(target), flags, mode))
        return real_open(target, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    path = tmp_path / "compose.yaml"
    path.write_text(STACK)
    atomic_write(str(path), hardened(), read_bytes(str(path)))
    temps = [(flags, mode) for name, flags, mode in opened if ".harden-" in name]
    assert len(temps) == 1
    flags, mode = temps[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_NOFOLLOW and mode == 0o600


def test_a_hard_linked_file_is_refused(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(STACK)
    os.link(path, tmp_path / "other-name.yaml")
    result = run("fix", "--no-compose-check", str(path))
    assert result.exit_code == 2, result.output
    assert "file has 2 hard links; a rewrite would split them" in result.stderr
    assert path.read_text() == STACK and (tmp_path / "other-name.yaml").read_text() == STACK


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX ACL as the system.posix_acl_* attributes hold it (version 2)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


USER_OBJ, USER, GROUP_OBJ, MASK, OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


@needs_root
def test_owner_setuid_setgid_xattrs_and_acl_are_kept(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    try:  # a default ACL on the directory: the temp file inherits an ACL the original lacks
        os.setxattr(directory, "system.posix_acl_default", _acl((USER_OBJ, 7, UNDEFINED), (USER, 7, 31337), (GROUP_OBJ, 5, UNDEFINED),
                                                                  (MASK, 7, UNDEFINED), (OTHER, 5, UNDEFINED)))
        os.setxattr(tmp_path, "user.probe", b"1")
    except OSError as exc:
        pytest.skip(f"no ACL / user xattr support here: {exc}")
    plain = directory / "plain.yaml"
    rich = directory / "rich.yaml"
    for path in (plain, rich):
        path.write_text(STACK)
        for name in os.listxattr(path):
            os.removexattr(path, name)
    acl = _acl((USER_OBJ, 6, UNDEFINED), (USER, 4, 4242), (GROUP_OBJ, 4, UNDEFINED), (MASK, 4, UNDEFINED), (OTHER, 0, UNDEFINED))
    os.setxattr(rich, "system.posix_acl_access", acl)
    os.setxattr(rich, "user.origin", b"kept")
    os.chown(rich, 4242, 4343)
    os.chmod(rich, 0o6640)
    os.chown(plain, 4242, 4343)
    os.chmod(plain, 0o640)
    before = {p: (os.stat(p).st_uid, os.stat(p).st_gid, stat.S_IMODE(os.stat(p).st_mode), sorted(os.listxattr(p)),
                  {n: os.getxattr(p, n) for n in os.listxattr(p)}) for p in (plain, rich)}
    result = run("fix", "--no-compose-check", str(plain), str(rich))
    assert result.exit_code == 0, result.output
    for path in (plain, rich):
        after = (os.stat(path).st_uid, os.stat(path).st_gid, stat.S_IMODE(os.stat(path).st_mode), sorted(os.listxattr(path)),
                 {n: os.getxattr(path, n) for n in os.listxattr(path)})
        assert "no-new-privileges" in path.read_text()
        assert after == before[path], (path.name, before[path], after)


# --- 8. the same attack for real: a second user races a root `harden fix` -------------------


@pytest.fixture(scope="module")
def attacker():
    """A throwaway account created for the test (uid, gid), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd / userdel not installed")
    name = f"htrust{os.getpid() % 100000}"
    proc = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"useradd failed: {proc.stderr.strip()}")
    try:
        import pwd

        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True)


SWAPPER = """
import os, sys
base, victim, secret, stop = sys.argv[1:5]
d = os.path.join(base, "d")
real = os.path.join(base, "d.real")
link = os.path.join(base, ".link")
n = 0
while not os.path.exists(stop):
    n += 1
    try:  # every temp file harden makes in d becomes a symlink to root's secret
        for name in os.listdir(d):
            if name.startswith(".harden-"):
                try:
                    os.symlink(secret, link)
                except FileExistsError:
                    pass
                os.rename(link, os.path.join(d, name))
    except OSError:
        pass
    if n % 50 == 0:  # now and then, d itself becomes a symlink to root's directory, briefly
        try:
            os.rename(d, real)
            os.symlink(victim, d)
            for name in os.listdir(d):
                pass
            os.unlink(d)
            os.rename(real, d)
        except OSError:
            pass
"""


def reset(base: Path, uid: int, gid: int) -> bool:
    """Put the original compose.yaml back in the attacker's directory without following
    any of the attacker's symlinks (as root, the test must not fall for them either)."""
    base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in ("d", "d.real"):
            try:
                d_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=base_fd)
            except OSError:
                continue
            try:
                try:
                    os.unlink("compose.yaml", dir_fd=d_fd)
                except FileNotFoundError:
                    pass
                fd = os.open("compose.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=d_fd)
                try:
                    os.write(fd, STACK.encode())
                    os.fchown(fd, uid, gid)
                finally:
                    os.close(fd)
                return name == "d"
            except OSError:
                return False
            finally:
                os.close(d_fd)
        return False
    finally:
        os.close(base_fd)


def test_a_second_user_racing_a_root_run_gets_no_root_file(tmp_path, attacker):
    uid, gid = attacker
    shared = Path(tempfile.mkdtemp(prefix="harden-race-"))
    try:
        os.chmod(shared, 0o755)
        base, victim = shared / "base", shared / "victim"
        (base / "d").mkdir(parents=True)
        victim.mkdir()
        secret = victim / "secret"
        secret.write_text("root only\n")
        os.chmod(secret, 0o600)
        compose = base / "d" / "compose.yaml"
        for path in (base, base / "d"):
            os.chown(path, uid, gid)
        stop = shared / "stop"
        swapper = os.fork()
        if swapper == 0:  # the attacker: this process, as the second user (no exec: the interpreter may sit where it cannot read)
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                sys.argv = ["swapper", str(base), str(victim), str(secret), str(stop)]
                exec(compile(SWAPPER, "swapper", "exec"), {"__name__": "swapper"})
            finally:
                os._exit(0)
        outcomes = {"written": 0, "refused": 0}
        try:
            deadline = time.monotonic() + 20
            rounds = 0
            while time.monotonic() < deadline and rounds < 300:
                rounds += 1
                if not reset(base, uid, gid):
                    rounds -= 1
                    time.sleep(0.001)
                    continue
                result = run("fix", "--no-compose-check", str(compose))
                outcomes["written" if result.exit_code == 0 else "refused"] += 1
                info = os.lstat(secret)
                assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600), f"round {rounds}: {result.output}"
                assert secret.read_text() == "root only\n"
                assert sorted(os.listdir(victim)) == ["secret"], f"round {rounds}: root file where the attacker points: {os.listdir(victim)}"
        finally:
            stop.touch()
            os.waitpid(swapper, 0)
        assert outcomes["written"] + outcomes["refused"] >= 20 and outcomes["written"] > 0, outcomes
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# --- 13. interrupts, dead workers, leftovers ------------------------------------------------


def lay_out(directory: Path, count: int) -> dict[str, bytes]:
    directory.mkdir(parents=True)
    originals = {}
    for index in range(count):
        name = f"stack-{index:03}.compose.yaml"
        text = f"# stack {index}\n" + STACK
        (directory / name).write_text(text)
        originals[name] = text.encode()
    return originals


def changed(directory: Path, originals: dict[str, bytes]) -> set[str]:
    return {str(directory / name) for name, data in originals.items() if (directory / name).read_bytes() != data}


# A child running the CLI with `atomic_write` instrumented: after the Nth write in a process,
# SIGINT the whole process group (as a terminal Ctrl-C does), or SIGKILL this process.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading
    action, nth, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    import hardener.project as project
    real = project.atomic_write
    count = {"n": 0}
    lock = threading.Lock()

    def once():
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

    def instrumented(*args, **kwargs):
        with lock:  # threads of one process write at once: each write gets its own number
            count["n"] += 1
            n = count["n"]
        if action == "kill-before" and n == nth and once():
            os.kill(os.getpid(), signal.SIGKILL)  # the files written before are recorded
        real(*args, **kwargs)
        if action == "kill-after" and n == nth and once():
            os.kill(os.getpid(), signal.SIGKILL)  # written, not yet recorded
        if action == "sigint" and n == nth and once():
            os.killpg(os.getpgid(0), signal.SIGINT)

    project.atomic_write = instrumented
    sys.argv = ["harden", "fix", *sys.argv[4:]]
    from hardener.cli import main
    main()
    """
)


def child(action: str, nth: int, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, action, str(nth), str(tmp_path / "flag"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, start_new_session=True)


@pytest.mark.parametrize("jobs,check", [("1", "--no-compose-check"), ("2", "--no-compose-check"), ("1", "--compose-check")])
def test_ctrl_c_stops_cleanly_and_says_what_was_written(tmp_path, jobs, check):
    """In one process, in worker processes, and with the Compose loader check on, where one
    process overlaps several files in threads."""
    if check == "--compose-check" and oracle.compose_binary() is None:
        pytest.skip("the Compose v2 binary is not installed")
    directory = tmp_path / "stacks"
    originals = lay_out(directory, 40)
    proc = child("sigint", 6, tmp_path, check, "--jobs", jobs, str(directory))
    assert proc.returncode == 130, proc.stderr
    written = changed(directory, originals)
    assert 6 <= len(written) < len(originals), len(written)
    match = f"harden: interrupted; {len(written)} files written before it stopped:"
    assert match in proc.stderr, proc.stderr
    listed = {line.strip() for line in proc.stderr.splitlines() if line.startswith("  ")}
    assert listed == written
    assert "every other file is as it was" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(directory.glob(".harden-*"))
    assert all((directory / n).read_bytes() in (o, hardened(o.decode())) for n, o in originals.items())


@pytest.mark.parametrize("action", ["kill-before", "kill-after"])
def test_files_a_dead_worker_wrote_are_reported_as_written(tmp_path, action):
    directory = tmp_path / "stacks"
    originals = lay_out(directory, 40)
    proc = child(action, 3, tmp_path, "--no-compose-check", "--jobs", "2", "--format", "json", str(directory))
    assert proc.returncode == 0, proc.stderr
    assert "a worker process died" in proc.stderr
    report = {entry["path"]: entry for entry in json.loads(proc.stdout)["files"]}
    assert changed(directory, originals) == {str(directory / n) for n in originals}  # every file done, in the end
    wrong = {p: (e["status"], e["written"]) for p, e in report.items() if (e["status"], e["written"]) != ("changed", True)}
    assert wrong == {}, wrong
    summary = [line for line in proc.stderr.splitlines() if line.startswith("harden: 40 files")]
    assert summary and "40 hardened, 0 unchanged" in summary[0], proc.stderr


def test_temp_files_a_killed_run_left_are_removed_by_the_next_fix(tmp_path):
    directory = tmp_path / "stacks"
    originals = lay_out(directory, 3)
    old = time.time() - 600
    stale = directory / ".harden-abcd1234.tmp"
    fresh = directory / ".harden-fresh123.tmp"  # may belong to a run going on now
    foreign = directory / ".harden-other123.tmp"  # not ours
    not_a_file = directory / ".harden-dirdir12.tmp"
    link = directory / ".harden-link1234.tmp"
    odd = directory / ".harden-abcd1234.tmp.bak"
    for path in (stale, fresh, foreign, odd):
        path.write_text("partial")
    not_a_file.mkdir()
    link.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("keep")
    if os.geteuid() == 0:
        os.chown(foreign, 4242, 4242)
    for path in (stale, foreign, not_a_file, link, odd):
        os.utime(path, (old, old), follow_symlinks=False)
    check = run("check", "--no-compose-check", str(directory))
    assert stale.exists(), "check writes nothing: it removes nothing either"
    result = run("fix", "--no-compose-check", str(directory))
    assert result.exit_code == 0, result.output
    assert not stale.exists() and f"removed {stale}" in result.stderr
    assert fresh.exists() and not_a_file.exists() and link.is_symlink() and odd.exists() and (tmp_path / "elsewhere").exists()
    assert foreign.exists() or os.geteuid() != 0
    assert changed(directory, originals) == {str(directory / n) for n in originals}
    assert check.exit_code == 1


def test_a_real_sigkill_leftover_is_removed_once_stale(tmp_path):
    """The leftover of a SIGKILL just before the rename, aged past a minute, goes."""
    directory = tmp_path / "stacks"
    originals = lay_out(directory, 6)
    kill = textwrap.dedent(
        """
        import os, signal, sys
        real = os.replace
        def replace(src, *args, **kwargs):
            if ".harden-" in str(src):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, *args, **kwargs)
        os.replace = replace
        sys.argv = ["harden", "fix", "--no-compose-check", "--jobs", "1", sys.argv[1]]
        from hardener.cli import main
        main()
        """
    )
    proc = subprocess.run([sys.executable, "-c", kill, str(directory)], cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    (leftover,) = directory.glob(".harden-*.tmp")
    assert files.TEMP_NAME.match(leftover.name)
    again = run("fix", "--no-compose-check", str(directory))
    assert again.exit_code == 0 and leftover.exists()  # too recent: it might be a running harden's
    old = time.time() - 120
    os.utime(leftover, (old, old))
    again = run("fix", "--no-compose-check", str(directory))
    assert again.exit_code == 0 and not leftover.exists()
    assert changed(directory, originals) == {str(directory / n) for n in originals}
