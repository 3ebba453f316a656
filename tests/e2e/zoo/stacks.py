"""The zoo stacks: a compose.yaml as a user writes it (no hardening keys) and a job check.

A job check gets the running :class:`run.Project`, returns a one-line summary when the
service did its job and raises :class:`run.JobFailed` with what it saw otherwise.  Every
request is retried while the server is still starting (connection refused, empty answer),
and gives up at once when the service's container is no longer running.
"""

from __future__ import annotations

import errno
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Callable

from . import recipes
from .run import JobFailed, Project

READY_TIMEOUT = 20.0  # seconds a server gets to answer after `up` / `restart`


def _retry(project: Project, service: str, what: str, attempt: Callable[[], str | None]) -> str:
    """Call attempt() until it returns an answer; None or a connection error = not ready yet."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while True:
        try:
            answer = attempt()
            if answer is not None:
                return answer
        except (ConnectionError, socket.timeout, urllib.error.URLError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                raise
            last = f"{type(exc).__name__}: {exc}"
        if not project.running(service):
            st = project.state(service)
            raise JobFailed(f"{what}: {service} is {st.get('Status')} (exit {st.get('ExitCode')}); last try: {last}")
        if time.monotonic() > deadline:
            raise JobFailed(f"{what}: no answer within {READY_TIMEOUT:.0f}s ({last})")
        time.sleep(0.3)


def tcp(project: Project, service: str, port: int, line: str) -> str:
    """Send one line to a line-oriented TCP server (busybox `nc -ll -e`), return its answer."""

    def attempt() -> str | None:
        host, number = project.address(service, port) if port else ("127.0.0.1", 0)
        with socket.create_connection((host, number), timeout=5) as s:
            s.sendall(line.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.decode(errors="replace").strip() or None

    return _retry(project, service, f"TCP {service}:{port} {line.split()[0]}", attempt)


def http(project: Project, service: str, port: int, path: str, body: bytes | None = None,
         host_port: int = 0) -> tuple[int, str]:
    """(status, body) of GET (or POST with `body`); a published port, or 127.0.0.1:host_port."""

    def attempt() -> str | None:
        host, number = ("127.0.0.1", host_port) if host_port else project.address(service, port)
        request = urllib.request.Request(f"http://{host}:{number}{path}", data=body, method="POST" if body else "GET")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return f"{response.status}\n{response.read().decode(errors='replace')}"
        except urllib.error.HTTPError as exc:
            return f"{exc.code}\n{exc.read().decode(errors='replace')}"

    status, _, text = _retry(project, service, f"HTTP {'POST' if body else 'GET'} {path}", attempt).partition("\n")
    return int(status), text


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise JobFailed(message)


def host_port_free(port: int) -> str:
    """"" when nothing on this host listens on `port` (tried on 127.0.0.1 and 0.0.0.0), else why not."""
    for address in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError as exc:
                reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                return f"host port {port} is not free ({address}: {reason})"
    return ""


@dataclass
class ZooStack:
    name: str
    image: str
    behaves_like: str
    compose: str
    job: Callable[[Project], str]
    job_doc: str
    files: dict[str, str] = field(default_factory=dict)  # side files next to compose.yaml
    host_port: int = 0  # a port the stack binds on the host network (checked, serialised)

    def skip_reason(self) -> str:
        return host_port_free(self.host_port) if self.host_port else ""


def _token() -> str:
    return uuid.uuid4().hex[:12]


# --- job checks ----------------------------------------------------------------------------


def _kv_write_restart_read(service: str, port: int) -> Callable[[Project], str]:
    def job(project: Project) -> str:
        value = _token()
        answer = tcp(project, service, port, f"SET row1 {value}")
        _expect(answer == "OK", f"SET row1 answered {answer!r}")
        project.restart(service)
        answer = tcp(project, service, port, "GET row1")
        _expect(answer == value, f"after restart GET row1 answered {answer!r}, wanted {value!r}")
        return f"SET row1, restart, GET row1 = {value}"

    return job


def _http_body(service: str, port: int, path: str, needle: str, host_port: int = 0) -> Callable[[Project], str]:
    def job(project: Project) -> str:
        status, text = http(project, service, port, path, host_port=host_port)
        _expect(status == 200 and needle in text, f"GET {path} -> {status} {text.strip()[:120]!r}")
        return f"GET {path} -> 200 {needle!r}"

    return job


def _s6_job(project: Project) -> str:
    status, text = http(project, "files", 8080, "/hello.txt")
    _expect(status == 200 and "dropped into /config" in text, f"GET /hello.txt -> {status} {text.strip()[:120]!r}")
    return "GET /hello.txt (written into ./config/www) -> 200"


def _uploader_job(project: Project) -> str:
    payload = ("upload " + _token() + "\n").encode() * 64
    status, text = http(project, "uploader", 8080, "/cgi-bin/upload?name=report.txt", body=payload)
    _expect(status == 201, f"POST upload -> {status} {text.strip()[:120]!r}")
    status, text = http(project, "uploader", 8080, "/cgi-bin/download?name=report.txt")
    _expect(status == 200 and text.encode() == payload, f"GET download -> {status} {text.strip()[:80]!r}")
    return f"POST {len(payload)} bytes -> 201, GET them back -> 200"


def _port80_job(project: Project) -> str:
    status, text = http(project, "web", 80, "/")
    _expect(status == 200 and "port80 ok" in text, f"GET / -> {status} {text.strip()[:120]!r}")
    sysctl = project.exec("web", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout.strip()
    return f"GET / on :80 as uid 101 -> 200 (container ip_unprivileged_port_start={sysctl or '?'})"


def _kvcache_job(project: Project) -> str:
    for _ in range(3):
        answer = tcp(project, "cache", 11211, "fill 100")
        _expect(answer == "STORED", f"fill 100 answered {answer!r}")
    stats = dict(line.split()[1:3] for line in tcp(project, "cache", 11211, "stats").splitlines() if line.startswith("STAT"))
    _expect(stats.get("evictions") == "0",
            f"after storing 300 MB: evictions={stats.get('evictions')} (limit_maxbytes={stats.get('limit_maxbytes')})")
    return f"stored 300 MB, evictions 0 (limit_maxbytes={stats.get('limit_maxbytes')})"


# --- the stacks ------------------------------------------------------------------------------

STACKS: list[ZooStack] = [
    ZooStack(
        "gosu-db", recipes.GOSU_DB.tag, "postgres / mysql / mongo: root entrypoint, chown -R, gosu to 999",
        f"""\
services:
  db:
    image: {recipes.GOSU_DB.tag}
    ports:
      - "127.0.0.1::5440"
    volumes:
      - dbdata:/var/lib/db/data

volumes:
  dbdata:
""",
        _kv_write_restart_read("db", 5440),
        "TCP `SET row1 <token>`, `docker compose restart db`, `GET row1` returns the token",
    ),
    ZooStack(
        "suexec-kv", recipes.SUEXEC_KV.tag, "redis:alpine: root entrypoint, chown /data, su-exec to 999:1000",
        f"""\
services:
  kv:
    image: {recipes.SUEXEC_KV.tag}
    command: ["kv-server", "--appendonly", "yes"]
    ports:
      - "127.0.0.1::6390"
    volumes:
      - kvdata:/data

volumes:
  kvdata:
""",
        _kv_write_restart_read("kv", 6390),
        "TCP `SET row1 <token>` (appends to /data/appendonly.aof), restart, `GET row1`",
    ),
    ZooStack(
        "s6-files", recipes.S6_FILES.tag, "linuxserver.io: s6-overlay /init, PUID/PGID usermod, chown /config, drop to abc",
        f"""\
services:
  files:
    image: {recipes.S6_FILES.tag}
    environment:
      - PUID=1000
      - PGID=1000
      - TZ=Etc/UTC
    volumes:
      - ./config:/config
    ports:
      - 127.0.0.1::8080
""",
        _s6_job,
        "GET /hello.txt, a file the user put into ./config/www (bind-mounted /config)",
        files={"config/www/hello.txt": "a file dropped into /config\n"},
    ),
    ZooStack(
        "app-home", recipes.APP_HOME.tag, "node / python apps: USER app 10001, cache in a writable $HOME",
        f"""\
services:
  app:
    image: {recipes.APP_HOME.tag}
    ports:
      - "127.0.0.1::8080"
""",
        _http_body("app", 8080, "/", "app ready"),
        "GET / answers 200 `app ready` (the start script first writes ~/.cache/app)",
    ),
    ZooStack(
        "jvm-heap", recipes.JVM_HEAP.tag, "JVM apps: refuse to start when -Xmx exceeds the cgroup memory limit",
        f"""\
services:
  api:
    image: {recipes.JVM_HEAP.tag}
    environment:
      JAVA_OPTS: "-Xmx512m"
    ports:
      - "127.0.0.1::8080"
""",
        _http_body("api", 8080, "/health", "UP"),
        "GET /health answers 200 `UP`",
    ),
    ZooStack(
        "uploader", recipes.UPLOADER.tag, "apps writing /var/cache/<app> and their working directory per request",
        f"""\
services:
  uploader:
    image: {recipes.UPLOADER.tag}
    ports:
      - "127.0.0.1::8080"
""",
        _uploader_job,
        "POST an upload (stored in /var/cache/uploader, indexed in /srv/uploader/uploads.log), GET it back",
    ),
    ZooStack(
        "volume-data", recipes.VOLUME_DATA.tag, "registry / simple stores: data in the image's VOLUME /data, nothing mounted",
        f"""\
services:
  store:
    image: {recipes.VOLUME_DATA.tag}
    ports:
      - "127.0.0.1::7070"
""",
        _kv_write_restart_read("store", 7070),
        "TCP `SET row1 <token>` into /data, `docker compose restart store`, `GET row1`",
    ),
    ZooStack(
        "port80", recipes.PORT80.tag, "web servers on :80 run with a non-root `user:` in their own network namespace",
        f"""\
services:
  web:
    image: {recipes.PORT80.tag}
    user: "101:101"
    ports:
      - "127.0.0.1::80"
""",
        _port80_job,
        "GET / on container port 80 (server runs as 101) answers 200; records ip_unprivileged_port_start",
    ),
    ZooStack(
        "port80-filecap", recipes.CAPWEB.tag, "caddy: USER non-root, binary with cap_net_bind_service=+ep, :80",
        f"""\
services:
  web:
    image: {recipes.CAPWEB.tag}
    ports:
      - "127.0.0.1::80"
""",
        _http_body("web", 80, "/", "capweb ok"),
        "GET / on container port 80 answers 200 (server binary carries a file capability)",
    ),
    ZooStack(
        "port80-host", recipes.CAPWEB.tag, "caddy with network_mode: host: non-root binds host port 80 by file capability",
        f"""\
services:
  web:
    image: {recipes.CAPWEB.tag}
    network_mode: host
    command: ["/opt/webd/httpd", "-f", "-p", "127.0.0.1:80", "-h", "/srv/www"]
""",
        _http_body("web", 0, "/", "capweb ok", host_port=80),
        "GET http://127.0.0.1:80/ on the host network answers 200",
        host_port=80,
    ),
    ZooStack(
        "kvcache", recipes.KVCACHE_IMAGE.tag, "memcached -m 512: item memory from the command line",
        f"""\
services:
  cache:
    image: {recipes.KVCACHE_IMAGE.tag}
    command: ["kvcache", "-m", "512"]
    ports:
      - "127.0.0.1::11211"
""",
        _kvcache_job,
        "store 3 x 100 MB-worth of items (`fill 100`), `stats` must show evictions 0",
    ),
    ZooStack(
        "tmpl-web", recipes.TMPL_WEB.tag, "nginx with /etc/nginx/templates: envsubst into conf.d at start",
        f"""\
services:
  web:
    image: {recipes.TMPL_WEB.tag}
    environment:
      SITE_NAME: zoo
    ports:
      - "127.0.0.1::8080"
""",
        _http_body("web", 8080, "/", "rendered from the template"),
        "GET / answers 200 from the docroot the rendered conf.d/site.conf names (404 without it)",
    ),
]

BY_NAME = {stack.name: stack for stack in STACKS}
