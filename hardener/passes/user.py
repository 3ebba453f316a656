"""user: run the service as a non-root user.

Why: a process that is root in the container is root on the host's kernel; one escape or
a writable host mount is a host compromise. CIS Docker Benchmark 4.1 ("Ensure that a
user for the container has been created"), OWASP Docker Security Cheat Sheet rule #2
("Set a user").

Before → after:

    web:                      web:
      image: myapp              image: myapp
                                user: "1000:1000"

The value comes from the profile (`user`), or from the image knowledge entry for
the image (postgres → "999:999", grafana → "472:0"), or from `x-harden.user`. It is always
written quoted: YAML 1.1 readers turn `1000:50` into the number 60050.

What can break: files the process must write (volumes, bind mounts) must be writable by
that uid; entrypoints that start as root to `chown` and drop privileges skip that step
under `user:`, so existing data volumes must already belong to the uid.

Kept as written: any existing `user` (also `${VAR}` and values inherited through `<<:`);
an explicit root user is reported. Skipped for `privileged: true` services.
Options: profile `user`; `x-harden: {user: "uid:gid"}`; `--skip user`.
"""

from __future__ import annotations

from ..model import Change, Op, Skip
from ..settings import Settings, evidence
from ..values import is_root_user, is_true
from ..view import ServiceView

ID = "user"
SUMMARY = "Run as a non-root user (quoted uid:gid)."
#: A value resting on the profile default alone can stop a service: reports list it for review.
REVIEW = True

#: Schema of the profile section this pass reads (`profile.schema.json` gets it).
PROFILE = {"user": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$"}}
#: Schema of the `x-harden` keys this pass reads (`x-harden.schema.json` gets it).
X_HARDEN = {
    "user": {"type": ["string", "integer"], "minimum": 0,
             "pattern": r"^([A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?|.*\$.*)$",
             "errorMessage": {"pattern": "must be uid[:gid] or name[:group], got {value}"}},
}


def plan(service: ServiceView, settings: Settings) -> list[Change | Skip]:
    if is_true(service.data.get("privileged")):
        return [Skip(ID, service.name, "privileged: true service; left as it is (see the privileged finding)", line=service.line)]
    if service.has("user"):
        value = str(service.data["user"])
        if is_root_user(service.data["user"]):
            return [Skip(ID, service.name, f"runs as root by explicit user: {value!r}; kept", line=service.line_of("user"))]
        return []
    caveat = "volumes and bind mounts must be writable by this uid; root-then-drop entrypoints skip their chown"
    source = settings.sources.get("user", "profile")
    return [Change(ID, service.name, ("user",), Op.SET, settings.user, f"non-root user from {source}", caveat=caveat, line=service.line,
                   evidence=evidence(settings, "user"))]
