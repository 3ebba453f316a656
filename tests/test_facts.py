"""hardener.facts without an engine: entrypoint analysis, accounts, the layer tree, the
cache, references, and the registry client against a registry served in-process."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import tarfile
import threading
import time
import traceback
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hardener.facts import ImageFacts, analyse_argv, analyse_script, lookup, resolve_reference, script_target
from hardener.facts import registry as registry_mod
from hardener.facts.accounts import home, parse_group, parse_passwd, resolve
from hardener.facts.auth import load_credentials, may_send_secret, parse_challenge, registry_key
from hardener.facts.cache import FactsCache
from hardener.facts.layers import LayerTree
from hardener.facts.model import Drop, EntrypointFacts
from hardener.facts.endpoint import endpoint
from hardener.facts.registry import choose
from hardener.facts.shell import commands

# =========================================================================== entrypoints

POSTGRES_LIKE = r"""#!/usr/bin/env bash
set -Eeo pipefail

# usage: file_env VAR [DEFAULT]
file_env() {
	local var="$1"
	local fileVar="${var}_FILE"
	local def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
		exit 1
	fi
}

create_db_dirs() {
	local user; user="$(id -u)"
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ "$user" = '0' ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

main() {
	if [ "$1" = 'postgres' ]; then
		create_db_dirs
		if [ "$(id -u)" = '0' ]; then
			# restart this script as the postgres user
			exec gosu postgres "$BASH_SOURCE" "$@"
		fi
		cat > "$PGDATA/pg_hba.conf" <<-'EOF'
			host all all all scram-sha-256
		EOF
	fi
	exec "$@"
}

main "$@"
"""

REDIS_LIKE = r"""#!/bin/sh
set -e

# first arg is `-f` or `--some-option`, or a .conf file
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' -a "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi

exec "$@"
"""

SU_EXEC_ALPINE = r"""#!/bin/sh
set -eu
if [ "$(id -u)" -eq 0 ]; then
  chown -R app:app /srv/data \
        /srv/cache
  exec su-exec app:app "$0" "$@"
fi
exec "$@"
"""

S6_SERVICE = r"""#!/usr/bin/with-contenv bash
# shellcheck shell=bash
exec \
    s6-setuidgid abc /app/server --config /config
"""

LINUXSERVER_INIT = r"""#!/usr/bin/with-contenv bash
PUID=${PUID:-911}
PGID=${PGID:-911}

groupmod -o -g "$PGID" abc
usermod -o -u "$PUID" abc

echo "
User uid:    $(id -u abc)
User gid:    $(id -g abc)
"
mkdir -p /config/{logs,cache}
lsiown abc:abc /app /config /defaults
"""

NGINX_LIKE = r"""#!/bin/sh
set -e

ME=$(basename "$0")

auto_envsubst() {
  local template_dir="${TEMPLATE_DIR:-/etc/nginx/templates}"
  local suffix="${TEMPLATE_SUFFIX:-.template}"
  local output_dir="${OUTPUT_DIR:-/etc/nginx/conf.d}"

  local template defined_envs relative_path output_path subdir
  defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print name } }" < /dev/null ))
  [ -d "$template_dir" ] || return 0
  if [ ! -w "$output_dir" ]; then
    echo >&2 "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
    return 0
  fi
  find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative_path="${template#"$template_dir/"}"
    output_path="$output_dir/${relative_path%"$suffix"}"
    subdir=$(dirname "$relative_path")
    mkdir -p "$output_dir/$subdir"
    echo >&3 "$ME: Running envsubst on $template to $output_path"
    envsubst "$defined_envs" < "$template" > "$output_path"
  done
}

auto_envsubst
exec "$@"
"""

NO_DROP = r"""#!/bin/bash
set -eo pipefail
shopt -s nullglob

# if command starts with an option, prepend the server
if [ "${1:0:1}" = '-' ]; then
	set -- appserver "$@"
fi
for f in /docker-entrypoint-init.d/*; do
	case "$f" in
		*.sh) echo "$0: running $f"; . "$f" ;;
		*)    echo "$0: ignoring $f" ;;
	esac
done
exec "$@" 2>/dev/null
"""

SETPRIV = r"""#!/bin/bash
set -euo pipefail
if [[ "$1" == rabbitmq* ]] && [ "$(id -u)" = '0' ]; then
	find /var/lib/rabbitmq \! -user rabbitmq -exec chown rabbitmq '{}' +
	exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$BASH_SOURCE" "$@"
fi
exec "$@"
"""

CHROOT = r"""#!/bin/sh
mkdir -p /run/httpd && chown 1001:1001 /run/httpd
exec chroot --userspec=1001:1001 / /usr/sbin/httpd -DFOREGROUND "$@"
"""

SU_C = r"""#!/bin/sh
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    su postgres -c "initdb -D '$PGDATA'"
fi
exec su - postgres -s /bin/sh -c "exec postgres -D '$PGDATA'"
"""

CASES: list[tuple[str, str, dict[str, str], str | None, dict[str, Any]]] = [
    ("postgres-gosu", POSTGRES_LIKE, {"PGDATA": "/var/lib/postgresql/data"}, None, {
        "drops": [("gosu", "postgres")], "checks_root": True,
        "chowns": ["/var/lib/postgresql/data", "/var/run/postgresql"],
        "writes": ["/var/lib/postgresql/data", "/var/run/postgresql", "/var/lib/postgresql/data/pg_hba.conf"]}),
    ("redis-find-chown", REDIS_LIKE, {}, "/data", {
        "drops": [("gosu", "redis")], "chowns": ["/data"], "writes": [], "checks_root": True}),
    ("su-exec-alpine", SU_EXEC_ALPINE, {}, None, {
        "drops": [("su-exec", "app:app")], "chowns": ["/srv/data", "/srv/cache"]}),
    ("s6-service", S6_SERVICE, {}, None, {"drops": [("s6-setuidgid", "abc")], "s6": True}),
    ("linuxserver-puid", LINUXSERVER_INIT, {}, None, {
        "drops": [], "puid": True, "s6": True, "writes": ["/etc/group", "/etc/passwd", "/config"]}),
    ("nginx-envsubst", NGINX_LIKE, {}, None, {"drops": [], "writes": ["/etc/nginx/conf.d"], "puid": False}),
    ("no-drop", NO_DROP, {}, None, {"drops": [], "writes": [], "chowns": [], "checks_root": False}),
    ("setpriv", SETPRIV, {}, None, {"drops": [("setpriv", "rabbitmq:rabbitmq")], "chowns": ["/var/lib/rabbitmq"]}),
    ("chroot-userspec", CHROOT, {}, None, {
        "drops": [("chroot", "1001:1001")], "chowns": ["/run/httpd"], "writes": ["/run/httpd"]}),
    ("su-c", SU_C, {"PGDATA": "/var/lib/pgsql/data"}, None, {"drops": [("su", "postgres"), ("su", "postgres")]}),
    ("user-from-env", 'exec gosu "$RUN_USER" solr-foreground "$@"\n', {"RUN_USER": "solr"}, None,
     {"drops": [("gosu", "solr")]}),
    ("user-from-script-defaults", ': "${APP_UID:=1000}"\nAPP_GID=${APP_GID:-1000}\nexec su-exec "$APP_UID:$APP_GID" app\n',
     {}, None, {"drops": [("su-exec", "1000:1000")]}),
    ("env-beats-default", 'exec gosu "${APP_USER:-app}" run\n', {"APP_USER": "svc"}, None, {"drops": [("gosu", "svc")]}),
    ("unknown-user", 'exec gosu "$TARGET" run\n', {}, None, {"drops": [("gosu", None)]}),
    ("set-dash-dash", 'if [ "$1" = mongod ]; then\n  set -- gosu mongodb "$@"\nfi\nexec "$@"\n', {}, None,
     {"drops": [("gosu", "mongodb")]}),
    ("runuser", 'exec runuser -u www-data -- php-fpm "$@"\n', {}, None, {"drops": [("runuser", "www-data")]}),
    ("drop-to-root-is-none", 'exec gosu root "$@"\nexec su-exec 0:0 x\n', {}, None, {"drops": []}),
    ("heredoc-and-comments", '# exec gosu nobody "$@"\ncat > /etc/motd <<EOF\nexec gosu nobody x\nEOF\necho hi >&2\n', {},
     None, {"drops": [], "writes": ["/etc/motd"]}),
    ("sed-in-place-ln-cd", 'sed -i "s/^bind .*/bind 0.0.0.0/" /etc/app/app.conf\nln -sf /dev/stdout /var/log/app/access.log\n'
     'cd /var/lib/app && mkdir -p cache logs\ntouch /tmp/ready\n', {}, None,
     {"writes": ["/etc/app/app.conf", "/var/log/app/access.log", "/var/lib/app/cache", "/var/lib/app/logs", "/tmp/ready"]}),
    ("redirections", 'echo x > /dev/null\necho y 2>/dev/null >>"$LOG"\nenvsubst < /t > /etc/app/conf.json\n',
     {"LOG": "/var/log/app.log"}, None, {"writes": ["/var/log/app.log", "/etc/app/conf.json"]}),
]


@pytest.mark.parametrize("name,script,env,workdir,expect", CASES, ids=[c[0] for c in CASES])
def test_entrypoint_analysis(name: str, script: str, env: dict[str, str], workdir: str | None, expect: dict[str, Any]) -> None:
    facts = analyse_script(script, env, workdir)
    if "drops" in expect:
        assert [(d.tool, d.spec) for d in facts.drops] == expect["drops"]
    for key, attr in (("chowns", "chowns"), ("writes", "writes")):
        if key in expect:
            if expect[key]:
                assert set(expect[key]) <= set(getattr(facts, attr)), getattr(facts, attr)
            else:
                assert getattr(facts, attr) == ()
    for key, attr in (("s6", "s6_overlay"), ("puid", "puid_pgid"), ("checks_root", "checks_root")):
        if key in expect:
            assert getattr(facts, attr) is expect[key]


def test_drop_records_where_and_as_written() -> None:
    facts = analyse_script(POSTGRES_LIKE, {"PGDATA": "/d"})
    (drop,) = facts.drops
    assert drop.line == POSTGRES_LIKE.splitlines().index('\t\t\texec gosu postgres "$BASH_SOURCE" "$@"') + 1
    assert (drop.written, facts.drop_user) == ("postgres", "postgres")
    unknown = analyse_script('exec gosu "$TARGET" run\n').drops[0]
    assert (unknown.user, unknown.written, unknown.spec) == (None, '"$TARGET"', None)


def test_unknown_paths_are_kept_as_written() -> None:
    facts = analyse_script('chown app "$DATA_DIR"\nmkdir -p relative/dir\n')
    assert facts.chowns == () and facts.writes == ()
    assert set(facts.unresolved) == {'"$DATA_DIR"', "relative/dir"}


def test_exec_form_argv() -> None:
    assert analyse_argv(["/init"], None).s6_overlay
    assert [(d.tool, d.spec) for d in analyse_argv(["tini", "--", "gosu", "app", "server"], None).drops] == [("gosu", "app")]
    inline = analyse_argv(["/bin/sh", "-c", "mkdir -p /run/app && exec su-exec 1000:1000 server"], None)
    assert [(d.tool, d.spec) for d in inline.drops] == [("su-exec", "1000:1000")] and inline.writes == ("/run/app",)
    assert analyse_argv(["gosu", "$USER", "x"], None, {"USER": "app"}).drops[0].user == "$USER"  # exec form: no shell


@pytest.mark.parametrize("entrypoint,cmd,target", [
    (["docker-entrypoint.sh"], ["postgres"], ("path", "docker-entrypoint.sh")),
    (None, ["/bin/bash", "-e", "/start.sh"], ("path", "/start.sh")),
    (["/sbin/tini", "-g", "--", "/entry.sh"], ["x"], ("path", "/entry.sh")),
    (["dumb-init", "--rewrite", "15:2", "/run.sh"], None, ("path", "/run.sh")),
    (["sh", "-c", "exec app"], None, ("inline", "exec app")),
    (["/init"], None, None),
    (None, None, None),
])
def test_script_target(entrypoint, cmd, target) -> None:
    assert script_target(entrypoint, cmd) == target


def test_shell_reader_lines_continuations_heredocs() -> None:
    text = 'a 1 \\\n  2\ncat <<-X > /f\n\tbody; gosu x y\n\tX\nb "multi\nline" 2>/dev/null; c\n'
    got = [(c.words, c.redirects, c.line) for c in commands(text)]
    assert got == [(["a", "1", "2"], [], 1), (["cat"], [(">", "/f")], 3),
                   (["b", '"multi\nline"'], [(">", "/dev/null")], 6), (["c"], [], 7)]


# ============================================================================== accounts

PASSWD = """root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
postgres:x:999:999::/var/lib/postgresql:/bin/bash
grafana:x:472:0::/usr/share/grafana:/sbin/nologin
broken line
bad:x:notanumber:1::/:/bin/sh
postgres:x:12:12:duplicate:/nowhere:/bin/sh
+nis::::::
"""
GROUP = "root:x:0:\npostgres:x:999:\nstaff:x:50:alice,bob\nbroken\n"


def test_parse_passwd_and_group() -> None:
    passwd = parse_passwd(PASSWD)
    assert passwd == {"root": (0, 0, "/root"), "daemon": (1, 1, "/usr/sbin"),
                      "postgres": (999, 999, "/var/lib/postgresql"), "grafana": (472, 0, "/usr/share/grafana")}
    assert parse_group(GROUP.encode()) == {"root": 0, "postgres": 999, "staff": 50}
    assert parse_passwd(None) == {} and parse_group("") == {}


@pytest.mark.parametrize("user,expected", [
    ("postgres", (999, 999)), ("grafana", (472, 0)), ("999", (999, 999)), ("1234", (1234, 0)),
    ("1234:1234", (1234, 1234)), ("postgres:staff", (999, 50)), ("1000:staff", (1000, 50)), ("", (0, 0)),
    ("root", (0, 0)), ("nobody", None), ("postgres:nogroup", None), (":50", None),
])
def test_resolve_like_the_engine(user: str, expected) -> None:
    assert resolve(user, parse_passwd(PASSWD), parse_group(GROUP)) == expected


def test_resolve_without_files_only_numbers() -> None:
    assert resolve("1000:1000", None, None) == (1000, 1000)
    assert resolve("1000", None, None) is None  # the gid comes from passwd, which was not read
    assert resolve("app", None, None) is None
    assert home("postgres", parse_passwd(PASSWD)) == "/var/lib/postgresql" and home("999", parse_passwd(PASSWD))
    assert home("x", None) is None


# ================================================================================ model


def _facts(**changes: Any) -> ImageFacts:
    base = ImageFacts(reference="app:1", digest="sha256:" + "a" * 64, source="engine", resolved_reference="app:1",
                      files_read=True, passwd=parse_passwd(PASSWD), groups=parse_group(GROUP))
    return replace(base, **changes)


@pytest.mark.parametrize("user,numeric", [
    ("", None), ("root", None), ("0", None), ("0:0", None), ("postgres", "999:999"), ("1000", "1000:0"),
    ("999", "999:999"), ("1000:1000", "1000:1000"), ("nobody", None), ("grafana", "472:0"),
])
def test_numeric_user(user: str, numeric: str | None) -> None:
    assert _facts(user=user).numeric_user() == numeric


def test_runtime_user_follows_the_drop() -> None:
    entry = EntrypointFacts(drops=(Drop("gosu", "postgres", None, "postgres", 3),))
    facts = _facts(entrypoint_facts=entry)
    assert facts.runs_as_root and facts.drop_user == "postgres" and facts.runtime_user() == "999:999"
    assert _facts(user="grafana", entrypoint_facts=entry).runtime_user() == "472:0"
    assert _facts().runtime_user() is None
    assert _facts(user="1000", files_read=False).numeric_user() is None


def test_paths_and_conventions() -> None:
    entry = EntrypointFacts(writes=("/var/lib/pg/data/x.conf", "/run/pg", "relative"), chowns=("/var/lib/pg/data",),
                            puid_pgid=False)
    facts = _facts(volumes=("/var/lib/pg/data",), entrypoint_facts=entry, owners={"/var/lib/pg/data": (999, 999, 0o700)},
                   env={"S6_VERBOSITY": "1"})
    assert facts.writes_outside_volumes() == ("/run/pg",)
    assert facts.volume_owners() == {"/var/lib/pg/data": (999, 999, 0o700)} and facts.owner("/var/lib/pg/data/") == (999, 999, 448)
    assert facts.uses_s6_overlay and not facts.uses_puid_pgid and _facts(env={"PUID": "1"}).uses_puid_pgid


def test_to_dict_round_trip_and_pickle() -> None:
    entry = analyse_script(POSTGRES_LIKE, {"PGDATA": "/d"})
    facts = _facts(entrypoint=("x.sh",), env={"A": "1"}, owners={"/d": (1, 2, 0o755)}, entrypoint_facts=entry, notes=("n",))
    again = ImageFacts.from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again == facts and hash(again) == hash(facts)
    assert pickle.loads(pickle.dumps(facts)) == facts
    with pytest.raises((KeyError, ValueError, TypeError)):
        ImageFacts.from_dict({"digest": "x"})


# ============================================================================ references


@pytest.mark.parametrize("image,resolved,why", [
    ("postgres:16", "postgres:16", ""),
    ("${DB_IMAGE:-postgres}:${DB_TAG:-16}", "postgres:16", ""),
    ("redis:${TAG-7}", "redis:7", ""),
    ("${IMAGE}", None, "${IMAGE}"),
    ("app:$TAG", None, "$TAG"),
    ("app:${TAG:?required}", None, "${TAG:?required}"),
    ("${REG:-}/app", None, "not an image reference"),
    ("", None, "no image"),
])
def test_resolve_reference(image: str, resolved: str | None, why: str) -> None:
    got, reason = resolve_reference(image)
    assert got == resolved and why in reason


@pytest.mark.parametrize("image,host,repo,ref,scheme", [
    ("redis", "registry-1.docker.io", "library/redis", "latest", "https"),
    ("docker.io/library/postgres:16", "registry-1.docker.io", "library/postgres", "16", "https"),
    ("grafana/grafana:11", "registry-1.docker.io", "grafana/grafana", "11", "https"),
    ("ghcr.io/Org/App:1.0", "ghcr.io", "org/app", "1.0", "https"),
    ("localhost:5000/app@sha256:" + "b" * 64, "localhost:5000", "app", "sha256:" + "b" * 64, "http"),
    ("127.0.0.1:5000/library/app:2", "127.0.0.1:5000", "library/app", "2", "http"),
    ("[::1]:5000/app:2", "[::1]:5000", "app", "2", "http"),
    ("mirror.gcr.io/library/redis:7", "mirror.gcr.io", "library/redis", "7", "https"),
])
def test_endpoint(image: str, host: str, repo: str, ref: str, scheme: str) -> None:
    where = endpoint(image)
    assert where is not None and (where.host, where.repository, where.reference, where.scheme) == (host, repo, ref, scheme)


def test_choose_platform() -> None:
    index = [{"digest": "a", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
             {"digest": "b", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
             {"digest": "c", "platform": {"os": "linux", "architecture": "amd64"}},
             {"digest": "d", "platform": {"os": "unknown", "architecture": "unknown"}}]
    assert choose(index, "arm64", "v8")["digest"] == "b"
    assert choose(index, "amd64")["digest"] == "c"
    assert choose(index, "s390x")["digest"] == "c"  # not there: linux/amd64
    assert choose(index[:2] + index[3:], "s390x") is None


# ================================================================================= auth


def test_credentials_never_show(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hub-secret").decode()},
        "ghcr.io": {"username": "gh", "password": "gh-secret"},
        "broken.example": {"auth": "!!!"}}}))
    hub = load_credentials("registry-1.docker.io", config)
    assert hub is not None and hub.authorization() == "Basic " + base64.b64encode(b"hubuser:hub-secret").decode()
    assert "secret" not in repr(hub) and "hubuser" not in str(hub) and "secret" not in f"{[hub]}"
    with pytest.raises(TypeError):
        pickle.dumps(hub)
    with pytest.raises(AttributeError):
        hub._header = "x"  # type: ignore[attr-defined]
    assert load_credentials("ghcr.io", config) is not None
    assert load_credentials("broken.example", config) is None and load_credentials("quay.io", config) is None
    assert load_credentials("ghcr.io", tmp_path / "missing.json") is None
    assert registry_key("https://index.docker.io/v1/") == registry_key("docker.io") == "docker.io"


def test_challenge_and_where_secrets_go() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"')
    assert scheme == "bearer" and params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull"}
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert may_send_secret("https://x.example/") and may_send_secret("http://127.0.0.1:5000/v2/")
    assert not may_send_secret("http://x.example/") and may_send_secret("http://localhost/")


# ============================================================================ layer tree


def _tar(entries: list[tuple], *, compress: bool = True) -> bytes:
    """entries: (name, kind, uid, gid, mode, data-or-link)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, uid, gid, mode, extra in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mode = uid, gid, mode
            payload = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, extra
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, extra
            else:
                payload = extra.encode() if isinstance(extra, str) else extra
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


LAYER1 = [
    ("etc", "dir", 0, 0, 0o755, None),
    ("etc/passwd", "file", 0, 0, 0o644, "root:x:0:0:root:/root:/bin/sh\nold:x:500:500::/home/old:/bin/sh\n"),
    ("etc/group", "file", 0, 0, 0o644, "root:x:0:\n"),
    ("usr/local/bin/entry.sh", "file", 0, 0, 0o755,
     '#!/bin/sh\nset -e\nif [ "$(id -u)" = 0 ]; then\n  chown -R svc /var/lib/svc\n  exec gosu svc "$0" "$@"\nfi\nexec "$@"\n'),
    ("var/lib/svc", "dir", 999, 999, 0o750, None),
    ("opt/gone.txt", "file", 0, 0, 0o644, "x"),
    ("opt/keep", "dir", 0, 0, 0o755, None),
    ("opt/keep/a.txt", "file", 0, 0, 0o644, "a"),
    ("run", "dir", 0, 0, 0o755, None),
    ("var/run", "sym", 0, 0, 0o777, "../run"),
]
LAYER2 = [
    ("etc/passwd", "file", 0, 0, 0o644, "root:x:0:0:root:/root:/bin/sh\nsvc:x:999:999::/var/lib/svc:/bin/sh\n"),
    ("etc/group", "file", 0, 0, 0o644, "root:x:0:\nsvc:x:999:\n"),
    ("opt/.wh.gone.txt", "file", 0, 0, 0o644, ""),
    ("opt/keep/.wh..wh..opq", "file", 0, 0, 0o644, ""),
    ("opt/keep/b.txt", "file", 0, 0, 0o644, "b"),
    ("run/svc", "dir", 999, 999, 0o700, None),
    ("etc/passwd-link", "hard", 0, 0, 0o644, "etc/passwd"),
]


def test_layer_tree_whiteouts_links() -> None:
    tree = LayerTree(keep=lambda path, size: path.startswith("/etc/"))
    for layer in (LAYER1, LAYER2):
        with tarfile.open(fileobj=io.BytesIO(_tar(layer)), mode="r:gz") as tar:
            tree.add_layer(tar)
    assert b"svc:x:999" in tree.read("/etc/passwd", 1 << 20)
    assert tree.read("/etc/passwd-link", 1 << 20) == tree.read("/etc/passwd", 1 << 20)
    assert tree.read("/etc/passwd", 10) is None  # over the limit
    assert tree.stat("/opt/gone.txt") is None and tree.stat("/opt/keep/a.txt") is None
    assert tree.stat("/opt/keep/b.txt") == (0, 0, 0o644)
    assert tree.stat("/var/run/svc") == (999, 999, 0o700)  # through the symlinked parent
    assert tree.stat("/var/lib/svc") == (999, 999, 0o750)
    assert tree.read("/usr/local/bin/entry.sh", 1 << 20) is None  # not kept


# ================================================================================= cache


def test_cache_hit_corrupt_expiry_prune(tmp_path: Path) -> None:
    now = [1000.0]
    cache = FactsCache(tmp_path, ref_ttl=60, max_entries=3, clock=lambda: now[0])
    facts = _facts(entrypoint_facts=analyse_script(REDIS_LIKE, {}, "/data"))
    cache.put(facts)
    cache.remember("app:1", facts.digest)
    assert cache.get(facts.digest) == facts and cache.digest_for("app:1") == facts.digest
    now[0] += 61
    assert cache.digest_for("app:1") is None  # tags move: the map forgets
    assert cache.get(facts.digest) == facts  # a digest does not
    cache.remember("app@sha256:" + "c" * 64, facts.digest)
    now[0] += 10**6
    assert cache.digest_for("app@sha256:" + "c" * 64) == facts.digest  # pinned: for ever

    path = tmp_path / f"sha256-{'a' * 64}.json"
    for garbage in ("{not json", json.dumps({"version": 1, "facts": {"digest": 1}}), json.dumps([1])):
        path.write_text(garbage)
        assert cache.get(facts.digest) is None and not path.exists()
        cache.put(facts)
        assert cache.get(facts.digest) == facts
    (tmp_path / "refs.json").write_text("[]")
    assert cache.digest_for("app:1") is None
    cache.remember("app:1", facts.digest)
    assert cache.digest_for("app:1") == facts.digest

    os.utime(path, (5, 5))
    digests = ["sha256:" + c * 64 for c in "bcde"]
    for i, digest in enumerate(digests):
        cache.put(replace(facts, digest=digest))
        os.utime(tmp_path / f"sha256-{digest[7:]}.json", (i + 10, i + 10))
    cache.put(replace(facts, digest="sha256:" + "f" * 64))
    kept = sorted(p.name[7:8] for p in tmp_path.glob("sha256-*.json"))
    assert kept == ["d", "e", "f"]  # oldest beyond 3 pruned
    assert cache.get("../../etc/passwd") is None and not list(tmp_path.glob(".tmp-*"))


def test_cache_unwritable_is_no_cache(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    cache = FactsCache(blocked / "facts")
    cache.put(_facts())
    cache.remember("a:1", "sha256:" + "a" * 64)
    assert cache.get("sha256:" + "a" * 64) is None


def test_cache_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert FactsCache().root == tmp_path / "harden" / "facts"


# ======================================================================== fake registry

SECRET = "s3cret-pass-Zq9"
TOKEN = "tok-Y7v-not-for-logs"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """A registry with one repository `zoo/app`: tag `1` is an index of an amd64 and an
    arm64 image; bearer tokens from /token (Basic credentials required when `users`)."""

    def __init__(self, *, require_login: bool = False) -> None:
        self.require_login = require_login
        self.seen: list[tuple[str, str | None]] = []
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.fail_blobs = False
        self.pad_layers = False
        layers = [_tar(LAYER1), _tar(LAYER2)]
        for layer in layers:
            self.blobs[_digest(layer)] = layer
        images = {}
        for arch, user in (("amd64", ""), ("arm64", "armuser")):
            config = json.dumps({"architecture": arch, "os": "linux", "config": {
                "User": user, "Entrypoint": ["entry.sh"], "Cmd": ["serve"], "Env": ["PATH=/usr/local/bin:/bin", "A=b=c"],
                "Volumes": {"/var/lib/svc": {}}, "WorkingDir": "/var/lib/svc", "ExposedPorts": {"8080/tcp": {}},
                "Labels": {"org.example": "yes"}}}).encode()
            self.blobs[_digest(config)] = config
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                           "digest": _digest(config)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(b),
                            "digest": _digest(b)} for b in layers]}).encode()
            self.manifests[_digest(manifest)] = ("application/vnd.docker.distribution.manifest.v2+json", manifest)
            images[arch] = (_digest(manifest), _digest(config))
        self.config_digest = {arch: cfg for arch, (_, cfg) in images.items()}
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": images["arm64"][0],
             "size": 1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": images["amd64"][0],
             "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(b"att"), "size": 1,
             "platform": {"os": "unknown", "architecture": "unknown"}}]}).encode()
        self.manifests["1"] = ("application/vnd.oci.image.index.v1+json", index)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", media: str = "application/json", headers=()) -> None:
                self.send_response(code)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization")
                registry.seen.append((self.path, auth))
                if self.path.startswith("/token"):
                    expected = "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
                    if registry.require_login and auth != expected:
                        return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return self._send(200, json.dumps({"token": TOKEN}).encode())
                if self.path.startswith("/cdn/"):
                    blob = registry.blobs[self.path[5:]]
                    if registry.pad_layers and blob.startswith(b"\x1f\x8b"):
                        blob += b"\0" * 4096  # more than the manifest says
                    return self._send(200, blob, "application/octet-stream")
                if auth != "Bearer " + TOKEN:
                    challenge = (f'Bearer realm="http://127.0.0.1:{registry.port}/token",service="fake",'
                                 'scope="repository:zoo/app:pull"')
                    return self._send(401, b"{}", headers=[("WWW-Authenticate", challenge)])
                if self.path.startswith("/v2/zoo/app/manifests/"):
                    ref = self.path.rsplit("/", 1)[1]
                    if ref not in registry.manifests:
                        return self._send(404, b"{}")
                    media, body = registry.manifests[ref]
                    return self._send(200, body, media)
                if self.path.startswith("/v2/zoo/app/blobs/"):
                    digest = self.path.rsplit("/", 1)[1]
                    if registry.fail_blobs or digest not in registry.blobs:
                        return self._send(500, b"{}")
                    return self._send(307, b"", headers=[("Location", f"/cdn/{digest}")])
                return self._send(404, b"{}")

        return Handler

    def __enter__(self) -> "FakeRegistry":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def image(self) -> str:
        return f"127.0.0.1:{self.port}/zoo/app:1"


@pytest.fixture
def amd64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "machine_platform", lambda: ("amd64", ""))


def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no subprocess expected")

    import subprocess

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_registry_token_flow_index_and_files(tmp_path: Path, amd64: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_engine(monkeypatch)
    with FakeRegistry() as reg:
        found = lookup(reg.image, engine=False, cache_dir=tmp_path, docker_config=tmp_path / "none.json")
        facts = found.facts
        assert facts is not None, found.reason
        assert (facts.source, facts.digest, facts.platform) == ("registry", reg.config_digest["amd64"], "linux/amd64")
        assert facts.user == "" and facts.entrypoint == ("entry.sh",) and facts.env == {"PATH": "/usr/local/bin:/bin", "A": "b=c"}
        assert facts.volumes == ("/var/lib/svc",) and facts.exposed_ports == ("8080/tcp",) and facts.labels == {"org.example": "yes"}
        assert facts.files_read and facts.passwd["svc"] == (999, 999, "/var/lib/svc") and "old" not in facts.passwd
        assert facts.script == "/usr/local/bin/entry.sh" and facts.drop_user == "svc" and facts.runtime_user() == "999:999"
        assert facts.owners["/var/lib/svc"] == (999, 999, 0o750) and facts.entrypoint_facts.chowns == ("/var/lib/svc",)
        paths = [path for path, _ in reg.seen]
        assert paths[0] == "/v2/zoo/app/manifests/1" and paths[1].startswith("/token?")  # 401, then a token
        assert "scope=repository%3Azoo%2Fapp%3Apull" in paths[1] and "service=fake" in paths[1]
        assert all(auth is None for path, auth in reg.seen if path.startswith("/cdn/"))  # not along redirects
        assert all(auth is None for path, auth in reg.seen if path.startswith("/token"))  # anonymous


def test_registry_index_picks_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "machine_platform", lambda: ("arm64", "v8"))
    with FakeRegistry() as reg:
        facts = lookup(reg.image, engine=False, cache=False, layer_cap=0, docker_config=tmp_path / "none.json").facts
        assert facts is not None and facts.user == "armuser" and facts.platform == "linux/arm64"
        assert not facts.files_read and "over the 0 MB cap" in facts.notes[0]


def test_registry_credentials_sent_never_shown(tmp_path: Path, amd64: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_engine(monkeypatch)
    encoded = base64.b64encode(f"me:{SECRET}".encode()).decode()
    with FakeRegistry(require_login=True) as reg:
        config = tmp_path / "docker.json"
        config.write_text(json.dumps({"auths": {f"127.0.0.1:{reg.port}": {"auth": encoded}}}))
        found = lookup(reg.image, engine=False, cache_dir=tmp_path / "cache", docker_config=config)
        assert found.facts is not None, found.reason
        assert ("Basic " + encoded) in [auth for path, auth in reg.seen if path.startswith("/token")]
        shown = repr(found) + str(found) + repr(found.facts.to_dict())
        cached = "".join(p.read_text() for p in (tmp_path / "cache").glob("*.json"))
        for secret in (SECRET, encoded, TOKEN):
            assert secret not in shown and secret not in cached

        reg.fail_blobs = True  # an error after the token: the message shows no secret either
        failed = lookup(reg.image, engine=False, cache=False, docker_config=config)
        assert failed.facts is None and "answered 500" in failed.reason
        client = registry_mod.Client(endpoint(reg.image), load_credentials(f"127.0.0.1:{reg.port}", config),
                                     registry_mod.Deadline(10))
        with pytest.raises(registry_mod.RegistryError) as caught:
            client.blob(reg.config_digest["amd64"], 1 << 20)
        text = "".join(traceback.format_exception(caught.value)) + repr(client)
        for secret in (SECRET, encoded, TOKEN):
            assert secret not in text

        config.write_text(json.dumps({"auths": {f"127.0.0.1:{reg.port}": {"auth": base64.b64encode(b"me:wrong").decode()}}}))
        refused = lookup(reg.image, engine=False, cache=False, docker_config=config)
        assert refused.facts is None and "token service" in refused.reason and "401" in refused.reason
        assert "wrong" not in refused.reason


def test_registry_second_call_from_cache(tmp_path: Path, amd64: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRegistry() as reg:
        first = lookup(reg.image, engine=False, cache_dir=tmp_path, docker_config=tmp_path / "none.json").facts
        assert first is not None and not first.from_cache
        requests = len(reg.seen)
        monkeypatch.setattr(urllib.request.OpenerDirector, "open", lambda *a, **k: pytest.fail("network used"))
        second = lookup(reg.image, cache_dir=tmp_path, offline=True).facts
        assert second == first and second.from_cache and len(reg.seen) == requests


def test_unreachable_and_offline_are_reasons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker CLI
    found = lookup(f"127.0.0.1:{port}/zoo/app:1", cache_dir=tmp_path, timeout=5)
    assert found.facts is None and not found
    assert "docker CLI not found" in found.reason and "unreachable" in found.reason

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network used while offline")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request.OpenerDirector, "open", refuse)
    offline = lookup("ghcr.io/org/app:1", cache_dir=tmp_path, offline=True)
    assert offline.facts is None and "not asked (offline)" in offline.reason
    assert "has no default" in lookup("app:${TAG}", cache_dir=tmp_path).reason
    assert lookup("app:1", engine=False, registry=False, cache_dir=tmp_path).reason.startswith("no source")


def test_default_of_a_variable_is_reported(tmp_path: Path, amd64: None) -> None:
    with FakeRegistry() as reg:
        written = f"127.0.0.1:{reg.port}/zoo/${{APP:-app}}:${{TAG:-1}}"
        facts = lookup(written, engine=False, cache_dir=tmp_path, docker_config=tmp_path / "none.json").facts
        assert facts is not None and facts.reference == written and facts.resolved_reference == reg.image
        assert facts.used_default and any("read as" in note for note in facts.notes)
        again = lookup(reg.image, cache_dir=tmp_path, offline=True).facts
        assert again is not None and again.reference == reg.image and not again.used_default and not again.notes


def test_deadline_reaches_the_registry(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        start = time.monotonic()
        found = lookup(f"127.0.0.1:{silent.getsockname()[1]}/a:1", engine=False, cache=False, timeout=1.0)
        assert found.facts is None and time.monotonic() - start < 5


def test_registry_blob_larger_than_declared(tmp_path: Path, amd64: None) -> None:
    with FakeRegistry() as reg:
        reg.pad_layers = True
        facts = lookup(reg.image, engine=False, cache=False, docker_config=tmp_path / "none.json").facts
        assert facts is not None and not facts.files_read and facts.user == ""
        assert "larger than its manifest says" in facts.notes[0]
