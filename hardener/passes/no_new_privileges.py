"""no_new_privileges: forbid gaining privileges through setuid binaries or file caps.

Why: with the kernel's no_new_privs bit set, `execve` of a setuid-root or
file-capability binary (sudo, su, ping, a planted helper) grants nothing. CIS Docker
Benchmark 5.25 ("Ensure that the container is restricted from acquiring additional
privileges"), OWASP Docker Security Cheat Sheet rule #4 ("Prevent in-container privilege
escalation").

Before → after:

    web:                      web:
      image: myapp              image: myapp
                                security_opt:
                                  - no-new-privileges:true

What can break: sudo / su inside the container, and binaries that rely on a file
capability beyond what the process already holds.

Kept as written: an existing entry in any spelling (`no-new-privileges`,
`no-new-privileges:true`, `no-new-privileges=true`) counts as set; an explicit
`no-new-privileges:false` is reported and kept; other `security_opt` entries (labels,
seccomp profiles) stay and the new entry is appended.
Options: `--skip no_new_privileges`.
"""

from __future__ import annotations

from ..model import Change, Op, Skip
from ..settings import Settings
from ..values import as_list, is_variable, no_new_privileges
from ..view import ServiceView

ID = "no_new_privileges"
SUMMARY = "security_opt: no-new-privileges:true."
#: Its one value is the same for every service: no per-service evidence to review.
REVIEW = False
ENTRY = "no-new-privileges:true"


def plan(service: ServiceView, settings: Settings) -> list[Change | Skip]:
    value = service.data.get("security_opt")
    if value is not None and not isinstance(value, list):
        return [Skip(ID, service.name, f"security_opt is not a list ({value!r}); left to the author", line=service.line_of("security_opt"))]
    if service.target == "swarm":
        return [Skip(ID, service.name, "a swarm stack file: docker stack deploy ignores security_opt, so no-new-privileges cannot be set here", line=service.line)]
    entries = as_list(value)
    current = no_new_privileges(entries)
    if current == "true" or (current is not None and is_variable(current)):
        return []
    if current is not None:
        return [Skip(ID, service.name, f"no-new-privileges:{current} set explicitly; kept", line=service.line_of("security_opt"))]
    return [Change(ID, service.name, ("security_opt",), Op.ADD, (ENTRY,), "no privilege gain through setuid / file caps",
                   caveat="sudo, su and setuid helpers stop working", line=service.line)]
