"""The rules harden reports, one catalogue for SARIF, `harden rules` and `harden explain`.

Three kinds of rule:

* a control (`harden.<control>`, from the pass registry): a service lacks that hardening and
  harden would add it (a pending change), or left it out on purpose (a skip, reported as a
  suppressed result with its reason);
* a risk (`harden.finding.<kind>`, the kinds of `model.FINDINGS`): something harden never
  fixes by itself — `privileged: true`, a host namespace, the Docker socket, ... A risk of
  level `error` fails the run unless the service accepts it with a reason
  (`x-harden: {accept: {<kind>: "<reason>"}}`);
* `harden.error`: the file could not be hardened (bad input, a refused write).

`harden explain` takes any of these ids, with or without the `harden.` / `harden.finding.`
prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .model import FINDINGS

HOME = "https://harden.invalid"  # the project's documentation site; rule help links into docs/rules
CONTROL_PREFIX = "harden."
RISK_PREFIX = "harden.finding."
ERROR_RULE = "harden.error"


@dataclass(frozen=True)
class Rule:
    id: str  # SARIF rule id
    kind: str  # "control" | "risk" | "error"
    key: str  # control id, risk kind, or "error"
    name: str  # PascalCase, as SARIF `name`
    short: str  # one line
    full: str  # a paragraph
    help: str  # markdown: what to do
    level: str  # SARIF level: error | warning | note
    severity: str  # GitHub's security-severity, 0.0 .. 10.0
    tags: tuple[str, ...]
    advice: str = ""  # what to do, for a risk

    def explain(self) -> str:
        """What `harden explain` prints for a risk or the error rule (a control prints its pass's docstring)."""
        out = [f"{self.key}: {self.short}", "", self.full]
        if self.advice:
            out += ["", f"What to do: {self.advice}"]
        if self.kind == "risk":
            out += ["", "harden never changes this by itself. Where it is deliberate, accept it in the service, with the reason:",
                    "", "    x-harden:", "      accept:", f'        {self.key}: "<why this service needs it>"']
        return "\n".join(out)

    def footer(self) -> str:
        fails = {"risk": " A risk of level error fails the run unless accepted (see --fail-on).", "control": " A pending change fails `check` (see --fail-on)."}
        return f"Rule {self.id}: level {self.level}, security-severity {self.severity}.{fails.get(self.kind, '')}"

    @property
    def help_uri(self) -> str:
        return f"{HOME}/rules#{self.id}"


# Risk kinds: (short, full, what to do, level, security-severity, CIS Docker Benchmark reference)
_RISKS: dict[str, tuple[str, str, str, str, str, str]] = {
    "privileged": (
        "The service runs privileged.",
        "`privileged: true` gives the container every capability, every host device and no "
        "seccomp, AppArmor or SELinux confinement: a process in it can take over the host.",
        "Remove `privileged: true`; grant the few capabilities (`cap_add`) or devices (`devices`) "
        "the service really needs.",
        "error", "9.0", "CIS-5.4"),
    "host_namespace": (
        "The service shares a namespace with the host.",
        "`network_mode: host`, `pid: host`, `ipc: host`, `uts: host`, `userns_mode: host` or "
        "`cgroup: host` removes the isolation between the container and the host for that "
        "namespace: host network services, host processes, host shared memory.",
        "Use a Compose network and published ports instead of the host network; drop the other "
        "`host` modes unless the service is a host agent you trust.",
        "error", "8.0", "CIS-5.9"),
    "docker_socket": (
        "The service mounts the Docker socket.",
        "Whoever can talk to the Docker socket can start a privileged container with the host's "
        "root filesystem mounted: the socket is root on the host.",
        "Remove the mount, or put a filtering proxy (read-only API subset) between the service "
        "and the socket; accept it with a reason where the service is a trusted agent.",
        "error", "9.0", "CIS-5.31"),
    "unconfined": (
        "A kernel confinement (seccomp, AppArmor) is turned off.",
        "`security_opt: [seccomp:unconfined]` or `apparmor:unconfined` removes the kernel's "
        "filter of system calls or the mandatory access control profile.",
        "Remove the `unconfined` entry; if a system call is missing, use a custom seccomp "
        "profile that allows only that call.",
        "error", "7.5", "CIS-5.21"),
    "dangerous_cap": (
        "The service adds a capability that is close to root.",
        "`cap_add` keeps a capability such as SYS_ADMIN, NET_ADMIN or SYS_PTRACE that lets a "
        "process break out of or around the container. harden keeps what the author added; "
        "review whether it is needed.",
        "Remove the capability from `cap_add` unless the service cannot work without it.",
        "warning", "6.5", "CIS-5.3"),
    "weakened": (
        "An override file loosens a service defined in another file.",
        "A file that Compose merges over the base (`compose.override.yaml`, "
        "`docker-compose.<env>.yml`) sets `privileged: true`, `read_only: false`, `cap_add: [ALL]` "
        "or a root user on a service the base file hardens: the merged project runs loosened.",
        "Remove the loosening key from the override, or move the exception into the base file "
        "with its reason.",
        "error", "7.0", "CIS-5"),
    "unmounted_volume": (
        "The image keeps data in a VOLUME the service does not mount.",
        "The image declares a VOLUME and the service mounts nothing there: the data lives in an "
        "anonymous volume that `docker compose down -v` deletes.",
        "Mount a named volume at that path.",
        "warning", "2.0", "reliability"),
    "relaxed": (
        "Configuration relaxes the checklist for this service.",
        "A profile skips a control, or the profile or `x-harden` adds a capability, for this "
        "service: it runs with less than the checklist on purpose. Reported so that a reviewer "
        "sees every relaxation and where it was asked for.",
        "Nothing, where the relaxation is intended; otherwise remove it from the profile or "
        "`x-harden`.",
        "note", "3.0", "CIS-5"),
}

# Controls: security-severity and the CIS Docker Benchmark section of each.
_CONTROLS: dict[str, tuple[str, str]] = {
    "user": ("7.0", "CIS-4.1"),
    "read_only": ("5.0", "CIS-5.13"),
    "capabilities": ("6.0", "CIS-5.3"),
    "no_new_privileges": ("6.0", "CIS-5.25"),
    "resources": ("4.0", "CIS-5.10"),
}


def _pascal(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))


def _doc_body(doc: str) -> str:
    """A pass module's docstring without its first line (the id and a summary)."""
    lines = (doc or "").strip().splitlines()
    return "\n".join(lines[1:]).strip()


def _control_rule(module) -> Rule:  # noqa: ANN001 (a pass module)
    severity, cis = _CONTROLS.get(module.ID, ("5.0", "CIS"))
    doc = (module.__doc__ or "").strip()
    first = doc.splitlines()[0] if doc else module.SUMMARY
    headline = first.split(":", 1)[1].strip() if ":" in first else first
    return Rule(
        id=CONTROL_PREFIX + module.ID, kind="control", key=module.ID, name=_pascal(module.ID),
        short=module.SUMMARY, full=headline[:1].upper() + headline[1:],
        help=f"**{module.ID}**: {module.SUMMARY}\n\n{_doc_body(doc)}\n\nRun `harden fix` to apply it, "
             f"or skip it with a reason: `x-harden: {{skip: [{module.ID}]}}`.",
        level="warning", severity=severity, tags=("security", "docker-compose", "hardening", cis))


def _risk_rule(kind: str) -> Rule:
    short, full, todo, level, severity, ref = _RISKS[kind]
    tags = ("docker-compose", ref) if ref == "reliability" else ("security", "docker-compose", ref)
    return Rule(
        id=RISK_PREFIX + kind, kind="risk", key=kind, name=_pascal(kind), short=short, full=full,
        help=f"**{kind}**: {short}\n\n{full}\n\n{todo}\n\nharden never changes this by itself. Where it is "
             f"deliberate, accept it in the service with the reason:\n\n```yaml\nx-harden:\n  accept:\n"
             f"    {kind}: \"<why this service needs it>\"\n```",
        level=level, severity=severity, tags=tags, advice=todo)


ERROR = Rule(
    id=ERROR_RULE, kind="error", key="error", name="FileNotHardened",
    short="The file could not be hardened.",
    full="harden could not read or harden the file (bad YAML, not a Compose file, bad x-harden, a "
         "refused write); the message says what to fix. Nothing was written to it.",
    help="**error**: the file could not be hardened; the message names the line and what to fix.",
    level="error", severity="0.0", tags=("harden",))


def all_rules() -> list[Rule]:
    """Every rule, controls in pass order, then risks, then `harden.error`."""
    from .passes import PASSES

    return [_control_rule(m) for m in PASSES] + [risk(k) for k in FINDINGS] + [ERROR]


def by_id() -> dict[str, Rule]:
    return {r.id: r for r in all_rules()}


def control(control_id: str) -> Rule:
    return by_id()[CONTROL_PREFIX + control_id]


def risk(kind: str) -> Rule:
    return _risk_rule(kind) if kind in _RISKS else _unknown_risk(kind)


def _unknown_risk(kind: str) -> Rule:
    """A risk kind this catalogue does not describe yet: reported as an error-level risk."""
    return Rule(id=RISK_PREFIX + kind, kind="risk", key=kind, name=_pascal(kind), short=f"Risk: {kind}.",
                full=f"Risk: {kind}.", help=f"**{kind}**", level="error", severity="7.0",
                tags=("security", "docker-compose"))


def lookup(name: str) -> Optional[Rule]:
    """The rule `name` stands for: a SARIF rule id (`harden.user`, `harden.finding.privileged`),
    a control id (`user`) or a risk kind (`docker_socket`); None when it is none of these."""
    rules = by_id()
    for candidate in (name, CONTROL_PREFIX + name, RISK_PREFIX + name):
        if candidate in rules:
            return rules[candidate]
    return None


def names() -> list[str]:
    """Every name `lookup` takes (for did-you-mean)."""
    return [n for r in all_rules() for n in (r.id, r.key)]
