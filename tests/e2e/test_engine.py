"""End-to-end on a real Docker engine: harden's output runs, and runs hardened.

* The same stack of four Debian-based images (busybox, nginx, redis, postgres) runs
  unhardened and hardened by `harden_text` (per-image uids / tmpfs given as `x-harden` in
  the original file); the hardened one still serves, and the engine and /proc show the
  controls, where the original shows their absence.
* A tmpfs over an existing directory belongs to root unless it is given uid=/gid=:
  the reason harden writes them.
* `harden verify` passes on the README example (fixtures/example/compose.yaml, with
  local official-like nginx:1.27 / postgres:16 / redis:7.2), fails with a diagnosis on
  a service that cannot run read-only, and always tears its project down, also on SIGTERM.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)
from hardener.core import harden_text
from hardener.model import Status
from hardener.profile import load_profile

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "fixtures" / "example" / "compose.yaml"
SERVICES = ("box", "web", "cache", "db")
MEMORY, PIDS, CFS_QUOTA = 268435456, 100, 50000  # baseline: 256m, 100 PIDs, 0.5 CPU


@pytest.fixture(scope="module", autouse=True)
def _engine(engine: dict[str, str]) -> dict[str, str]:
    """Skip (or, with HARDEN_REQUIRE_ENGINE=1, fail) the module when no engine is reachable."""
    return engine


def docker(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def leftovers(project: str) -> list[str]:
    """Containers, volumes and networks still labelled with Compose project `project`."""
    label = f"label=com.docker.compose.project={project}"
    out = []
    for kind, cmd in (("container", ["ps", "-a", "-q"]), ("volume", ["volume", "ls", "-q"]), ("network", ["network", "ls", "-q"])):
        out += [f"{kind} {i}" for i in docker(*cmd, "--filter", label).stdout.split()]
    return out


@dataclass
class Stack:
    """A Compose project brought up from one file."""

    name: str
    file: Path

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        cmd = [images.compose_bin(), "-f", str(self.file), "-p", self.name, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.file.parent)

    def container(self, service: str) -> str:
        proc = self.compose("ps", "-a", "-q", service)
        ids = proc.stdout.split()
        assert ids, f"{self.name}: no container for {service}: {proc.stderr}"
        return ids[0]

    def exec(self, service: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.container(service), *cmd)

    def inspect(self, service: str) -> dict:
        return json.loads(docker("inspect", self.container(service), check=True).stdout)[0]

    def status(self, service: str) -> dict[str, str]:
        """/proc/1/status of the service's container."""
        out = self.exec(service, "cat", "/proc/1/status")
        assert out.returncode == 0, out.stderr
        return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.stdout.splitlines())}

    def logs(self, service: str) -> str:
        proc = docker("logs", "--tail", "30", self.container(service))
        return proc.stdout + proc.stderr

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10")


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[[str, str], Stack]]:
    """stack_factory(label, compose_text) -> Stack (written to tmp_path, not started yet);
    every stack made is torn down with `down -v` at the end of the test."""
    made: list[Stack] = []

    def make(label: str, text: str) -> Stack:
        directory = tmp_path / label
        directory.mkdir()
        (directory / "compose.yaml").write_text(text)
        stack = Stack(f"harden-e2e-{label}-{uuid.uuid4().hex[:6]}", directory / "compose.yaml")
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.down()


def _ids(key: str) -> tuple[str, str]:
    uid, _, gid = images.SERVICE_USERS[key][1].partition(":")
    return uid, gid


def original_compose() -> str:
    """The unhardened stack; `x-harden` says what the Debian images need (Compose ignores it)."""
    web, cache, db, box = _ids("nginx"), _ids("redis"), _ids("postgres"), _ids("busybox")

    def owner(ids: tuple[str, str]) -> str:
        return f"uid={ids[0]},gid={ids[1]}"

    return f"""\
services:
  box:
    image: {images.IMAGES["busybox"]}
    x-harden:
      user: "{box[0]}:{box[1]}"
  web:
    image: {images.IMAGES["nginx"]}
    ports:
      - "127.0.0.1::80"
    healthcheck:
      test: ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
      interval: 1s
      timeout: 3s
      retries: 30
    x-harden:
      user: "{web[0]}:{web[1]}"
      tmpfs: ["/run:{owner(web)},size=1m", "/var/lib/nginx:{owner(web)},size=16m", "/var/log/nginx:{owner(web)},size=16m"]
  cache:
    image: {images.IMAGES["redis"]}
    healthcheck:
      test: ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
      interval: 1s
      timeout: 3s
      retries: 30
    x-harden:
      user: "{cache[0]}:{cache[1]}"
      tmpfs: ["/var/lib/redis:{owner(cache)},size=64m"]
  db:
    image: {images.IMAGES["postgres"]}
    healthcheck:
      test: ["CMD", "psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SELECT 1"]
      interval: 1s
      timeout: 3s
      retries: 30
    x-harden:
      user: "{db[0]}:{db[1]}"
      tmpfs: ["/run/postgresql:{owner(db)},size=1m"]
"""


def _up(stack: Stack) -> None:
    proc = stack.compose("up", "-d", "--wait", "--wait-timeout", "90")
    if proc.returncode != 0:
        logs = "\n".join(f"--- {s}\n{stack.logs(s)}" for s in SERVICES if stack.compose("ps", "-a", "-q", s).stdout.strip())
        pytest.fail(f"{stack.name}: up failed: {proc.stderr[-2000:]}\n{logs}")


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stack]:
    """{"original": ..., "hardened": ...}, both up and healthy; torn down (down -v) afterwards."""
    original = original_compose()
    result = harden_text(original, load_profile("baseline"))
    assert result.status is Status.CHANGED, result.message
    made: dict[str, Stack] = {}
    try:
        for label, text in (("original", original), ("hardened", result.text)):
            directory = tmp_path_factory.mktemp(label)
            (directory / "compose.yaml").write_text(text)
            made[label] = Stack(f"harden-e2e-{label}-{os.getpid()}", directory / "compose.yaml")
            _up(made[label])
        yield made
    finally:
        for stack in made.values():
            stack.down()
            assert not leftovers(stack.name), f"{stack.name}: down -v left {leftovers(stack.name)}"


def test_harden_applied_the_x_harden_blocks(stacks: dict[str, Stack]) -> None:
    text = stacks["hardened"].file.read_text()
    for key, service in (("busybox", "box"), ("nginx", "web"), ("redis", "cache"), ("postgres", "db")):
        assert stacks["hardened"].inspect(service)["Config"]["User"] == images.SERVICE_USERS[key][1]
    uid, gid = _ids("nginx")
    assert f"/var/lib/nginx:uid={uid},gid={gid},size=16m" in text
    tmpfs = stacks["hardened"].inspect("web")["HostConfig"]["Tmpfs"]
    assert set(tmpfs) == {"/tmp", "/run", "/var/lib/nginx", "/var/log/nginx"}


# --- the hardened stack still does its job ----------------------------------------------


def _http_status(stack: Stack) -> int:
    port = stack.compose("port", "web", "80").stdout.strip()  # 127.0.0.1:32768
    assert port, f"{stack.name}: web publishes no port"
    with urllib.request.urlopen(f"http://{port}/", timeout=10) as response:
        return response.status


@pytest.mark.parametrize("label", ["original", "hardened"])
def test_services_do_their_job(stacks: dict[str, Stack], label: str) -> None:
    stack = stacks[label]
    assert _http_status(stack) == 200
    assert stack.exec("cache", "redis-cli", "ping").stdout.strip() == "PONG"
    # SAVE writes dump.rdb into redis' dir: the uid-owned tmpfs in the hardened stack
    assert stack.exec("cache", "redis-cli", "set", "k", "v").stdout.strip() == "OK"
    assert stack.exec("cache", "redis-cli", "save").stdout.strip() == "OK"
    assert stack.exec("db", "psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SELECT 1").stdout.strip() == "1"
    sql = "CREATE TABLE t (n int); INSERT INTO t VALUES (42); SELECT n FROM t"
    assert stack.exec("db", "psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", sql).stdout.strip().endswith("42")
    assert stack.exec("box", "wget", "-q", "-O", "/dev/null", "http://web/").returncode == 0


# --- facts from the engine and from inside ----------------------------------------------


def _cgroup(stack: Stack, service: str) -> dict[str, str]:
    """memory / pids / cpu quota as the container's cgroup shows them (v1, or v2)."""
    script = (
        "for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us "
        "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; "
        'do [ -r "$f" ] && echo "$f=$(cat $f)"; done; true'
    )
    out = stack.exec(service, "sh", "-c", script).stdout
    raw = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    pick = lambda *names: next((raw[n] for n in names if n in raw), None)  # noqa: E731
    memory = pick("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
    pids = pick("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    quota = pick("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
    if quota is None and "/sys/fs/cgroup/cpu.max" in raw:
        quota = raw["/sys/fs/cgroup/cpu.max"].split()[0]
    return {"memory": memory, "pids": pids, "quota": quota}


@pytest.mark.parametrize("service", SERVICES)
def test_hardened_facts(stacks: dict[str, Stack], service: str) -> None:
    stack = stacks["hardened"]
    status = stack.status(service)
    uid = status["Uid"].split()
    key = {"box": "busybox", "web": "nginx", "cache": "redis", "db": "postgres"}[service]
    assert uid[1] != "0" and set(uid) == {images.SERVICE_USERS[key][1].split(":")[0]}, status["Uid"]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert int(status["CapBnd"], 16) == 0  # cap_drop: [ALL] with nothing added
    assert status["NoNewPrivs"] == "1"
    touch = stack.exec(service, "touch", "/x")
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch.stderr
    assert _cgroup(stack, service) == {"memory": str(MEMORY), "pids": str(PIDS), "quota": str(CFS_QUOTA)}
    host = stack.inspect(service)["HostConfig"]
    assert (host["ReadonlyRootfs"], host["CapDrop"], host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (
        True, ["ALL"], MEMORY, 500_000_000, PIDS
    )
    assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])


@pytest.mark.parametrize("service", SERVICES)
def test_original_facts(stacks: dict[str, Stack], service: str) -> None:
    """The unhardened stack shows the opposite, so the comparison means something."""
    stack = stacks["original"]
    status = stack.status(service)
    if service == "db":  # its start script already drops PID 1 to postgres with setpriv ...
        assert status["Uid"].split()[1] != "0" and int(status["CapEff"], 16) == 0
        assert int(status["CapBnd"], 16) != 0  # ... but the bounding set is still full
    else:
        assert status["Uid"].split()[1] == "0"
        assert int(status["CapEff"], 16) != 0
    assert status["NoNewPrivs"] == "0"
    touch = stack.exec(service, "touch", "/x")
    assert touch.returncode == 0, touch.stderr
    cgroup = _cgroup(stack, service)
    assert cgroup["memory"] == "max" or int(cgroup["memory"]) > 1 << 60
    assert cgroup["pids"] == "max" and cgroup["quota"] in ("-1", "max")


# --- tmpfs ownership -----------------------------------------------------------------------


def _runc_version() -> tuple[int, ...]:
    out = docker("version", "--format", "{{range .Server.Components}}{{.Name}}={{.Version}} {{end}}").stdout
    match = re.search(r"runc=v?(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else (0,)


def test_tmpfs_over_existing_dir_needs_uid_gid(stack_factory) -> None:
    """runc < 1.1.8 resets a tmpfs over an existing directory to that directory's mode and
    leaves it root's; only uid=/gid= make it writable for a non-root user."""
    common = (
        f"    image: {images.IMAGES['busybox']}\n"
        '    user: "1000:1000"\n'
        "    read_only: true\n"
        "    cap_drop: [ALL]\n"
    )
    stack = stack_factory(
        "tmpfs",
        "services:\n"
        f"  mode_only:\n{common}    tmpfs: [\"/home:mode=1777\"]\n"
        f"  owned:\n{common}    tmpfs: [\"/home:uid=1000,gid=1000\"]\n",
    )
    proc = stack.compose("up", "-d", "--wait", "--wait-timeout", "60")
    assert proc.returncode == 0, proc.stderr
    owned = stack.exec("owned", "sh", "-c", "touch /home/f && stat -c '%a %u:%g' /home")
    assert owned.returncode == 0 and owned.stdout.split() == ["755", "1000:1000"], owned.stderr
    mode_only = stack.exec("mode_only", "sh", "-c", "stat -c '%a %u:%g' /home; touch /home/f")
    if _runc_version() >= (1, 1, 8):
        pytest.skip("runc >= 1.1.8 honours mode= on an existing directory (opencontainers/runc#3916)")
    assert mode_only.stdout.split() == ["755", "0:0"]
    assert mode_only.returncode != 0 and "Permission denied" in mode_only.stderr


# --- harden verify ---------------------------------------------------------------------------


def _verify(*args: str, timeout: float = 300) -> tuple[int, str, str, str]:
    """(exit code, stdout, stderr, project name) of `python -m hardener verify ...`."""
    proc = subprocess.run(
        [sys.executable, "-m", "hardener", "verify", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    match = re.search(r"project (harden-verify-[0-9a-f]+)", proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr, match.group(1) if match else ""


def test_verify_passes_on_the_readme_example(engine: dict[str, str]) -> None:
    before = hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    # The example publishes host port 8080: serialise with other test runs on this machine.
    os.makedirs(images.CACHE_DIR, exist_ok=True)
    with open(os.path.join(images.CACHE_DIR, ".verify-example.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code, out, err, project = _verify(str(EXAMPLE))
    assert code == 0, out + err
    assert project and not leftovers(project), leftovers(project)
    assert hashlib.sha256(EXAMPLE.read_bytes()).hexdigest() == before  # the file is never touched
    lines = out.splitlines()
    assert lines[0].split() == ["SERVICE", "UID", "PROCS", "READ-ONLY", "CAPEFF", "NONEWPRIVS", "MEMORY", "CPUS", "PIDS", "STATE"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {"web", "db", "cache"}
    for name in ("db", "cache"):  # every process of the container, not only PID 1, runs as 999
        uid, procs, read_only = rows[name].split()[1:4]
        assert uid == "999:999" and re.fullmatch(r"\d+x999", procs) and read_only == "yes", rows[name]
    # nginx keeps its root master with exactly CHOWN, SETGID, SETUID (0x1 | 0x40 | 0x80);
    # its workers run as nginx (101)
    assert "0:0 (root kept)" in rows["web"] and "0xc1 CHOWN,SETGID,SETUID" in rows["web"]
    assert re.search(r"\b1xroot \d+x101\b", rows["web"]), rows["web"]
    assert all("!" not in row and row.rstrip().endswith("running") for row in rows.values())
    assert "OK: 3 container(s) of 3 service(s)" in out


def test_verify_fails_and_names_the_fix(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n"
        "  app:\n"
        f"    image: {images.IMAGES['busybox']}\n"
        '    command: ["sh", "-c", "mkdir -p /var/lib/x && date > /var/lib/x/started && exec sleep 600"]\n'
    )
    # Without image facts the profile's values are applied (as fix does where nothing could be read).
    code, out, err, project = _verify(str(compose), "--timeout", "60", "--no-image-facts")
    assert code == 1, out + err
    assert project and not leftovers(project), leftovers(project)
    assert "Read-only file system" in out
    assert re.search(r"app \(fresh start\): exited \(1\), the original was running: .*Read-only file system.*\[control read_only\]", out), out
    # the fix is printed only because a rerun with it no longer fails
    assert re.search(r'verified fixes.*\n  app: x-harden: \{tmpfs: \["/var/lib/x:', out), out
    assert "app state: exited (1)" in out


def test_verify_tears_down_on_sigterm(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n"
        "  slow:\n"
        f"    image: {images.IMAGES['busybox']}\n"
        "    healthcheck: {test: [\"CMD\", \"false\"], interval: 1s, retries: 1000}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardener", "verify", str(compose), "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    project = ""
    try:
        for line in proc.stderr:  # "... as project harden-verify-xxxx"
            match = re.search(r"project (harden-verify-[0-9a-f]+)", line)
            if match:
                project = match.group(1)
                break
        assert project, "verify did not name its project"
        deadline = time.monotonic() + 60
        while not docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project}").stdout.strip():
            assert time.monotonic() < deadline, "the project's container never started"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if project:
            subprocess.run([images.compose_bin(), "-p", project, "down", "-v"], capture_output=True)
    assert proc.returncode == 130, out + err
    assert "interrupted (SIGTERM)" in err and "tearing down" in err
    assert not leftovers(project), leftovers(project)
