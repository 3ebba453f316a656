"""hardener.facts against a real Docker engine and a local registry (Debian's docker-registry).

Three small images are built here (busybox-static and gosu from Debian, a root filesystem
written with tarfile, `docker import`): one with `USER app` and a home it owns, one that
starts as root and drops to `svc` with the real gosu from its entrypoint script, one that
declares a VOLUME owned by uid 999. Their facts are read from the engine without running
them, then checked against what a run of each image shows. One is pushed to a registry on
127.0.0.1 and read from there with the engine's copy of that reference removed.

No engine reachable -> skip with the reason (a failure under HARDEN_REQUIRE_ENGINE=1, as
in tests/e2e/conftest.py); no docker-registry binary -> the registry tests skip likewise.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

import images  # tests/e2e/images.py (on sys.path through tests/e2e/conftest.py)
from hardener.facts import lookup

pytestmark = pytest.mark.engine

LABEL = "org.harden.e2e.facts"
VERSION = "1"
USER_IMAGE = "harden-facts/user:1"
GOSU_IMAGE = "harden-facts/gosu:1"
VOLUME_IMAGE = "harden-facts/volume:1"

ENTRYPOINT = """#!/bin/sh
set -e
if [ "$(id -u)" = '0' ]; then
	mkdir -p /run/svc
	chown -R "$SVC_USER" /run/svc /var/lib/svc
	exec gosu "$SVC_USER" "$0" "$@"
fi
exec "$@"
"""


def _require(reason: str) -> None:
    if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
        pytest.fail(reason + " (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
    pytest.skip(reason)


def _docker(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)


def _deb_binary(package: str, path: str, dest: str) -> str:
    deb = images._apt_download(package, dest)
    extract = os.path.join(dest, package)
    subprocess.run(["dpkg", "-x", deb, extract], check=True, timeout=120)
    return os.path.join(extract, path.lstrip("/"))


class _Root:
    """A root filesystem written straight into a tar (owners set without being root)."""

    def __init__(self, busybox: str) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.GNU_FORMAT)
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("run", 0o755),
                           ("usr", 0o755), ("usr/local", 0o755), ("usr/local/bin", 0o755), ("var", 0o755),
                           ("var/lib", 0o755), ("home", 0o755), ("proc", 0o755), ("sys", 0o755), ("dev", 0o755)):
            self.dir(name, mode)
        self.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
        for applet in applets:
            if applet != "busybox":
                self.link("bin/" + applet, "busybox")

    def _add(self, info: tarfile.TarInfo, data: bytes | None = None) -> None:
        self.tar.addfile(info, io.BytesIO(data) if data is not None else None)

    def dir(self, name: str, mode: int, uid: int = 0, gid: int = 0) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
        self._add(info)

    def file(self, name: str, data: bytes | str, mode: int = 0o644) -> None:
        payload = data.encode() if isinstance(data, str) else data
        info = tarfile.TarInfo(name)
        info.mode, info.size = mode, len(payload)
        self._add(info, payload)

    def link(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self._add(info)

    def accounts(self, *users: tuple[str, int, str]) -> None:
        self.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                  + "".join(f"{n}:x:{i}:{i}::{h}:/bin/sh\n" for n, i, h in users))
        self.file("etc/group", "root:x:0:\n" + "".join(f"{n}:x:{i}:\n" for n, i, _ in users))

    def import_as(self, name: str, changes: list[str]) -> None:
        self.tar.close()
        args = ["import"]
        for change in [*changes, f"LABEL {LABEL}={VERSION}"]:
            args += ["--change", change]
        done = subprocess.run(["docker", *args, "-", name], input=self.buffer.getvalue(), capture_output=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"docker import {name} failed: {done.stderr.decode(errors='replace')[-2000:]}")


def _current(name: str) -> bool:
    done = _docker("image", "inspect", "--format", "{{index .Config.Labels \"%s\"}}" % LABEL, name, timeout=30)
    return done.returncode == 0 and done.stdout.strip() == VERSION


def _build(tmp: str) -> None:
    busybox = _deb_binary("busybox-static", "/bin/busybox", tmp)
    if not _current(USER_IMAGE):
        root = _Root(busybox)
        root.accounts(("app", 1000, "/home/app"))
        root.dir("home/app", 0o750, 1000, 1000)
        root.import_as(USER_IMAGE, ["ENV PATH=/bin", "USER app", "WORKDIR /home/app", 'CMD ["sleep", "3600"]'])
    if not _current(GOSU_IMAGE):
        root = _Root(busybox)
        root.accounts(("svc", 999, "/var/lib/svc"))
        root.dir("var/lib/svc", 0o750, 999, 999)
        root.file("usr/local/bin/gosu", Path(_deb_binary("gosu", "/usr/sbin/gosu", tmp)).read_bytes(), 0o755)
        root.file("usr/local/bin/docker-entrypoint.sh", ENTRYPOINT, 0o755)
        root.import_as(GOSU_IMAGE, ["ENV PATH=/usr/local/bin:/bin", "ENV SVC_USER=svc",
                                    'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["sleep", "3600"]'])
    if not _current(VOLUME_IMAGE):
        root = _Root(busybox)
        root.accounts(("zoo", 999, "/var/lib/zoo"))
        root.dir("var/lib/zoo", 0o700, 999, 999)
        root.import_as(VOLUME_IMAGE, ["ENV PATH=/bin", "USER 999", "VOLUME /var/lib/zoo", 'CMD ["sleep", "3600"]'])


@pytest.fixture(scope="module")
def built() -> None:
    ok, reason = images.engine_available()
    if not ok:
        _require(f"no Docker engine reachable: {reason}")
    if all(_current(name) for name in (USER_IMAGE, GOSU_IMAGE, VOLUME_IMAGE)):
        return
    try:
        with tempfile.TemporaryDirectory(prefix="harden-facts-") as tmp:
            _build(tmp)
    except Exception as exc:  # apt-get download needs a Debian mirror
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            raise
        pytest.skip(f"cannot build the facts test images: {exc}")


def _image_id(name: str) -> str:
    return _docker("image", "inspect", "--format", "{{.Id}}", name, timeout=30).stdout.strip()


def _ran_as(name: str, *command: str) -> str:
    """uid:gid a run of the image shows (through its entrypoint)."""
    done = _docker("run", "--rm", "--network", "none", name, *command, "sh", "-c", 'echo "$(id -u):$(id -g)"', timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _no_leftovers() -> None:
    assert _docker("ps", "-a", "-q", "--filter", "label=org.harden.facts=1", timeout=30).stdout.strip() == ""


def _forbid_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)


# ------------------------------------------------------------------------------ engine


def test_user_image(built: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = lookup(USER_IMAGE, registry=False, cache_dir=tmp_path)
    facts = found.facts
    assert facts is not None, found.reason
    assert (facts.source, facts.digest, facts.user, facts.workdir) == ("engine", _image_id(USER_IMAGE), "app", "/home/app")
    assert facts.files_read and facts.passwd["app"] == (1000, 1000, "/home/app") and facts.groups["app"] == 1000
    assert facts.numeric_user() == "1000:1000" == _ran_as(USER_IMAGE) and facts.runtime_user() == "1000:1000"
    assert facts.home() == "/home/app" and facts.owner("/home/app") == (1000, 1000, 0o750)
    assert not facts.entrypoint_facts.drops and facts.script is None  # CMD sleep: a binary, no script
    _no_leftovers()

    _forbid_io(monkeypatch)
    again = lookup(USER_IMAGE, cache_dir=tmp_path).facts
    assert again == facts and again is not None and again.from_cache


def test_root_then_gosu_drop(built: None, tmp_path: Path) -> None:
    facts = lookup(GOSU_IMAGE, registry=False, cache_dir=tmp_path).facts
    assert facts is not None
    assert facts.runs_as_root and facts.numeric_user() is None
    assert facts.script == "/usr/local/bin/docker-entrypoint.sh"  # found through PATH
    (drop,) = facts.entrypoint_facts.drops
    assert (drop.tool, drop.user, drop.written) == ("gosu", "svc", '"$SVC_USER"')  # resolved from ENV
    assert facts.drop_numeric() == "999:999" == _ran_as(GOSU_IMAGE) and facts.runtime_user() == "999:999"
    assert set(facts.entrypoint_facts.chowns) == {"/run/svc", "/var/lib/svc"}
    assert "/run/svc" in facts.writes_outside_volumes() and facts.entrypoint_facts.checks_root
    assert facts.owner("/var/lib/svc") == (999, 999, 0o750)  # the drop user's home
    _no_leftovers()


def test_volume_owned_by_999(built: None, tmp_path: Path) -> None:
    facts = lookup(VOLUME_IMAGE, registry=False, cache_dir=tmp_path).facts
    assert facts is not None
    assert facts.volumes == ("/var/lib/zoo",) and facts.volume_owners() == {"/var/lib/zoo": (999, 999, 0o700)}
    assert facts.user == "999" and facts.numeric_user() == "999:999" == _ran_as(VOLUME_IMAGE)
    _no_leftovers()


def test_engine_never_pulls(built: None, tmp_path: Path) -> None:
    found = lookup("harden-facts/absent:1", registry=False, cache_dir=tmp_path)
    assert found.facts is None and "no local image" in found.reason


# ---------------------------------------------------------------------------- registry


@pytest.fixture(scope="module")
def local_registry(built: None) -> Iterator[str]:
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.access(binary, os.X_OK):
        _require("no docker-registry binary (Debian package docker-registry; .ci/registry.sh installs it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="harden-facts-registry-") as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {tmp}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
        with open(Path(tmp) / "log", "wb") as log:
            proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            if proc.poll() is not None:
                pytest.fail("docker-registry did not start: " + (Path(tmp) / "log").read_text()[-2000:])
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_registry_path_and_cache(local_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = f"{local_registry}/zoo/app:1"
    assert _docker("tag", GOSU_IMAGE, remote, timeout=30).returncode == 0
    pushed = _docker("push", remote, timeout=300)
    removed = _docker("rmi", remote, timeout=60)
    assert pushed.returncode == 0, pushed.stderr
    assert removed.returncode == 0, removed.stderr

    nothing_read = lookup(remote, cache=False, layer_cap=0, docker_config=tmp_path / "none.json").facts
    assert nothing_read is not None and nothing_read.source == "registry" and not nothing_read.files_read
    assert nothing_read.digest == _image_id(GOSU_IMAGE) and nothing_read.entrypoint == ("docker-entrypoint.sh",)
    assert nothing_read.drop_numeric() is None and "cap" in nothing_read.notes[0]

    found = lookup(remote, cache_dir=tmp_path, docker_config=tmp_path / "none.json")  # engine first: not there
    facts = found.facts
    assert facts is not None, found.reason
    assert (facts.source, facts.digest) == ("registry", _image_id(GOSU_IMAGE))
    assert facts.env["SVC_USER"] == "svc" and facts.files_read and facts.passwd["svc"] == (999, 999, "/var/lib/svc")
    assert facts.script == "/usr/local/bin/docker-entrypoint.sh" and facts.drop_numeric() == "999:999"
    assert facts.owner("/var/lib/svc") == (999, 999, 0o750)
    engine_facts = lookup(GOSU_IMAGE, registry=False, cache=False).facts
    assert engine_facts is not None
    for field in ("platform", "user", "entrypoint", "cmd", "env", "passwd", "groups", "owners", "entrypoint_facts", "script"):
        assert getattr(facts, field) == getattr(engine_facts, field), field

    _forbid_io(monkeypatch)
    again = lookup(remote, cache_dir=tmp_path).facts
    assert again == facts and again is not None and again.from_cache
