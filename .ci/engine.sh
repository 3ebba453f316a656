#!/usr/bin/env bash
# Bring up a real Docker engine for the e2e tests (idempotent).
#  - installs Debian's docker.io and debootstrap if missing
#  - starts dockerd in the background if `docker info` fails
#  - waits up to 60 s for the daemon, fails loudly otherwise
set -euo pipefail

log() { echo "[engine.sh] $*" >&2; }

need=()
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    need+=(docker.io)
fi
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
    log "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    log "docker engine already running"
    exit 0
fi

# A stale pid file from a killed daemon would stop a new one from starting.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
fi

log "starting dockerd (log: /tmp/dockerd.log)"
setsid dockerd >/tmp/dockerd.log 2>&1 < /dev/null &

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        log "docker engine up: $(docker version --format 'server {{.Server.Version}}' 2>/dev/null || true)"
        exit 0
    fi
    sleep 1
done

log "ERROR: docker engine did not come up within 60 s; last lines of /tmp/dockerd.log:"
tail -n 40 /tmp/dockerd.log >&2 || true
exit 1
