"""capabilities: drop every Linux capability, add back only what the image needs.

Why: Docker's default set still holds 14 capabilities (CHOWN, DAC_OVERRIDE, NET_RAW,
SETUID, ...), most of which an application never uses and an attacker can. CIS Docker
Benchmark 5.3 ("Ensure that Linux kernel capabilities are restricted within
containers"), OWASP Docker Security Cheat Sheet rule #3 ("Limit capabilities").

Before → after:

    web:                      web:
      image: nginx              image: nginx
                                cap_drop:
                                  - ALL
                                cap_add:
                                  - CHOWN
                                  - SETGID
                                  - SETUID

`cap_add` comes from the image knowledge (nginx's root master chowns its cache and drops
to a worker user; caddy's binary carries a file capability) and `x-harden.cap_add`. A
service that runs as a non-root user needs none for ordinary binaries.

What can break: an entrypoint that starts as root and calls chown / setuid fails with
"Operation not permitted" when it needs a capability nobody listed.

Kept as written: existing `cap_drop` / `cap_add` entries (new ones are appended, never
duplicated; `CAP_` prefixes and case are ignored when comparing). `cap_add` entries are
only added together with `cap_drop: [ALL]` in the same run: an author's own `cap_drop:
[ALL]` is not loosened. Skipped for `privileged: true` (it grants everything anyway; a
finding says so). Dangerous `cap_add` entries are reported, not removed.
A dangerous capability (profile `capabilities.dangerous`) is added only where the
configuration that asks for it gives the reason (`acknowledge: {SYS_ADMIN: "..."}` in the
profile, or in `x-harden`); it is then reported as a `relaxed` finding with that reason.
Options: profile `capabilities.add`; `x-harden: {cap_add: [...]}`; `--skip capabilities`.
"""

from __future__ import annotations

from ..model import Change, Op, Skip
from ..settings import Settings, evidence
from ..values import as_list, cap_name, is_true, is_variable
from ..view import ServiceView

ID = "capabilities"
SUMMARY = "cap_drop: [ALL] plus only the capabilities the image needs."
#: A value resting on the profile default alone can stop a service: reports list it for review.
REVIEW = True

_NAMES = {"type": "array", "items": {"type": "string", "pattern": "^[A-Z_]+$"}}
#: Schema of the profile section this pass reads (`profile.schema.json` gets it).
PROFILE = {"capabilities": {"type": "object", "additionalProperties": False, "properties": {"add": _NAMES, "dangerous": _NAMES}}}
#: Schema of the `x-harden` keys this pass reads (`x-harden.schema.json` gets it). A dangerous
#: capability in `cap_add` needs its reason in `acknowledge` (`settings.resolve` checks it).
X_HARDEN = {
    "cap_add": {"type": "array", "items": {"type": "string"}},
    "acknowledge": {
        "description": "Dangerous capabilities cap_add names on purpose, each with the reason: {SYS_ADMIN: \"mounts FUSE\"}.",
        "type": "object",
        "propertyNames": {"pattern": "^(CAP_|cap_)?[A-Za-z_]+$"},
        "additionalProperties": {"type": "string", "pattern": "\\S", "errorMessage": "needs the reason the capability is added (a non-empty string)"},
    },
}


def plan(service: ServiceView, settings: Settings) -> list[Change | Skip]:
    if is_true(service.data.get("privileged")):
        return [Skip(ID, service.name, "privileged: true grants every capability; cap_drop would be meaningless", line=service.line)]
    for key in ("cap_drop", "cap_add"):
        value = service.data.get(key)
        if value is not None and not isinstance(value, list):
            return [Skip(ID, service.name, f"{key} is not a list ({value!r}); left to the author", line=service.line_of(key))]
    dropped = {cap_name(c) for c in as_list(service.data.get("cap_drop"))}
    if "ALL" in dropped or any(is_variable(c) for c in dropped):
        return []
    out: list[Change | Skip] = [
        Change(ID, service.name, ("cap_drop",), Op.ADD, ("ALL",), "drop every capability",
               caveat="entrypoints that chown or switch user need the capabilities listed in cap_add", line=service.line,
               evidence=evidence(settings, "capabilities.add", "user"))
    ]
    added = {cap_name(c) for c in as_list(service.data.get("cap_add"))}
    missing = tuple(c for c in settings.cap_add if cap_name(c) not in added and "ALL" not in added)
    if missing:
        source = settings.sources.get("capabilities.add", "profile")
        out.append(Change(ID, service.name, ("cap_add",), Op.ADD, missing, f"needed by the image ({source})", line=service.line,
                          evidence=evidence(settings, "capabilities.add")))
    return out
