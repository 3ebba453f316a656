"""What the file asks for: the hardening of one service, read from the model `docker compose
config --format json` prints (interpolated, merged, normalised), with the value semantics
of `hardener.values`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import values


@dataclass
class Expect:
    """The hardening one service asks for (from `docker compose config`)."""

    user: str | None
    read_only: bool
    drop_all: bool
    cap_add: list[str]
    no_new_privileges: bool
    memory: int | None
    nano_cpus: int | None
    pids: int | None
    healthcheck: bool

    @property
    def keeps_root(self) -> bool:
        """No user asked for (none, or `:gid` without a name), or a root one."""
        return self.user is None or not self.user.split(":")[0] or values.is_root_user(self.user)

    @property
    def asks_nothing(self) -> bool:
        return self.keeps_root and not (self.read_only or self.drop_all or self.no_new_privileges or self.memory or self.nano_cpus or self.pids)


def expectations(service: dict[str, Any]) -> Expect:
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    memory = values.memory_bytes(service.get("mem_limit", limits.get("memory")))
    cpus = values.cpus(service.get("cpus", limits.get("cpus")))
    pids = values.pids(service.get("pids_limit", limits.get("pids")))
    health = service.get("healthcheck") or {}
    return Expect(
        user=str(service["user"]) if service.get("user") not in (None, "") else None,
        read_only=values.is_true(service.get("read_only")),
        drop_all="ALL" in {values.cap_name(c) for c in service.get("cap_drop") or []},
        cap_add=[values.cap_name(c) for c in service.get("cap_add") or []],
        no_new_privileges=values.no_new_privileges(service.get("security_opt") or []) == "true",
        memory=int(memory) if memory else None,
        nano_cpus=round(cpus * 1e9) if cpus else None,
        pids=pids if pids and pids > 0 else None,
        healthcheck=bool(health.get("test")) and not values.is_true(health.get("disable")),
    )
