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

from hardener.facts import (FileCaps, ImageFacts, analyse_argv, analyse_script, decode_file_caps, lookup,
                            resolve_reference, script_target)
from hardener.facts import caps as caps_mod
from hardener.facts import registry as registry_mod
from hardener.facts.accounts import home, parse_group, parse_passwd, resolve
from hardener.facts.auth import load_credentials, may_send_secret, parse_challenge, registry_key
from hardener.facts.cache import VERSION as CACHE_VERSION
from hardener.facts.cache import FactsCache
from hardener.facts.entrypoint import find_globs, program_names
from hardener.facts.gather import DIR_SCRIPT_COUNT, from_config, glob_match, is_shell_script, with_files
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
    """entries: (name, kind, uid, gid, mode, data-or-link[, pax records])."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name, kind, uid, gid, mode, extra, *pax in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mode = uid, gid, mode
            if pax:
                info.pax_headers = dict(pax[0])
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

    def __init__(self, *, require_login: bool = False, layers: list[list[tuple]] | None = None,
                 image_config: dict[str, Any] | None = None) -> None:
        self.require_login = require_login
        self.seen: list[tuple[str, str | None]] = []
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.fail_blobs = False
        self.pad_layers = False
        layers = [_tar(layer) for layer in (layers or [LAYER1, LAYER2])]
        self.layer_digests = [_digest(layer) for layer in layers]
        for layer in layers:
            self.blobs[_digest(layer)] = layer
        images = {}
        for arch, user in (("amd64", ""), ("arm64", "armuser")):
            config = json.dumps({"architecture": arch, "os": "linux", "config": {
                "User": user, "Entrypoint": ["entry.sh"], "Cmd": ["serve"], "Env": ["PATH=/usr/local/bin:/bin", "A=b=c"],
                "Volumes": {"/var/lib/svc": {}}, "WorkingDir": "/var/lib/svc", "ExposedPorts": {"8080/tcp": {}},
                "Labels": {"org.example": "yes"}, **(image_config or {})}}).encode()
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


# ======================================================== scripts run from a directory

NGINX_ENTRYPOINT = r"""#!/bin/sh
set -e
if /usr/bin/find "/docker-entrypoint.d/" -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read v; then
    find "/docker-entrypoint.d/" -follow -type f -print | sort -V | while read -r f; do
        case "$f" in
            *.envsh)
                if [ -x "$f" ]; then
                    . "$f"
                fi
                ;;
            *.sh)
                if [ -x "$f" ]; then
                    "$f"
                fi
                ;;
            *) echo "$0: Ignoring $f";;
        esac
    done
fi
exec "$@"
"""

LOOPS: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    ("for-glob", 'for f in /docker-entrypoint.d/*.sh; do\n  [ -x "$f" ] && "$f"\ndone\n', {}, ("/docker-entrypoint.d/*.sh",)),
    ("for-one-line", 'for f in /docker-entrypoint.d/*.sh; do "$f"; done\n', {}, ("/docker-entrypoint.d/*.sh",)),
    ("for-globs-sourced-or-sh", 'for f in /entrypoint.d/*.sh /entrypoint.d/*.envsh; do\n  case "$f" in\n'
     '    *.envsh) . "$f" ;;\n    *) sh "$f" ;;\n  esac\ndone\n', {}, ("/entrypoint.d/*.sh", "/entrypoint.d/*.envsh")),
    ("for-dir-from-env", 'for f in "$INIT_DIR"/*; do\n  if [ -x "$f" ]; then\n    "${f}" "$@"\n  fi\ndone\n',
     {"INIT_DIR": "/init.d/"}, ("/init.d/*",)),
    ("for-inline-case", NO_DROP, {}, ("/docker-entrypoint-init.d/*",)),
    ("find-sort-while", NGINX_ENTRYPOINT, {}, ("/docker-entrypoint.d/**/*",)),
    ("find-name-maxdepth", 'find /etc/entrypoint.d -maxdepth 1 -type f -name "*.sh" | sort |\n'
     '  while IFS= read -r script; do\n    . "$script"\n  done\n', {}, ("/etc/entrypoint.d/*.sh",)),
    ("find-pipes-across-lines", 'find -L /init.d -type f |\n  sort -n |\n  while read f; do bash "$f"; done\n', {},
     ("/init.d/**/*",)),
    ("find-exec", 'find /docker-entrypoint.d -type f -name "*.sh" -exec {} \\;\n', {}, ("/docker-entrypoint.d/**/*.sh",)),
    ("find-exec-sh", 'find "$HOOKS" -type f -exec sh {} +\n', {"HOOKS": "/hooks"}, ("/hooks/**/*",)),
    ("nested-inner-runs", 'for d in /a /b; do\n  for f in /hooks.d/*.sh; do\n    exec_count=1\n    "$f"\n  done\ndone\n',
     {}, ("/hooks.d/*.sh",)),
    # loops that run no file of a directory
    ("loop-edits-files", 'for f in /etc/app/*.conf; do sed -i s/a/b/ "$f"; done\n', {}, ()),
    ("templates-read-not-run", NGINX_LIKE, {}, ()),
    ("loop-over-args", 'for f in "$@"; do "$f"; done\n', {}, ()),
    ("unknown-directory", 'for f in "$HOOKS"/*.sh; do "$f"; done\n', {}, ()),
    ("root-directory", 'for f in /*.sh; do "$f"; done\n', {}, ()),
    ("literal-files", 'for f in /a.sh /b.sh; do "$f"; done\n', {}, ()),
    ("find-directories", 'find /d -type d | while read -r f; do "$f"; done\n', {}, ()),
    ("ls-not-find", 'ls /d/*.sh | while read -r f; do "$f"; done\n', {}, ()),
    ("runs-another-variable", 'for f in /d/*.sh; do\n  g=/bin/true\n  "$g"\ndone\n', {}, ()),
    ("run-after-the-loop", 'for f in /d/*.sh; do echo "$f"; done\n"$f"\n', {}, ()),
]


@pytest.mark.parametrize("name,script,env,globs", LOOPS, ids=[c[0] for c in LOOPS])
def test_loops_that_run_a_directory(name: str, script: str, env: dict[str, str], globs: tuple[str, ...]) -> None:
    assert analyse_script(script, env).script_globs == globs


def test_loop_variable_is_not_a_known_value() -> None:
    facts = analyse_script('for f in /d/*.sh; do\n  "$f" > "$f.log"\ndone\n', {"f": "/etc/x"})
    assert facts.script_globs == ("/d/*.sh",) and facts.writes == () and facts.unresolved == ('"$f.log"',)


def test_pipes_are_marked() -> None:
    got = [(c.words[0], c.piped) for c in commands("find /d |\n  sort | while read f; do x; done\na && b || c; d | e\n")]
    assert got == [("find", False), ("sort", True), ("while", True), ("do", False), ("done", False),
                   ("a", False), ("b", False), ("c", False), ("d", False), ("e", True)]


@pytest.mark.parametrize("args,globs", [
    (["/d/", "-follow", "-type", "f", "-print"], ["/d/**/*"]),
    (["-L", "/d", "-name", "*.sh"], ["/d/**/*.sh"]),
    (["/d", "-maxdepth", "1", "-type", "f"], ["/d/*"]),
    (["/a", "/b", "-type", "f,l"], ["/a/**/*", "/b/**/*"]),
    (["/d", "-type", "d"], []),
    (["relative", "/"], []),
])
def test_find_globs(args: list[str], globs: list[str]) -> None:
    assert find_globs(args) == globs


@pytest.mark.parametrize("globs,relative,wanted", [
    (["/d/*.sh"], "10-a.sh", True),
    (["/d/*.sh"], "sub/10-a.sh", False),
    (["/d/*.sh"], ".hidden.sh", False),
    (["/d/.*.sh"], ".hidden.sh", True),
    (["/d/*.sh"], "15-a.envsh", False),
    (["/d/*.sh", "/d/*.envsh"], "15-a.envsh", True),
    (["/d/**/*"], "sub/deep/x", True),
    (["/d/**/*"], ".x", True),
    (["/d/**/*.sh"], "sub/a.sh", True),
    (["/d/**/*.sh"], "sub/a.txt", False),
])
def test_glob_match(globs: list[str], relative: str, wanted: bool) -> None:
    chosen = glob_match(globs)
    assert chosen is not None and chosen[0] == "/d" and chosen[1](relative) is wanted


@pytest.mark.parametrize("path,data,shell", [
    ("/d/a", b"#!/bin/sh\nx\n", True),
    ("/d/a", b"#!/usr/bin/env bash\nx\n", True),
    ("/d/a", b"#! /usr/bin/env -S bash -e\nx\n", True),
    ("/d/a", b"#!/bin/busybox sh\n", True),
    ("/d/a.sh", b"#!/usr/bin/python3\nprint(1)\n", False),
    ("/d/a.sh", b"mkdir -p /run/a\n", True),
    ("/d/a.envsh", b"export A=1\n", True),
    ("/d/README", b"mkdir -p /run/a\n", False),
    ("/d/a.sh", b"\x7fELF\x00\x00", False),
])
def test_is_shell_script(path: str, data: bytes, shell: bool) -> None:
    assert is_shell_script(path, data) is shell


# ================================================================== file capabilities

NET_BIND_V2 = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")  # setcap cap_net_bind_service=+ep
NET_BIND_V3 = bytes.fromhex("01000003" "00040000" "00000000" "00000000" "00000000" "a0860100")  # ... in a userns, root 100000


@pytest.mark.parametrize("blob,expected", [
    (NET_BIND_V2, FileCaps(("NET_BIND_SERVICE",), (), True, 2, None)),
    (NET_BIND_V3, FileCaps(("NET_BIND_SERVICE",), (), True, 3, 100000)),
    (bytes.fromhex("01000001" "00040000" "00000000"), FileCaps(("NET_BIND_SERVICE",), (), True, 1, None)),
    # cap_chown,cap_dac_override,cap_setgid,cap_setuid,cap_net_raw,cap_syslog,cap_checkpoint_restore=p: both halves
    (bytes.fromhex("00000002" "c3200000" "00000000" "04010000" "00000000"),
     FileCaps(("CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID", "NET_RAW", "SYSLOG", "CHECKPOINT_RESTORE"), (), False, 2, None)),
    # cap_net_admin,cap_net_raw=eip (v3, root 0)
    (bytes.fromhex("01000003" "00300000" "00300000" "00000000" "00000000" "00000000"),
     FileCaps(("NET_ADMIN", "NET_RAW"), ("NET_ADMIN", "NET_RAW"), True, 3, 0)),
    # cap_setuid (0x80: not UTF-8 on its own) and bit 41, which the list does not name yet
    (bytes.fromhex("00000002" "80000000" "00000000" "00020000" "00000000"), FileCaps(("SETUID", "41"), (), False, 2, None)),
    (b"", None),
    (b"\x01\x00\x00", None),
    (NET_BIND_V2[:12], None),  # v2 magic, v1 size
    (NET_BIND_V3[:20], None),  # v3 magic, v2 size
    (NET_BIND_V2 + b"\x00", None),
    (bytes.fromhex("00000004") + bytes(20), None),  # unknown revision
])
def test_decode_file_caps(blob: bytes, expected: FileCaps | None) -> None:
    assert decode_file_caps(blob) == expected


def test_file_caps_text_like_getcap() -> None:
    assert decode_file_caps(NET_BIND_V2).text() == "cap_net_bind_service=ep"
    assert decode_file_caps(bytes.fromhex("01000003" "00300000" "00300000" "00000000" "00000000" "00000000")).text() == (
        "cap_net_admin,cap_net_raw=ep cap_net_admin,cap_net_raw+i")


def test_capability_from_tar_pax_records() -> None:
    setuid = bytes.fromhex("00000002" "80000000" "00000000" "00000000" "00000000")
    raw = _tar([("bin/a", "file", 0, 0, 0o755, "a", {"SCHILY.xattr.security.capability": setuid.decode("utf-8", "surrogateescape")}),
                ("bin/b", "file", 0, 0, 0o755, "b", {"LIBARCHIVE.xattr.security.capability":
                                                     base64.b64encode(NET_BIND_V2).decode().rstrip("=")}),
                ("bin/c", "file", 0, 0, 0o755, "c", {"SCHILY.xattr.user.note": "x"})], compress=False)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8") as tar:
        got = {m.name: caps_mod.capability(m.pax_headers) for m in tar}
    assert got == {"bin/a": setuid, "bin/b": NET_BIND_V2, "bin/c": None}


# ======================================================== the layer tree: caps, scripts

CAPPED = {"SCHILY.xattr.security.capability": NET_BIND_V2.decode("utf-8", "surrogateescape")}
SCRIPTS_LAYER1 = [
    ("docker-entrypoint.sh", "file", 0, 0, 0o755, '#!/bin/sh\nfor f in /docker-entrypoint.d/*.sh; do\n  "$f"\ndone\nexec "$@"\n'),
    ("docker-entrypoint.d", "dir", 0, 0, 0o755, None),
    ("docker-entrypoint.d/10-run.sh", "file", 0, 0, 0o755, "#!/bin/sh\nmkdir -p /run/app\n"),
    ("docker-entrypoint.d/20-envsubst.sh", "file", 0, 0, 0o755,
     '#!/bin/sh\noutput_dir=/etc/app/conf.d\nfor t in /etc/app/templates/*; do\n  name=$(basename "$t")\n'
     '  sed s/a/b/ "$t" > "$output_dir/$name"\ndone\n'),
    ("docker-entrypoint.d/25-gone.sh", "file", 0, 0, 0o755, "#!/bin/sh\ntouch /gone\n"),
    ("docker-entrypoint.d/30-python.sh", "file", 0, 0, 0o755, "#!/usr/bin/python3\nopen('/py', 'w')\n"),
    ("docker-entrypoint.d/README", "file", 0, 0, 0o644, "mkdir -p /not/run\n"),
    ("opt/hooks/40-linked.sh", "file", 0, 0, 0o755, "#!/bin/sh\nchown app /var/lib/app\nexec su-exec app true\n"),
    ("docker-entrypoint.d/40-linked.sh", "sym", 0, 0, 0o777, "/opt/hooks/40-linked.sh"),
    ("usr/bin/webd", "file", 0, 0, 0o755, "\x7fELF", CAPPED),
    ("usr/bin/webd-link", "hard", 0, 0, 0o755, "usr/bin/webd"),
    ("usr/bin/plain", "file", 0, 0, 0o755, "\x7fELF"),
    ("bin", "sym", 0, 0, 0o777, "usr/bin"),
]
SCRIPTS_LAYER2 = [
    ("docker-entrypoint.d/.wh.25-gone.sh", "file", 0, 0, 0o644, ""),
    ("docker-entrypoint.d/15-late.sh", "file", 0, 0, 0o755, "#!/bin/sh\ntouch /var/cache/late\n"),
    ("docker-entrypoint.d/big.sh", "file", 0, 0, 0o755, "#!/bin/sh\n" + "# padding\n" * 30000),
]


class _Rereads:
    """`reread` for a LayerTree from tar bytes, counting the layers read again."""

    def __init__(self, layers: list[list[tuple]]) -> None:
        self.raw = [_tar(layer) for layer in layers]
        self.calls: list[tuple[int, set[str]]] = []

    def __call__(self, index: int, paths: set[str]) -> dict[str, bytes]:
        self.calls.append((index, set(paths)))
        found = {}
        with tarfile.open(fileobj=io.BytesIO(self.raw[index]), mode="r:gz") as tar:
            for member in tar:
                path = "/" + member.name
                if path in paths and member.isreg():
                    found[path] = tar.extractfile(member).read()
        return found


def _scripts_tree(reread: Any = None) -> LayerTree:
    tree = LayerTree(keep=lambda path, size: path == "/docker-entrypoint.sh", reread=reread)
    for layer in (SCRIPTS_LAYER1, SCRIPTS_LAYER2):
        with tarfile.open(fileobj=io.BytesIO(_tar(layer)), mode="r:gz", encoding="utf-8") as tar:
            tree.add_layer(tar)
    return tree


def test_layer_tree_capabilities() -> None:
    tree = _scripts_tree()
    assert tree.xattrs("/usr/bin/webd") == {"security.capability": NET_BIND_V2}
    assert tree.xattrs("/bin/webd") == tree.xattrs("/usr/bin/webd-link") == {"security.capability": NET_BIND_V2}
    assert tree.xattrs("/usr/bin/plain") == {} and tree.xattrs("/usr/bin") is None and tree.xattrs("/nope") is None


def test_layer_tree_files_below_read_again_from_their_layers() -> None:
    rereads = _Rereads([SCRIPTS_LAYER1, SCRIPTS_LAYER2])
    tree = _scripts_tree(rereads)
    match = glob_match(["/docker-entrypoint.d/*.sh"])[1]
    files, more = tree.files_below("/docker-entrypoint.d", match, 1 << 10, 10)
    assert [p for p, _ in files] == ["/docker-entrypoint.d/10-run.sh", "/docker-entrypoint.d/15-late.sh",
                                     "/docker-entrypoint.d/20-envsubst.sh", "/docker-entrypoint.d/30-python.sh",
                                     "/docker-entrypoint.d/40-linked.sh", "/docker-entrypoint.d/big.sh"] and not more
    got = dict(files)
    assert got["/docker-entrypoint.d/40-linked.sh"].startswith(b"#!/bin/sh\nchown app")  # through the symlink
    assert got["/docker-entrypoint.d/15-late.sh"] == b"#!/bin/sh\ntouch /var/cache/late\n"
    assert got["/docker-entrypoint.d/big.sh"] is None  # over the limit: not read again
    assert sorted(i for i, _ in rereads.calls) == [0, 1] and "/docker-entrypoint.d/big.sh" not in rereads.calls[1][1]
    files, more = tree.files_below("/docker-entrypoint.d", match, 1 << 10, 2)
    assert len(files) == 2 and more and len(rereads.calls) == 2  # kept once read
    assert tree.files_below("/docker-entrypoint.sh", match, 1 << 10, 2) is None
    assert tree.files_below("/nope", match, 1 << 10, 2) is None
    unread = _scripts_tree().files_below("/docker-entrypoint.d", match, 1 << 10, 10)
    assert unread is not None and all(data is None for _, data in unread[0])  # no reread: not read


def test_with_files_merges_directory_scripts_and_caps() -> None:
    config = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["webd", "-p", "80"], "Env": ["PATH=/usr/local/bin:/usr/bin"]}
    facts = with_files(from_config("app:1", "sha256:" + "a" * 64, "registry", config),
                       _scripts_tree(_Rereads([SCRIPTS_LAYER1, SCRIPTS_LAYER2])))
    entry = facts.entrypoint_facts
    assert facts.script == "/docker-entrypoint.sh" and entry.script_globs == ("/docker-entrypoint.d/*.sh",)
    assert facts.dir_scripts == ("/docker-entrypoint.d/10-run.sh", "/docker-entrypoint.d/15-late.sh",
                                 "/docker-entrypoint.d/20-envsubst.sh", "/docker-entrypoint.d/40-linked.sh")
    assert set(entry.writes) == {"/run/app", "/var/cache/late", "/etc/app/conf.d"}  # not /gone, /py, /not/run
    assert entry.chowns == ("/var/lib/app",) and facts.drop_user == "app"
    assert facts.notes == ("/docker-entrypoint.d/big.sh not read: over 256 KB or unreadable",)
    assert facts.program == "/docker-entrypoint.sh" and facts.program_caps() == ()  # the entrypoint runs first
    assert facts.file_caps == {"/usr/bin/webd": ("NET_BIND_SERVICE",)}  # cmd[0], what `exec "$@"` starts

    direct = with_files(from_config("app:1", "sha256:" + "a" * 64, "registry", {"Cmd": ["webd"], "Env": ["PATH=/bin"]}),
                        _scripts_tree())
    assert direct.program == "/bin/webd" and direct.program_caps() == ("NET_BIND_SERVICE",) and direct.dir_scripts == ()
    plain = with_files(from_config("app:1", "sha256:" + "a" * 64, "registry", {"Entrypoint": ["/usr/bin/plain"]}),
                       _scripts_tree())
    assert plain.program == "/usr/bin/plain" and plain.file_caps == {} and plain.program_caps() == ()
    missing = with_files(from_config("app:1", "sha256:" + "a" * 64, "registry", {"Cmd": ["nothere"]}), _scripts_tree())
    assert missing.program == "" and missing.program_caps() == ()


def test_with_files_reads_at_most_the_bound() -> None:
    layer = [("entry.sh", "file", 0, 0, 0o755, '#!/bin/sh\nfind /hooks -type f | sort | while read -r h; do "$h"; done\n'),
             *[(f"hooks/{i:02d}.sh", "file", 0, 0, 0o755, f"#!/bin/sh\nmkdir -p /run/s{i:02d}\n") for i in range(40)]]
    tree = LayerTree(keep=lambda path, size: True)
    with tarfile.open(fileobj=io.BytesIO(_tar(layer)), mode="r:gz") as tar:
        tree.add_layer(tar)
    facts = with_files(from_config("app:1", "sha256:" + "a" * 64, "engine", {"Entrypoint": ["/entry.sh"]}), tree)
    assert len(facts.dir_scripts) == DIR_SCRIPT_COUNT == 32 and facts.dir_scripts[-1] == "/hooks/31.sh"
    assert facts.entrypoint_facts.writes == tuple(f"/run/s{i:02d}" for i in range(32))
    assert facts.notes == ("more scripts in /hooks than read (at most 32, by name)",)


class _OnlyReadAndStat:
    """A FileSource of the first kind: `read` and `stat` only."""

    def __init__(self, tree: LayerTree) -> None:
        self.tree = tree

    def read(self, path: str, limit: int) -> bytes | None:
        return self.tree.read(path, limit)

    def stat(self, path: str) -> Any:
        return self.tree.stat(path)


def test_a_source_without_listing_or_xattrs_still_serves() -> None:
    config = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["webd"], "Env": ["PATH=/usr/bin"]}
    facts = with_files(from_config("app:1", "sha256:" + "a" * 64, "engine", config), _OnlyReadAndStat(_scripts_tree()))
    assert facts.files_read and facts.script == "/docker-entrypoint.sh"
    assert facts.entrypoint_facts.script_globs == ("/docker-entrypoint.d/*.sh",) and facts.dir_scripts == ()
    assert facts.program == "" and facts.file_caps == {}


@pytest.mark.parametrize("entrypoint,cmd,names", [
    (["/docker-entrypoint.sh"], ["nginx", "-g", "daemon off;"], ("/docker-entrypoint.sh", "nginx")),
    (None, ["caddy", "run"], ("caddy",)),
    (["tini", "--"], ["/usr/bin/server"], ("tini", "/usr/bin/server")),
    (["/sbin/tini", "--", "/usr/bin/server"], None, ("/sbin/tini", "/usr/bin/server")),
    (["/entry.sh"], ["--config", "/c"], ("/entry.sh",)),
    (None, None, ()),
])
def test_program_names(entrypoint, cmd, names) -> None:
    assert program_names(entrypoint, cmd) == names


def test_new_fields_round_trip_and_cache_format(tmp_path: Path) -> None:
    facts = _facts(entrypoint=("webd",), entrypoint_facts=analyse_script(NGINX_ENTRYPOINT),
                   dir_scripts=("/docker-entrypoint.d/10-a.sh",), program="/usr/bin/webd",
                   file_caps={"/usr/bin/webd": ("NET_BIND_SERVICE", "NET_RAW")})
    again = ImageFacts.from_dict(json.loads(json.dumps(facts.to_dict())))
    assert again == facts and again.program_caps() == ("NET_BIND_SERVICE", "NET_RAW")
    assert again.entrypoint_facts.script_globs == ("/docker-entrypoint.d/**/*",)
    assert pickle.loads(pickle.dumps(facts)) == facts
    assert ImageFacts(reference="a", digest="sha256:" + "b" * 64, source="engine").program_caps() == ()

    cache = FactsCache(tmp_path)
    cache.put(facts)
    path = tmp_path / f"sha256-{'a' * 64}.json"
    assert json.loads(path.read_text())["version"] == CACHE_VERSION >= 2 and cache.get(facts.digest) == facts
    old = facts.to_dict()  # a record of the format before: no new fields, version 1
    for key in ("dir_scripts", "program", "file_caps"):
        old.pop(key)
    old["entrypoint_facts"].pop("script_globs")
    path.write_text(json.dumps({"version": 1, "facts": old}))
    assert cache.get(facts.digest) is None and not path.exists()  # ignored (and removed), not misread


# ============================================================== registry: scripts, caps


def test_registry_reads_directory_scripts_from_their_layers(tmp_path: Path, amd64: None) -> None:
    config = {"Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["webd"], "Env": ["PATH=/usr/bin"], "Volumes": None,
              "WorkingDir": ""}
    with FakeRegistry(layers=[SCRIPTS_LAYER1, SCRIPTS_LAYER2], image_config=config) as reg:
        found = lookup(reg.image, engine=False, cache=False, docker_config=tmp_path / "none.json")
        facts = found.facts
        assert facts is not None and facts.files_read, found.reason
        assert facts.dir_scripts == ("/docker-entrypoint.d/10-run.sh", "/docker-entrypoint.d/15-late.sh",
                                     "/docker-entrypoint.d/20-envsubst.sh", "/docker-entrypoint.d/40-linked.sh")
        assert "/etc/app/conf.d" in facts.entrypoint_facts.writes and facts.drop_user == "app"
        assert facts.file_caps == {"/usr/bin/webd": ("NET_BIND_SERVICE",)}
        fetched = [path.rsplit("/", 1)[1] for path, _ in reg.seen if path.startswith("/cdn/")]
        assert [fetched.count(d) for d in reg.layer_digests] == [2, 2]  # each read, then read again for its scripts

        reg.seen.clear()
        again = lookup(reg.image, engine=False, cache=False, docker_config=tmp_path / "none.json", layer_cap=0).facts
        assert again is not None and not again.files_read and again.dir_scripts == () and again.file_caps == {}
