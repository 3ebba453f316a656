"""The zoo images: each reproduces what a class of popular images does at start.

All are busybox-static root filesystems (see build.py); servers are busybox ``httpd``
(HTTP, CGI) and ``nc -ll -e`` (line-oriented TCP).  Every server runs under
``zoo-serve``, which keeps PID 1 responsive to SIGTERM so ``restart`` / ``down`` are fast.
"""

from __future__ import annotations

from .build import Recipe

X = 0o755  # executable
R = 0o644  # plain file

# PID 1 helper: run the server as a child and forward TERM/INT to it.
ZOO_SERVE = """#!/bin/sh
"$@" &
child=$!
trap 'kill -TERM $child 2>/dev/null; wait $child; exit 0' TERM INT
wait $child
"""

# One connection of a line-oriented key/value server: PING | SET key value | GET key.
# Rows are appended to $ZOO_KV_FILE; write errors go to the container log (fd 3 of the server).
ZOO_KV = """#!/bin/sh
[ -e /proc/self/fd/3 ] || exec 3>/dev/null
read -r cmd key val
case "$cmd" in
  PING) echo PONG ;;
  SET)
    if printf '%s %s\\n' "$key" "$val" 2>&3 >> "$ZOO_KV_FILE"; then
      echo OK
    else
      echo "${ZOO_KV_ERROR:-ERR} cannot write $ZOO_KV_FILE"
    fi ;;
  GET)
    v=$(awk -v k="$key" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$ZOO_KV_FILE" 2>/dev/null)
    echo "${v:-NIL}" ;;
  *) echo "ERR unknown command '$cmd'" ;;
esac
"""

# Start a ZOO_KV server on $1, logging write errors (fd 3 = the container's stderr).
ZOO_KV_SERVER = """#!/bin/sh
exec 3>&2
exec nc -ll -p "$1" -e /usr/local/bin/zoo-kv
"""

# The container's memory limit in bytes (cgroup v1 or v2); "unlimited" is a huge number.
ZOO_MEMLIMIT = """#!/bin/sh
for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max; do
  if [ -r "$f" ]; then
    v=$(cat "$f")
    [ "$v" = max ] && v=9223372036854771712
    echo "$v"
    exit 0
  fi
done
echo 9223372036854771712
"""

COMMON_FILES = {
    "/usr/local/bin/zoo-serve": (ZOO_SERVE, X, 0, 0),
    "/usr/local/bin/zoo-kv": (ZOO_KV, X, 0, 0),
    "/usr/local/bin/zoo-kv-server": (ZOO_KV_SERVER, X, 0, 0),
    "/usr/local/bin/zoo-memlimit": (ZOO_MEMLIMIT, X, 0, 0),
}
BASE_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _recipe(tag: str, files: dict | None = None, **kw) -> Recipe:
    return Recipe(tag=tag, files={**COMMON_FILES, **(files or {})}, **kw)


# 1. postgres-like: root entrypoint chowns the data dir and drops with gosu; the server
#    refuses root and a data dir it does not own (postgres: "data directory ... has wrong ownership").
GOSU_DB_ENTRYPOINT = """#!/bin/sh
set -e
DBDATA=/var/lib/db/data
if [ "$1" = db-server ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$DBDATA"
  chmod 700 "$DBDATA"
  chown -R db:db "$DBDATA"
  exec gosu db "$0" "$@"
fi
exec "$@"
"""
GOSU_DB_SERVER = """#!/bin/sh
DBDATA=/var/lib/db/data
if [ "$(id -u)" = 0 ]; then
  echo '"root" execution of the db server is not permitted.' >&2; exit 1
fi
if [ "$(stat -c %u "$DBDATA")" != "$(id -u)" ]; then
  echo "FATAL:  data directory \\"$DBDATA\\" has wrong ownership (owner uid $(stat -c %u "$DBDATA"), server uid $(id -u))" >&2
  exit 1
fi
echo $$ > "$DBDATA/postmaster.pid" || { echo "FATAL:  could not create lock file \\"$DBDATA/postmaster.pid\\"" >&2; exit 1; }
echo "database system is ready to accept connections (port 5440)"
export ZOO_KV_FILE="$DBDATA/rows"
exec zoo-serve zoo-kv-server 5440
"""
GOSU_DB = _recipe(
    "zoo/gosu-db:1",
    users=[("db", 999, 999, "/var/lib/db")], groups=[("db", 999, "")],
    dirs={"/var/lib/db": (0o755, 999, 999), "/var/lib/db/data": (0o700, 999, 999)},
    files={"/usr/local/bin/docker-entrypoint.sh": (GOSU_DB_ENTRYPOINT, X, 0, 0),
           "/usr/local/bin/db-server": (GOSU_DB_SERVER, X, 0, 0)},
    binaries={"/usr/local/bin/gosu": ("gosu", X, "")},
    changes=[BASE_ENV, "VOLUME /var/lib/db/data", "EXPOSE 5440",
             'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["db-server"]'],
)

# 2. alpine-redis-like: root entrypoint chowns /data (WORKDIR, VOLUME) and drops with
#    su-exec to 999:1000; the server starts anyway and fails on the first write.
SUEXEC_KV_ENTRYPOINT = """#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- kv-server "$@"; fi
if [ "$1" = kv-server ] && [ "$(id -u)" = 0 ]; then
  find . \\! -user kv -exec chown kv '{}' +
  exec su-exec kv "$0" "$@"
fi
umask 0077
exec "$@"
"""
SUEXEC_KV_SERVER = """#!/bin/sh
echo "kv-server: Server initialized; Ready to accept connections tcp (port 6390, dir $(pwd), uid $(id -u))"
export ZOO_KV_FILE="$(pwd)/appendonly.aof" ZOO_KV_ERROR="ERR Failed opening the AOF file:"
exec zoo-serve zoo-kv-server 6390
"""
SUEXEC_KV = _recipe(
    "zoo/suexec-kv:1",
    users=[("kv", 999, 1000, "/home/kv")], groups=[("kv", 1000, "")],
    dirs={"/data": (0o755, 999, 1000)},
    files={"/usr/local/bin/docker-entrypoint.sh": (SUEXEC_KV_ENTRYPOINT, X, 0, 0),
           "/usr/local/bin/kv-server": (SUEXEC_KV_SERVER, X, 0, 0)},
    binaries={"/sbin/su-exec": ("su-exec", X, "")},
    changes=[BASE_ENV, "VOLUME /data", "WORKDIR /data", "EXPOSE 6390",
             'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["kv-server"]'],
)

# 3. linuxserver-like: s6-overlay-style /init (PID 1, copies its service tree to /run and
#    runs it from there), init-adduser (abc to PUID/PGID by editing /etc/passwd + /etc/group),
#    chown -R /config, then s6-setuidgid abc.
S6_INIT = """#!/bin/sh
set -e
if [ "$$" != 1 ]; then echo "s6-overlay-suexec: fatal: can only run as pid 1" >&2; exit 100; fi
mkdir -p /run/s6/services/app
cp /etc/s6-overlay/s6-rc.d/app/run /run/s6/services/app/run
chmod 0755 /run/s6/services/app/run
PUID=${PUID:-911}
PGID=${PGID:-911}
sed -i "s/^abc:x:[0-9]*:/abc:x:$PGID:/" /etc/group
sed -i "s/^abc:x:[0-9]*:[0-9]*:/abc:x:$PUID:$PGID:/" /etc/passwd
echo "───────────────────────────────────────"
echo "User UID:    $(id -u abc)"
echo "User GID:    $(id -g abc)"
echo "───────────────────────────────────────"
mkdir -p /config/www /config/log
chown -R abc:abc /config
exec /run/s6/services/app/run
"""
S6_RUN = """#!/bin/sh
exec s6-setuidgid abc /app/start
"""
S6_APP = """#!/bin/sh
set -e
date > /config/log/started
echo "[app] serving /config/www on :8080 as $(id -u):$(id -g)"
exec zoo-serve httpd -f -p 8080 -h /config/www
"""
S6_FILES = _recipe(
    "zoo/s6-files:1",
    users=[("abc", 911, 911, "/config")], groups=[("abc", 911, "")],
    dirs={"/config": (0o755, 911, 911), "/app": (0o755, 0, 0)},
    files={"/init": (S6_INIT, X, 0, 0), "/etc/s6-overlay/s6-rc.d/app/run": (S6_RUN, X, 0, 0),
           "/app/start": (S6_APP, X, 0, 0)},
    binaries={"/command/s6-setuidgid": ("su-exec", X, "")},
    changes=["ENV PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "ENV HOME=/root", "VOLUME /config", "EXPOSE 8080", 'ENTRYPOINT ["/init"]'],
)

# 4. non-root USER app (10001) that warms a cache in its home at start.
APP_HOME_START = """#!/bin/sh
set -e
mkdir -p "$HOME/.cache/app"
date > "$HOME/.cache/app/index.cache"
echo "app: cache warmed in $HOME/.cache/app; listening on :8080"
exec zoo-serve httpd -f -p 8080 -h /srv/app
"""
APP_HOME = _recipe(
    "zoo/app-home:1",
    users=[("app", 10001, 10001, "/home/app")], groups=[("app", 10001, "")],
    dirs={"/home/app": (0o755, 10001, 10001)},
    files={"/usr/local/bin/app-start": (APP_HOME_START, X, 0, 0),
           "/srv/app/index.html": ("app ready\n", R, 0, 0)},
    changes=[BASE_ENV, "USER app", "WORKDIR /home/app", "EXPOSE 8080", 'CMD ["app-start"]'],
)

# 5. JVM-like: refuses to start when the heap in JAVA_OPTS (-Xmx) exceeds the cgroup limit.
JVM_START = """#!/bin/sh
set -e
heap=$(echo " $JAVA_OPTS" | sed -n 's/.* -Xmx\\([0-9]*[kKmMgG]\\?\\).*/\\1/p')
case "$heap" in
  *[kK]) bytes=$(( ${heap%?} * 1024 )) ;;
  *[mM]) bytes=$(( ${heap%?} * 1048576 )) ;;
  *[gG]) bytes=$(( ${heap%?} * 1073741824 )) ;;
  "") bytes=0; heap=default ;;
  *) bytes=$heap ;;
esac
limit=$(zoo-memlimit)
if [ "$bytes" -gt 0 ] && awk -v h="$bytes" -v l="$limit" 'BEGIN { exit !(h > l) }'; then
  echo "Error occurred during initialization of VM" >&2
  echo "Initial heap -Xmx$heap ($bytes bytes) exceeds the container memory limit ($limit bytes)" >&2
  exit 1
fi
mkdir -p "/tmp/hsperfdata_$(id -u)"
echo "app: started with -Xmx$heap (memory limit $limit); listening on :8080"
exec zoo-serve httpd -f -p 8080 -h /opt/app/www
"""
JVM_HEAP = _recipe(
    "zoo/jvm-heap:1",
    files={"/opt/app/bin/start": (JVM_START, X, 0, 0), "/opt/app/www/health": ("UP\n", R, 0, 0)},
    changes=[BASE_ENV, "ENV JAVA_HOME=/opt/java", "WORKDIR /opt/app", "EXPOSE 8080", 'CMD ["/opt/app/bin/start"]'],
)

# 6. writes uploads to /var/cache/uploader and an index to its working directory, per request.
UPLOAD_CGI = """#!/bin/sh
name=${QUERY_STRING#name=}
case "$name" in ""|*[!A-Za-z0-9._-]*) printf 'Status: 400 Bad Request\\r\\n\\r\\nbad name\\n'; exit 0 ;; esac
if head -c "${CONTENT_LENGTH:-0}" > "/var/cache/uploader/$name" && \\
   echo "$(date +%s) $name ${CONTENT_LENGTH:-0}" >> /srv/uploader/uploads.log; then
  printf 'Status: 201 Created\\r\\nContent-Type: text/plain\\r\\n\\r\\nstored %s\\n' "$name"
else
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\ncannot store %s\\n' "$name"
fi
"""
DOWNLOAD_CGI = """#!/bin/sh
name=${QUERY_STRING#name=}
case "$name" in ""|*[!A-Za-z0-9._-]*) printf 'Status: 400 Bad Request\\r\\n\\r\\n'; exit 0 ;; esac
if [ -f "/var/cache/uploader/$name" ] && grep -q " $name " /srv/uploader/uploads.log; then
  printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'
  cat "/var/cache/uploader/$name"
else
  printf 'Status: 404 Not Found\\r\\n\\r\\nno upload %s\\n' "$name"
fi
"""
UPLOADER = _recipe(
    "zoo/uploader:1",
    dirs={"/var/cache/uploader": (0o755, 0, 0), "/srv/uploader": (0o755, 0, 0)},
    files={"/srv/uploader/www/index.html": ("uploader\n", R, 0, 0),
           "/srv/uploader/www/cgi-bin/upload": (UPLOAD_CGI, X, 0, 0),
           "/srv/uploader/www/cgi-bin/download": (DOWNLOAD_CGI, X, 0, 0)},
    changes=[BASE_ENV, "WORKDIR /srv/uploader", "EXPOSE 8080",
             'CMD ["zoo-serve", "httpd", "-f", "-vv", "-p", "8080", "-h", "/srv/uploader/www"]'],
)

# 7. keeps its data in VOLUME /data (root-owned, runs as root); compose mounts nothing there.
VOLUME_DATA_START = """#!/bin/sh
echo "store: data in /data ($(ls /data | wc -l) files); listening on :7070"
export ZOO_KV_FILE=/data/rows
exec zoo-kv-server 7070
"""
VOLUME_DATA = _recipe(
    "zoo/volume-data:1",
    dirs={"/data": (0o755, 0, 0)},
    files={"/usr/local/bin/store": (VOLUME_DATA_START, X, 0, 0)},
    changes=[BASE_ENV, "VOLUME /data", "EXPOSE 7070", 'ENTRYPOINT ["zoo-serve"]', 'CMD ["store"]'],
)

# 8. a plain web server on port 80 (runs as root unless the compose file sets `user:`).
PORT80 = _recipe(
    "zoo/port80:1",
    users=[("www", 101, 101, "/srv/www")], groups=[("www", 101, "")],
    files={"/srv/www/index.html": ("port80 ok\n", R, 0, 0)},
    changes=[BASE_ENV, "EXPOSE 80", 'ENTRYPOINT ["zoo-serve"]', 'CMD ["httpd", "-f", "-p", "80", "-h", "/srv/www"]'],
)

# 8b. caddy-like: USER 101 and a server binary with file capability cap_net_bind_service=+ep.
CAPWEB = _recipe(
    "zoo/capweb:1",
    users=[("webd", 101, 101, "/srv/www")], groups=[("webd", 101, "")],
    files={"/srv/www/index.html": ("capweb ok\n", R, 0, 0)},
    binaries={"/opt/webd/httpd": ("busybox", X, "cap_net_bind_service=+ep")},
    changes=[BASE_ENV, "USER webd", "EXPOSE 80", 'ENTRYPOINT ["zoo-serve"]',
             'CMD ["/opt/webd/httpd", "-f", "-p", "80", "-h", "/srv/www"]'],
)

# 9. memcached-like: `-m MB` is its item memory; it checks that against the cgroup limit
#    (minus 32 MiB overhead) and counts evictions when stored items exceed what fits.
KVCACHE_ENTRYPOINT = """#!/bin/sh
set -e
if [ "${1#-}" != "$1" ]; then set -- kvcache "$@"; fi
exec "$@"
"""
KVCACHE = """#!/bin/sh
mb=64
while [ $# -gt 0 ]; do
  case "$1" in -m) mb=$2; shift ;; -m*) mb=${1#-m} ;; esac
  shift
done
limit=$(zoo-memlimit)
fit=$(awk -v l="$limit" -v m="$mb" 'BEGIN { f = int(l / 1048576) - 32; if (f > m) f = m; if (f < 0) f = 0; print f }')
if [ "$fit" -lt "$mb" ]; then
  echo "kvcache: WARNING: -m $mb exceeds the container memory limit ($limit bytes): only $fit MB usable, items will be evicted" >&2
fi
printf 'limit_mb=%s\\nused_mb=0\\nevictions=0\\n' "$fit" > /dev/shm/kvcache.state
echo "kvcache: -m $mb, listening on :11211"
exec zoo-serve nc -ll -p 11211 -e /usr/local/bin/kvcache-conn
"""
KVCACHE_CONN = """#!/bin/sh
. /dev/shm/kvcache.state
read -r cmd arg
case "$cmd" in
  fill)
    used_mb=$((used_mb + arg))
    if [ "$used_mb" -gt "$limit_mb" ]; then evictions=$((evictions + used_mb - limit_mb)); used_mb=$limit_mb; fi
    printf 'limit_mb=%s\\nused_mb=%s\\nevictions=%s\\n' "$limit_mb" "$used_mb" "$evictions" > /dev/shm/kvcache.state
    echo STORED ;;
  stats)
    printf 'STAT limit_maxbytes %s\\r\\nSTAT bytes %s\\r\\nSTAT evictions %s\\r\\nEND\\r\\n' \\
      $((limit_mb * 1048576)) $((used_mb * 1048576)) "$evictions" ;;
  *) echo ERROR ;;
esac
"""
KVCACHE_IMAGE = _recipe(
    "zoo/kvcache:1",
    users=[("memcache", 11211, 11211, "/home/memcache")], groups=[("memcache", 11211, "")],
    files={"/usr/local/bin/docker-entrypoint.sh": (KVCACHE_ENTRYPOINT, X, 0, 0),
           "/usr/local/bin/kvcache": (KVCACHE, X, 0, 0),
           "/usr/local/bin/kvcache-conn": (KVCACHE_CONN, X, 0, 0)},
    changes=[BASE_ENV, "USER memcache", "EXPOSE 11211",
             'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["kvcache"]'],
)

# 10. nginx-with-templates-like: envsubst /etc/app/templates/*.template into /etc/app/conf.d
#     (logs "not writable" and goes on when it cannot), then serves what conf.d says.
TMPL_ENTRYPOINT = """#!/bin/sh
set -e
for f in /docker-entrypoint.d/*.sh; do
  echo "$0: Launching $f"
  "$f"
done
for conf in /etc/app/conf.d/*.conf; do
  [ -f "$conf" ] && . "$conf"
done
echo "$0: serving ${DOCROOT:=/srv/default} on :8080"
exec zoo-serve httpd -f -p 8080 -h "$DOCROOT"
"""
TMPL_ENVSUBST = """#!/bin/sh
set -e
ME=$(basename "$0")
template_dir=/etc/app/templates
output_dir=/etc/app/conf.d
suffix=.template
[ -d "$template_dir" ] || exit 0
# (the upstream script tests `[ ! -w "$output_dir" ]`; busybox's test says "writable" to root
# on a read-only mount, so probe with a real write to get the same answer bash gives)
if ! touch "$output_dir/.writable" 2>/dev/null; then
  echo "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
  exit 0
fi
rm -f "$output_dir/.writable"
for template in "$template_dir"/*"$suffix"; do
  out="$output_dir/$(basename "$template" "$suffix")"
  echo "$ME: Running envsubst on $template to $out"
  awk '{ while (match($0, /[$][{][A-Za-z_][A-Za-z0-9_]*[}]/)) {
           v = substr($0, RSTART + 2, RLENGTH - 3)
           $0 = substr($0, 1, RSTART - 1) ENVIRON[v] substr($0, RSTART + RLENGTH) }
         print }' "$template" > "$out"
done
"""
TMPL_WEB = _recipe(
    "zoo/tmpl-web:1",
    dirs={"/etc/app/conf.d": (0o755, 0, 0), "/srv/default": (0o755, 0, 0)},
    files={"/docker-entrypoint.sh": (TMPL_ENTRYPOINT, X, 0, 0),
           "/docker-entrypoint.d/20-envsubst-on-templates.sh": (TMPL_ENVSUBST, X, 0, 0),
           "/etc/app/templates/site.conf.template": ("DOCROOT=/srv/sites/${SITE_NAME}\n", R, 0, 0),
           "/srv/sites/zoo/index.html": ("zoo site, rendered from the template\n", R, 0, 0)},
    changes=[BASE_ENV, "EXPOSE 8080", 'ENTRYPOINT ["/docker-entrypoint.sh"]'],
)

RECIPES = [GOSU_DB, SUEXEC_KV, S6_FILES, APP_HOME, JVM_HEAP, UPLOADER, VOLUME_DATA, PORT80, CAPWEB,
           KVCACHE_IMAGE, TMPL_WEB]
