#!/usr/bin/env bash
# The facts e2e tests (tests/e2e/test_facts_engine.py) push an image they build to a
# registry they start themselves on 127.0.0.1:<free port> and stop afterwards: this installs
# Debian's docker-registry (registry 2.8) when it is missing. The packaged service
# (listening on :5000) is not used and is stopped and disabled (idempotent).
set -euo pipefail

log() { echo "[registry.sh] $*" >&2; }

if [ ! -x /usr/bin/docker-registry ]; then
    log "installing: docker-registry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
elif [ -x /etc/init.d/docker-registry ]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    update-rc.d docker-registry disable >/dev/null 2>&1 || true
fi

log "ready: $(/usr/bin/docker-registry --version 2>/dev/null || echo /usr/bin/docker-registry)"
