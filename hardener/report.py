"""The report of a run: counts, messages, the exit code, and the writers (text, JSON,
SARIF, GitHub workflow annotations).

`Report` is what every command hands its outcomes to; the command line prints what it
returns (`deliver`) and exits with `Report.exit_code`.

Exit codes (`ExitCode`): 0 done or nothing to do · 1 the run fails on what it found ·
2 error (bad input, usage, refused write, could not run). What fails a run is
`--fail-on` (`FailOn`):

* `change` (the default): changes pending (`check`, `fix --diff`) or a risk of level
  `error` that the service does not accept;
* `risk`: only such a risk;
* `never`: nothing (`--exit-zero` says the same); errors still exit 2.

A risk is accepted, with its reason, by the service it is in:
`x-harden: {accept: {docker_socket: "the proxy reads container labels"}}`; it is then
reported as suppressed, with that reason, in every format, and never fails the run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Optional

from . import __version__, rules, sarif
from .files import FileOutcome
from .model import Change, Finding, Result, Status
from .output import plural, style

JSON_FORMAT = 1  # the version of the JSON report's shape (docs/report.schema.json)


class ExitCode(IntEnum):
    """Exit codes of every command."""

    OK = 0  # done, or nothing to do
    PENDING = 1  # the run fails on what it found (see FailOn), or a verification failed
    ERROR = 2  # bad input, usage, refused write, could not run


class FailOn(str, Enum):
    """What makes a run exit 1 (see the module docstring)."""

    CHANGE = "change"
    RISK = "risk"
    NEVER = "never"


def accepted_reason(result: Result, finding: Finding) -> Optional[str]:
    """The reason the service gives for accepting this risk (`x-harden.accept.<kind>`), or None."""
    service = (result.planned or {}).get(finding.service)
    block = service.get("x-harden") if isinstance(service, dict) else None
    accept = block.get("accept") if isinstance(block, dict) else None
    reason = accept.get(finding.kind) if isinstance(accept, dict) else None
    return reason.strip() if isinstance(reason, str) and reason.strip() else None


@dataclass(frozen=True)
class Risk:
    path: str
    finding: Finding
    accepted: Optional[str]  # the reason the service accepts it, or None

    @property
    def rule(self) -> rules.Rule:
        return rules.risk(self.finding.kind)

    @property
    def fails(self) -> bool:
        """Fails the run (unless --fail-on never): level error and not accepted."""
        return self.accepted is None and self.rule.level == "error"

    def line(self) -> str:
        f = self.finding
        head = f"{self.path}:{f.line or '?'}: {f.service}: risk [{f.kind}]"
        if self.accepted:
            return f"{head} accepted: {self.accepted} ({f.message})"
        return f"{head} {f.message}" + ("" if self.fails else " (review)")


@dataclass(frozen=True)
class Report:
    """The outcomes of one run of `fix` or `check`."""

    outcomes: list[FileOutcome]
    verb: str  # "hardened" / "would change"
    pending_is_failure: bool  # `check` and `fix --diff`: pending changes are what --fail-on change fails on
    fail_on: FailOn = FailOn.CHANGE
    root: Optional[str] = None  # paths in SARIF / GitHub annotations are relative to it (default: the working directory)
    command: str = ""
    _risks: list[Risk] = field(default_factory=list, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._risks.extend(Risk(o.path, f, accepted_reason(o.result, f)) for o in self.outcomes for f in o.result.findings)

    # --- what was found ------------------------------------------------------------------

    def risks(self) -> list[Risk]:
        return list(self._risks)

    def errors(self) -> list[str]:
        return [error_line(o) for o in self.outcomes if o.result.status is Status.ERROR]

    def findings(self) -> list[str]:
        """One line per risk, accepted ones with their reason."""
        return [risk.line() for risk in self._risks]

    def pending(self) -> int:
        return sum(1 for o in self.outcomes if o.result.status is Status.CHANGED)

    @property
    def exit_code(self) -> ExitCode:
        if any(o.result.status is Status.ERROR for o in self.outcomes):
            return ExitCode.ERROR
        if self.fail_on is FailOn.NEVER:
            return ExitCode.OK
        if any(risk.fails for risk in self._risks):
            return ExitCode.PENDING
        if self.fail_on is FailOn.CHANGE and self.pending_is_failure and self.pending():
            return ExitCode.PENDING
        return ExitCode.OK

    def totals(self) -> dict[str, int]:
        counts = Counter(o.result.status for o in self.outcomes)
        return {
            "files": len(self.outcomes),
            "changed": counts[Status.CHANGED],
            "unchanged": counts[Status.UNCHANGED],
            "skipped": counts[Status.SKIPPED],
            "errors": counts[Status.ERROR],
            "written": sum(1 for o in self.outcomes if o.written),
            "services": sum(o.result.services for o in self.outcomes),
            "changes": sum(o.change_count for o in self.outcomes if o.result.status is Status.CHANGED),
            "skips": sum(len(o.result.skips) for o in self.outcomes if o.result.status is not Status.ERROR),
            "risks": len(self._risks),
            "risks_accepted": sum(1 for r in self._risks if r.accepted),
            "risks_failing": sum(1 for r in self._risks if r.fails),
        }

    def summary(self) -> str:
        t = self.totals()
        parts = [f"{t['changed']} {self.verb}", f"{t['unchanged']} unchanged", f"{t['skipped']} skipped", plural(t["errors"], "error")]
        risks = plural(t["risks"], "risk") + (f" ({t['risks_accepted']} accepted)" if t["risks_accepted"] else "")
        return f"harden: {plural(t['files'], 'file')}: " + ", ".join(parts) + f"; {plural(t['changes'], 'change')}, {risks}"

    # --- writers -------------------------------------------------------------------------

    def render(self, fmt: str, *, errors: bool = True, colour: bool = False, verbose: bool = False) -> str:
        """The report in `fmt` (text, json, sarif, github). `errors=False`: the text report
        without the error lines (they go to stderr once)."""
        if fmt == "text":
            return text(self, errors=errors, colour=colour, verbose=verbose)
        if fmt == "json":
            return as_json(self)
        if fmt == "sarif":
            return sarif.render(self.outcomes, accepted_reason, self.root, int(self.exit_code))
        if fmt == "github":
            return github(self)
        raise ValueError(f"unknown report format {fmt!r}")


def summary(outcomes: list[FileOutcome], verb: str) -> str:
    return Report(outcomes, verb, False).summary()


def error_line(outcome: FileOutcome) -> str:
    """`PATH:LINE:COL: error: MESSAGE`, the position where it is known."""
    r = outcome.result
    where = "".join(f":{n}" for n in (r.line, r.col if r.line else None) if n)
    return f"{outcome.path}{where}: error: {r.message}"


def _risks_by_path(rep: Report) -> dict[str, list[Risk]]:
    risks: dict[str, list[Risk]] = {}
    for risk in rep.risks():
        risks.setdefault(risk.path, []).append(risk)
    return risks


def text(rep: Report, *, errors: bool = True, colour: bool = False, verbose: bool = False) -> str:
    out = []
    risks = _risks_by_path(rep)
    for o in rep.outcomes:
        r = o.result
        path = style(o.path, "path", colour)
        if r.status is Status.ERROR:
            if errors:
                out.append(style(error_line(o), "error", colour))
            continue
        if r.status is Status.SKIPPED:
            out.append(f"{path}: skipped: {r.message}")
            continue
        profile = f" (profile {o.profile})" if o.profile else ""
        out.append(f"{path}: {plural(len(r.changes), 'change')}, {plural(r.services, 'service')}{profile}")
        for c in r.changes:
            caveat = f"  ⚠ {c.caveat}" if c.caveat else ""
            why = f" — {c.reason}" if verbose and c.reason else ""
            out.append(f"  {o.path}:{c.line or '?'}: {c.service}: " + style(f"[{c.control}]", "change", colour)
                       + f" {c.describe()} ({_evidence(c)}){caveat}{why}")
        for s in r.skips:
            out.append(f"  {o.path}:{s.line or '?'}: {s.service}: [{s.control}] skipped: {s.reason}")
        for risk in risks.get(o.path, []):
            kind = "accepted" if risk.accepted else "risk" if risk.fails else "warning"
            out.append("  " + style(risk.line(), kind, colour))
        for service, entry in r.matches:
            out.append(f"  {service}: image knowledge entry '{entry}'")
    return "\n".join(out) + ("\n" if out else "")


def _evidence(change: Change) -> str:
    return "unverified: profile default" if _review(change) else change.evidence


def _review(change: Change) -> bool:
    from .passes import BY_ID

    return change.unverified and getattr(BY_ID.get(change.control), "REVIEW", True)


def unverified(outcomes: list[FileOutcome]) -> list[str]:
    """One line per change whose value rests on the profile default alone: a reviewer
    reads these first."""
    return [f"{o.path}:{c.line or '?'}: {c.service}: [{c.control}] {c.describe()}"
            for o in outcomes if o.result.status is Status.CHANGED for c in o.result.changes if _review(c)]


def as_json(rep: Report) -> str:
    """The JSON report, shape `JSON_FORMAT` (docs/report.schema.json)."""
    risks: dict[int, list[Risk]] = {}
    by_finding = iter(rep.risks())
    for index, o in enumerate(rep.outcomes):
        risks[index] = [next(by_finding) for _ in o.result.findings]

    def record(index: int, o: FileOutcome) -> dict[str, Any]:
        r = o.result
        return {
            "path": o.path,
            "status": r.status.value,
            "written": o.written,
            "profile": o.profile or None,
            "message": r.message or None,
            "line": r.line,
            "column": r.col,
            "failure": r.failure.value if r.failure else None,
            "services": r.services,
            "changes": [
                {"control": c.control, "rule": rules.CONTROL_PREFIX + c.control, "service": c.service, "path": list(c.path), "op": c.op.value,
                 "new": list(c.new) if isinstance(c.new, tuple) else c.new, "reason": c.reason, "caveat": c.caveat, "line": c.line,
                 "evidence": c.evidence, "unverified": _review(c)}
                for c in r.changes
            ],
            "skips": [{"control": s.control, "service": s.service, "reason": s.reason, "line": s.line} for s in r.skips],
            "findings": [{"kind": k.finding.kind, "rule": k.rule.id, "level": k.rule.level, "service": k.finding.service,
                          "message": k.finding.message, "line": k.finding.line, "accepted": k.accepted, "fails": k.fails}
                         for k in risks[index]],
            "images": {service: entry for service, entry in r.matches},
        }

    document = {
        "format": JSON_FORMAT,
        "tool": "harden",
        "version": __version__,
        "command": rep.command or None,
        "fail_on": rep.fail_on.value,
        "exit_code": int(rep.exit_code),
        "totals": rep.totals(),
        "files": [record(i, o) for i, o in enumerate(rep.outcomes)],
    }
    return json.dumps(document, indent=2) + "\n"


def _annotation_value(text: str, is_property: bool) -> str:
    """Escaped as GitHub workflow commands need it."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if is_property else text


def github(rep: Report) -> str:
    """GitHub Actions workflow commands: `::error file=F,line=N,title=T::message` per
    result; pending changes are warnings (changes `fix` wrote, notices), risks errors or
    warnings by their level, accepted risks notices."""
    root = os.path.abspath(rep.root or os.getcwd())

    def where(path: str) -> str:
        if path in ("-", ""):
            return "stdin"
        relative = os.path.relpath(os.path.abspath(path), root)
        return path if relative.startswith(os.pardir) else relative

    def command(level: str, path: str, line: Optional[int], title: str, message: str) -> str:
        props = [f"file={_annotation_value(where(path), True)}"]
        if line:
            props.append(f"line={line}")
        props.append(f"title={_annotation_value(title, True)}")
        return f"::{level} {','.join(props)}::{_annotation_value(message, False)}"

    out = []
    risks = _risks_by_path(rep)
    for o in rep.outcomes:
        r = o.result
        if r.status is Status.ERROR:
            out.append(command("error", o.path, r.line, rules.ERROR_RULE, r.message))
            continue
        if r.status is Status.CHANGED:
            groups: dict[tuple[str, str], list[Change]] = {}
            for c in r.changes:
                groups.setdefault((c.service, c.control), []).append(c)
            for (service, control), changes in groups.items():
                line = min((c.line for c in changes if c.line), default=None)
                keys = "; ".join(c.describe() for c in changes)
                if o.written:  # fix made it: said, not warned about
                    out.append(command("notice", o.path, line, rules.CONTROL_PREFIX + control, f"{service}: {control} applied: harden set {keys}"))
                else:
                    out.append(command("warning", o.path, line, rules.CONTROL_PREFIX + control, f"{service}: {control} not applied; harden would set {keys}"))
        for risk in risks.get(o.path, []):
            f = risk.finding
            level = "notice" if risk.accepted else "error" if risk.rule.level == "error" else "warning"
            message = f"{f.service}: {f.message}" + (f" (accepted: {risk.accepted})" if risk.accepted else "")
            out.append(command(level, o.path, f.line, risk.rule.id, message))
    return "\n".join(out) + ("\n" if out else "")


FORMATS = ("text", "json", "sarif", "github")


# Defined in delivery.py; imported from here by the command line.
from .delivery import Echo, ReportFileError, check_output_path, deliver, write_report  # noqa: E402,F401
