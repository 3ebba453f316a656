"""The SARIF 2.1.0 log of a run, for code scanning (GitHub, GitLab, Azure DevOps, ...).

* `tool.driver.rules` holds every rule of `rules.all_rules()` (not only those found), each
  with its descriptions, markdown help, help link, default level, `security-severity` and
  tags; every result names its rule by id and index.
* One result per (file, service, control) — all the keys a control adds to a service are
  one result, its message lists them — and one per (file, service, risk kind).
* A control left out on purpose (a skip: profile, image knowledge, `x-harden`, the
  author's comment, `--skip`) and a risk the service accepts (`x-harden.accept`) are results
  with a `suppressions` entry carrying the reason; code scanning shows them as dismissed.
* Paths are relative to `originalUriBaseIds.SRCROOT` (the directory harden ran in, or the
  one given); a file outside it keeps its absolute `file:` URI.
* `partialFingerprints["harden/v1"]` hashes the path relative to SRCROOT, the service and
  the rule id, never a line: an alert stays the same alert when lines move or the
  checkout directory changes.
* A change `fix` has written is a result of kind `pass` (level `none`): done, nothing left.
* Each result's `properties` carry the service, the control or risk kind, and for a
  pending change the keys and their `evidence` (what each value rests on).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional
from urllib.parse import quote

from . import __version__, rules
from .model import Status

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "harden/v1"


def _uri(path: str, root: str) -> tuple[str, Optional[str]]:
    """(uri, uriBaseId) of `path`: relative to `root` where it is inside it."""
    if path in ("-", ""):
        return "stdin", None
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, root)
    except ValueError:
        relative = os.pardir
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return Path(absolute).as_uri(), None
    return quote(Path(relative).as_posix()), "SRCROOT"


def _fingerprint(uri: str, service: str, rule_id: str) -> str:
    return hashlib.sha256(f"{uri}\0{service}\0{rule_id}".encode("utf-8")).hexdigest()[:32]


def _location(uri: str, base: Optional[str], line: Optional[int]) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": uri}
    if base:
        artifact["uriBaseId"] = base
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if line:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def _suppression(kind: str, reason: str) -> dict[str, Any]:
    return {"kind": kind, "status": "accepted", "justification": reason}


def _skip_kind(reason: str) -> str:
    """`inSource` where the reason is written in the Compose file itself, else `external`."""
    return "inSource" if "x-harden" in reason or "set explicitly" in reason or "explicit user" in reason else "external"


def results_of(outcome: Any, accepted_reason: Any, root: str, index: dict[str, int]) -> list[dict[str, Any]]:
    """The SARIF results of one file (`accepted_reason(result, finding)`: the reason its
    service accepts that risk, or None)."""
    r = outcome.result
    uri, base = _uri(outcome.path, root)
    out: list[dict[str, Any]] = []

    def result(rule: rules.Rule, service: str, message: str, lines: Iterable[Optional[int]], properties: dict[str, Any],
               suppressions: Optional[list[dict[str, Any]]] = None) -> None:
        known = sorted({line for line in lines if line})
        item: dict[str, Any] = {
            "ruleId": rule.id,
            "ruleIndex": index[rule.id],
            "level": rule.level,
            "message": {"text": message},
            "locations": [_location(uri, base, known[0] if known else None)],
            "partialFingerprints": {FINGERPRINT: _fingerprint(uri, service, rule.id)},
            "properties": {**({"service": service} if service else {}), **properties},
        }
        if len(known) > 1:
            item["relatedLocations"] = [{"id": i, **_location(uri, base, line), "message": {"text": f"also line {line}"}}
                                        for i, line in enumerate(known[1:], 1)]
        if suppressions:
            item["suppressions"] = suppressions
        out.append(item)

    if r.status is Status.ERROR:
        result(rules.ERROR, "", r.message or "error", [r.line], {"failure": r.failure.value if r.failure else None})
        return out
    if r.status is Status.CHANGED or r.status is Status.UNCHANGED:
        groups: dict[tuple[str, str], list[Any]] = {}
        for c in r.changes:
            groups.setdefault((c.service, c.control), []).append(c)
        for (service, control), changes in groups.items():
            rule = rules.control(control)
            keys = "; ".join(c.describe() for c in changes)
            caveats = [c.caveat for c in changes if c.caveat]
            done = f"{control} applied: harden set {keys}" if outcome.written else f"{control} not applied; harden would set {keys}"
            message = f"{service}: {done}" + (f" (caveat: {'; '.join(caveats)})" if caveats else "")
            result(rule, service, message, (c.line for c in changes), {
                "control": control,
                "changes": [{"key": ".".join(c.path), "op": c.op.value, "value": list(c.new) if isinstance(c.new, tuple) else c.new,
                             "reason": c.reason, "evidence": c.evidence, "caveat": c.caveat} for c in changes],
                "evidence": [c.evidence for c in changes],
                "written": outcome.written,
            })
            if outcome.written:  # `fix` made the change: nothing is left to do there
                out[-1]["kind"] = "pass"
                out[-1]["level"] = "none"
        for s in r.skips:
            rule = rules.control(s.control)
            result(rule, s.service, f"{s.service}: {s.control} left out on purpose: {s.reason}", [s.line],
                   {"control": s.control, "skipped": True}, [_suppression(_skip_kind(s.reason), s.reason)])
    risks: dict[tuple[str, str], list[Any]] = {}
    for f in r.findings:
        risks.setdefault((f.service, f.kind), []).append(f)
    for (service, kind), found in risks.items():
        rule = rules.risk(kind)
        reason = accepted_reason(r, found[0])
        message = f"{service}: " + "; ".join(dict.fromkeys(f.message for f in found))
        suppressions = [_suppression("inSource", reason)] if reason else None
        result(rule, service, message, (f.line for f in found), {"risk": kind, "accepted": reason}, suppressions)
    return out


def render(outcomes: list[Any], accepted_reason: Any, root: Optional[str] = None, exit_code: Optional[int] = None) -> str:
    root = os.path.abspath(root or os.getcwd())
    catalogue = rules.all_rules()
    index = {rule.id: i for i, rule in enumerate(catalogue)}
    results: list[dict[str, Any]] = []
    for o in outcomes:
        for item in results_of(o, accepted_reason, root, index):
            if item["ruleId"] not in index:  # a risk kind the catalogue does not hold yet
                index[item["ruleId"]] = len(catalogue)
                catalogue.append(rules.risk(item["properties"]["risk"]))
                item["ruleIndex"] = index[item["ruleId"]]
            results.append(item)
    run: dict[str, Any] = {
        "tool": {"driver": {
            "name": "harden",
            "semanticVersion": __version__,
            "version": __version__,
            "informationUri": rules.HOME,
            "rules": [_descriptor(rule) for rule in catalogue],
        }},
        "originalUriBaseIds": {"SRCROOT": {"uri": Path(root).as_uri().rstrip("/") + "/"}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    if exit_code is not None:
        run["invocations"] = [{"executionSuccessful": exit_code != 2, "exitCode": exit_code}]
    return json.dumps({"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"


def _descriptor(rule: rules.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.short},
        "fullDescription": {"text": rule.full},
        "help": {"text": rule.help.replace("**", "").replace("`", ""), "markdown": rule.help},
        "helpUri": rule.help_uri,
        "defaultConfiguration": {"level": rule.level},
        "properties": {"security-severity": rule.severity, "tags": list(rule.tags), "precision": "high",
                       "problem.severity": {"error": "error", "warning": "warning"}.get(rule.level, "recommendation")},
    }
