"""Swarm stack files: what `docker stack deploy` accepts differs from `docker compose up`.

A stack file is recognised by the deploy keys only swarm acts on (`placement`,
`update_config`, `rollback_config`, `endpoint_mode`, `mode: global`). For it, limits go
under `deploy.resources.limits` (`mem_limit`, `cpus`, `pids_limit` are "forbidden
properties" there) with `cpus` as a string, `pids` only from file format 3.9 on, and
`security_opt` is ignored by swarm, so no-new-privileges is reported, not written.
"""

from __future__ import annotations

from typing import Any

_SWARM_ONLY = ("placement", "update_config", "rollback_config", "endpoint_mode")


def is_stack(tree: Any) -> bool:
    """True when a service of this document uses deploy keys only swarm acts on."""
    services = tree.get("services") if isinstance(tree, dict) else None
    for service in services.values() if isinstance(services, dict) else ():
        deploy = service.get("deploy") if isinstance(service, dict) else None
        if isinstance(deploy, dict) and (any(k in deploy for k in _SWARM_ONLY) or str(deploy.get("mode", "")).strip() == "global"):
            return True
    return False


def takes_pids(tree: Any) -> bool:
    """`deploy.resources.limits.pids` is in the stack file format from 3.9 (and with no
    `version:`, the newest format applies)."""
    version = tree.get("version") if isinstance(tree, dict) else None
    if version is None:
        return True
    try:
        major, _, minor = str(version).strip().partition(".")
        return (int(major), int(minor or 0)) >= (3, 9)
    except ValueError:
        return True
