"""hardener.facts against a real Docker engine and a local registry (Debian's docker-registry).

Five small images are built here (busybox-static and gosu from Debian, a root filesystem
written with tarfile, `docker import`): one with `USER app` and a home it owns, one that
starts as root and drops to `svc` with the real gosu from its entrypoint script, one that
declares a VOLUME owned by uid 999, one whose nginx-like entrypoint runs the scripts of
/docker-entrypoint.d (which write /etc/app/conf.d and /run/app), one whose program carries
the file capability cap_net_bind_service=+ep (set with `setcap` from Debian's libcap2-bin,
carried into the tar as the pax record GNU tar --xattrs writes, as tests/e2e/zoo/build.py
does for zoo/capweb:1). Their facts are read from the engine without running them, then
checked against what a run of each image shows. They are pushed to a registry on
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
from hardener.values import cap_names

pytestmark = pytest.mark.engine

LABEL = "org.harden.e2e.facts"
VERSION = "1"
USER_IMAGE = "harden-facts/user:1"
GOSU_IMAGE = "harden-facts/gosu:1"
VOLUME_IMAGE = "harden-facts/volume:1"
SCRIPTS_IMAGE = "harden-facts/scripts:1"
CAPS_IMAGE = "harden-facts/caps:1"
IMAGES = (USER_IMAGE, GOSU_IMAGE, VOLUME_IMAGE, SCRIPTS_IMAGE, CAPS_IMAGE)

ENTRYPOINT = """#!/bin/sh
set -e
if [ "$(id -u)" = '0' ]; then
	mkdir -p /run/svc
	chown -R "$SVC_USER" /run/svc /var/lib/svc
	exec gosu "$SVC_USER" "$0" "$@"
fi
exec "$@"
"""


# nginx's /docker-entrypoint.sh, shortened: every file of /docker-entrypoint.d, by version
# order; `.envsh` sourced, `.sh` run, anything else ignored.
SCRIPTS_ENTRYPOINT = """#!/bin/sh
set -e
if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read v; then
    find "/docker-entrypoint.d/" -follow -type f -print | sort -V | while read -r f; do
        case "$f" in
            *.envsh) . "$f" ;;
            *.sh)
                if [ -x "$f" ]; then
                    "$f"
                fi
                ;;
            *) echo "$0: ignoring $f" ;;
        esac
    done
fi
exec "$@"
"""

READY_SCRIPT = """#!/bin/sh
mkdir -p /run/app
touch /run/app/ready
"""

ENVSUBST_SCRIPT = """#!/bin/sh
set -e
template_dir=/etc/app/templates
output_dir=/etc/app/conf.d
for template in "$template_dir"/*.template; do
    [ -f "$template" ] || continue
    name=$(basename "$template" .template)
    sed "s|@PORT@|${LISTEN_PORT:-8080}|g" "$template" > "$output_dir/$name"
done
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

    def __init__(self, busybox: str, tar_format: int = tarfile.GNU_FORMAT) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tar_format, encoding="utf-8")
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

    def file(self, name: str, data: bytes | str, mode: int = 0o644, xattrs: dict[str, bytes] | None = None) -> None:
        """A regular file; `xattrs` go in as GNU tar --xattrs writes them (pax records
        SCHILY.xattr.NAME, raw bytes), which needs a PAX_FORMAT tar."""
        payload = data.encode() if isinstance(data, str) else data
        info = tarfile.TarInfo(name)
        info.mode, info.size = mode, len(payload)
        if xattrs:
            assert self.tar.format == tarfile.PAX_FORMAT, "extended attributes need a pax tar"
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()}
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
    if not _current(SCRIPTS_IMAGE):
        root = _Root(busybox)
        root.accounts()
        for name in ("docker-entrypoint.d", "etc/app", "etc/app/templates", "etc/app/conf.d", "usr/local/lib",
                     "usr/local/lib/app"):
            root.dir(name, 0o755)
        root.file("docker-entrypoint.sh", SCRIPTS_ENTRYPOINT, 0o755)
        root.file("usr/local/lib/app/ready.sh", READY_SCRIPT, 0o755)
        root.link("docker-entrypoint.d/10-ready.sh", "/usr/local/lib/app/ready.sh")
        root.file("docker-entrypoint.d/15-port.envsh", 'export LISTEN_PORT="${LISTEN_PORT:-8080}"\n', 0o755)
        root.file("docker-entrypoint.d/20-envsubst.sh", ENVSUBST_SCRIPT, 0o755)
        root.file("docker-entrypoint.d/README", "mkdir -p /not/a/script\n")
        root.file("etc/app/templates/default.conf.template", "listen @PORT@;\n")
        root.import_as(SCRIPTS_IMAGE, ["ENV PATH=/bin", 'ENTRYPOINT ["/docker-entrypoint.sh"]',
                                       'CMD ["cat", "/etc/app/conf.d/default.conf"]'])
    if not _current(CAPS_IMAGE):
        setcap = shutil.which("setcap") or _deb_binary("libcap2-bin", "/sbin/setcap", tmp)
        capped = os.path.join(tmp, "busyboxcap")
        shutil.copyfile(busybox, capped)
        subprocess.run([setcap, "cap_net_bind_service=+ep", capped], check=True, timeout=30)
        blob = os.getxattr(capped, "security.capability")
        root = _Root(busybox, tarfile.PAX_FORMAT)
        root.accounts(("web", 1000, "/tmp"))
        root.dir("usr/local/sbin", 0o755)
        root.file("usr/local/sbin/busyboxcap", Path(capped).read_bytes(), 0o755, {"security.capability": blob})
        root.import_as(CAPS_IMAGE, ["ENV PATH=/usr/local/sbin:/bin", "USER web", 'ENTRYPOINT ["busyboxcap"]',
                                    'CMD ["cat", "/proc/self/status"]'])


@pytest.fixture(scope="module")
def built() -> None:
    ok, reason = images.engine_available()
    if not ok:
        _require(f"no Docker engine reachable: {reason}")
    if all(_current(name) for name in IMAGES):
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


def _tmpfs_for(paths: tuple[str, ...]) -> list[str]:
    """`--tmpfs` arguments for `paths`, those below another left out."""
    tops = [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]
    return [arg for p in sorted(tops) for arg in ("--tmpfs", p)]


def test_scripts_run_from_a_directory(built: None, tmp_path: Path) -> None:
    facts = lookup(SCRIPTS_IMAGE, registry=False, cache_dir=tmp_path).facts
    assert facts is not None and facts.script == "/docker-entrypoint.sh"
    entry = facts.entrypoint_facts
    assert entry.script_globs == ("/docker-entrypoint.d/**/*",)  # find | sort -V | while read -r f
    # the symlinked script followed; the README is no script; the envsubst loop over templates runs none
    assert facts.dir_scripts == ("/docker-entrypoint.d/10-ready.sh", "/docker-entrypoint.d/15-port.envsh",
                                 "/docker-entrypoint.d/20-envsubst.sh")
    assert set(entry.writes) == {"/run/app", "/run/app/ready", "/etc/app/conf.d"}, entry.writes
    outside = facts.writes_outside_volumes()
    assert set(outside) == {"/run/app", "/run/app/ready", "/etc/app/conf.d"}
    _no_leftovers()

    # a run: read-only root, a tmpfs where the facts say it writes: it starts and writes there
    ran = _docker("run", "--rm", "--network", "none", "--read-only", *_tmpfs_for(outside), SCRIPTS_IMAGE, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["/docker-entrypoint.sh: ignoring /docker-entrypoint.d/README", "listen 8080;"]
    without = _docker("run", "--rm", "--network", "none", "--read-only",
                      *_tmpfs_for(tuple(p for p in outside if p != "/etc/app/conf.d")), SCRIPTS_IMAGE, timeout=60)
    assert without.returncode != 0 and "Read-only file system" in without.stderr


def _status_caps(*run: str) -> subprocess.CompletedProcess:
    return _docker("run", "--rm", "--network", "none", *run, CAPS_IMAGE, timeout=60)


def test_program_file_capabilities(built: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = lookup(CAPS_IMAGE, registry=False, cache_dir=tmp_path).facts
    assert facts is not None and facts.files_read
    assert facts.program == "/usr/local/sbin/busyboxcap"  # ENTRYPOINT ["busyboxcap"] through PATH
    assert facts.file_caps == {"/usr/local/sbin/busyboxcap": ("NET_BIND_SERVICE",)}  # cat (cmd[0]) has none
    assert facts.program_caps() == ("NET_BIND_SERVICE",)
    _no_leftovers()

    # a run as uid 1000: the capability comes from the file (docker import kept the xattr)
    ran = _status_caps()
    assert ran.returncode == 0, ran.stderr
    status = dict(line.split(":\t", 1) for line in ran.stdout.splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == "1000"
    assert cap_names(int(status["CapPrm"], 16)) == "NET_BIND_SERVICE" == cap_names(int(status["CapEff"], 16))
    # without it in the bounding set the kernel refuses to start the +ep program
    refused = _status_caps("--cap-drop", "ALL")
    assert refused.returncode != 0 and "operation not permitted" in refused.stderr.lower()
    assert _status_caps("--cap-drop", "ALL", "--cap-add", *facts.program_caps()).returncode == 0

    _forbid_io(monkeypatch)
    again = lookup(CAPS_IMAGE, cache_dir=tmp_path).facts
    assert again == facts and again is not None and again.from_cache and again.program_caps() == ("NET_BIND_SERVICE",)


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


def test_registry_scripts_and_caps(local_registry: str, tmp_path: Path) -> None:
    """The registry path reads the same: the directory's scripts (read again from their
    layer once the entrypoint names them) and the program's file capabilities."""
    for image, fields in ((SCRIPTS_IMAGE, ("script", "dir_scripts", "entrypoint_facts")),
                          (CAPS_IMAGE, ("program", "file_caps"))):
        remote = f"{local_registry}/zoo/{image.split('/')[1].replace(':', '-')}:1"
        assert _docker("tag", image, remote, timeout=30).returncode == 0
        pushed = _docker("push", remote, timeout=300)
        removed = _docker("rmi", remote, timeout=60)
        assert pushed.returncode == 0, pushed.stderr
        assert removed.returncode == 0, removed.stderr
        found = lookup(remote, cache=False, docker_config=tmp_path / "none.json")
        facts = found.facts
        assert facts is not None and facts.source == "registry" and facts.files_read, found.reason
        engine_facts = lookup(image, registry=False, cache=False).facts
        assert engine_facts is not None
        for field in fields:
            assert getattr(facts, field) == getattr(engine_facts, field), field
        assert not facts.notes, facts.notes
    assert facts.program_caps() == ("NET_BIND_SERVICE",)
