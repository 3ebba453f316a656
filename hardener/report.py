"""The report of a run: counts, messages, the exit code, and the text / JSON / SARIF writers.

`Report` is what every command hands its outcomes to; the command line only prints what
it returns and exits with `Report.exit_code`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from . import __version__
from .files import FileOutcome
from .model import Change, Status


class ExitCode(IntEnum):
    """Exit codes of every command."""

    OK = 0  # done, or nothing to do
    PENDING = 1  # changes pending (`check`, `fix --diff`), or a verification failed
    ERROR = 2  # bad input, usage, refused write, could not run


@dataclass(frozen=True)
class Report:
    """The outcomes of one run of `fix` or `check`."""

    outcomes: list[FileOutcome]
    verb: str  # "hardened" / "would change"
    pending_is_failure: bool  # `check` and `fix --diff`: pending changes exit 1

    def summary(self) -> str:
        return summary(self.outcomes, self.verb)

    def errors(self) -> list[str]:
        return [error_line(o) for o in self.outcomes if o.result.status is Status.ERROR]

    def findings(self) -> list[str]:
        return [f"{o.path}:{f.line or '?'}: {f.service}: finding [{f.kind}] {f.message}" for o in self.outcomes for f in o.result.findings]

    def render(self, fmt: str) -> str:
        return FORMATS[fmt](self.outcomes)

    @property
    def exit_code(self) -> ExitCode:
        if any(o.result.status is Status.ERROR for o in self.outcomes):
            return ExitCode.ERROR
        if self.pending_is_failure and any(o.result.status is Status.CHANGED for o in self.outcomes):
            return ExitCode.PENDING
        return ExitCode.OK


def summary(outcomes: list[FileOutcome], verb: str) -> str:
    counts = Counter(o.result.status for o in outcomes)
    changes = sum(len(o.result.changes) for o in outcomes if o.result.status is Status.CHANGED)
    findings = sum(len(o.result.findings) for o in outcomes)
    parts = [
        f"{counts[Status.CHANGED]} {verb}",
        f"{counts[Status.UNCHANGED]} unchanged",
        f"{counts[Status.SKIPPED]} skipped",
        f"{counts[Status.ERROR]} error{'s' if counts[Status.ERROR] != 1 else ''}",
    ]
    return f"harden: {len(outcomes)} file{'s' if len(outcomes) != 1 else ''}: " + ", ".join(parts) + f"; {changes} changes, {findings} findings"


def error_line(outcome: FileOutcome) -> str:
    """`PATH:LINE:COL: error: MESSAGE`, the position where it is known."""
    r = outcome.result
    where = "".join(f":{n}" for n in (r.line, r.col if r.line else None) if n)
    return f"{outcome.path}{where}: error: {r.message}"


def text(outcomes: list[FileOutcome]) -> str:
    out = []
    for o in outcomes:
        r = o.result
        if r.status is Status.ERROR:
            out.append(error_line(o))
            continue
        if r.status is Status.SKIPPED:
            out.append(f"{o.path}: skipped: {r.message}")
            continue
        profile = f" (profile {o.profile})" if o.profile else ""
        out.append(f"{o.path}: {len(r.changes)} change{'s' if len(r.changes) != 1 else ''}, {r.services} services{profile}")
        matched = dict(r.matches)
        for c in r.changes:
            caveat = f"  ⚠ {c.caveat}" if c.caveat else ""
            out.append(f"  {o.path}:{c.line or '?'}: {c.service}: [{c.control}] {c.describe()} ({_evidence(c)}){caveat}")
        for s in r.skips:
            out.append(f"  {o.path}:{s.line or '?'}: {s.service}: [{s.control}] skipped: {s.reason}")
        for f in r.findings:
            out.append(f"  {o.path}:{f.line or '?'}: {f.service}: finding [{f.kind}] {f.message}")
        for service, entry in matched.items():
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


def as_json(outcomes: list[FileOutcome]) -> str:
    def record(o: FileOutcome) -> dict[str, Any]:
        r = o.result
        return {
            "path": o.path,
            "status": r.status.value,
            "written": o.written,
            "profile": o.profile or None,
            "message": r.message or None,
            "line": r.line,
            "column": r.col,
            "services": r.services,
            "changes": [
                {"control": c.control, "service": c.service, "path": list(c.path), "op": c.op.value, "new": list(c.new) if isinstance(c.new, tuple) else c.new,
                 "reason": c.reason, "caveat": c.caveat, "line": c.line, "evidence": c.evidence}
                for c in r.changes
            ],
            "skips": [{"control": s.control, "service": s.service, "reason": s.reason, "line": s.line} for s in r.skips],
            "findings": [{"kind": f.kind, "service": f.service, "message": f.message, "line": f.line} for f in r.findings],
            "images": {service: entry for service, entry in r.matches},
        }

    return json.dumps({"tool": "harden", "version": __version__, "files": [record(o) for o in outcomes]}, indent=2) + "\n"


def as_sarif(outcomes: list[FileOutcome]) -> str:
    rules: dict[str, str] = {}
    results = []
    for o in outcomes:
        r = o.result
        items = [(f"harden.{c.control}", "warning", f"{c.service}: {c.describe()} ({c.reason}; evidence: {_evidence(c)})", c.line) for c in r.changes]
        items += [(f"harden.finding.{f.kind}", "error", f"{f.service}: {f.message}", f.line) for f in r.findings]
        if r.status is Status.ERROR:
            items.append(("harden.error", "error", r.message, r.line))
        for rule, level, message, line in items:
            rules.setdefault(rule, rule.split(".")[-1])
            location: dict[str, Any] = {"artifactLocation": {"uri": o.path}}
            if line:
                location["region"] = {"startLine": line}
            results.append({"ruleId": rule, "level": level, "message": {"text": message}, "locations": [{"physicalLocation": location}]})
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "harden", "version": __version__, "rules": [{"id": k, "name": v} for k, v in rules.items()]}},
            "results": results,
        }],
    }
    return json.dumps(sarif, indent=2) + "\n"


FORMATS = {"text": text, "json": as_json, "sarif": as_sarif}
