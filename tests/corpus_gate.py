"""The real-world gate: harden every corpus file and judge the result.

Used by tests/test_corpus.py (which asserts on the counts) and runnable by hand:

    python tests/corpus_gate.py [--limit N]

For every file: no crash; every untouched line byte-identical; output loads to original +
changes and is idempotent (the core's safety net, re-checked here); and, where the original
passes `docker-compose config` on its own, the output passes too and its normalised model
differs from the original's only in the hardening keys of each service.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hardener import oracle  # noqa: E402
from hardener.core import harden_text  # noqa: E402
from hardener.model import Status  # noqa: E402
from hardener.profile import load_profile  # noqa: E402
from invariants import lost_lines  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
SCALAR_KEYS = ("user", "read_only", "mem_limit", "cpus", "pids_limit")
LIST_KEYS = ("tmpfs", "cap_drop", "cap_add", "security_opt")
CONTROLS = ("user", "read_only", "capabilities", "no_new_privileges", "resources")


@dataclass
class FileReport:
    name: str
    status: str = ""
    message: str = ""
    crash: str = ""
    lost: int = 0
    lines: int = 0
    idempotent: bool = True
    compose_original: bool | None = None  # None: no compose binary / not run
    compose_output: bool | None = None
    compose_error: str = ""
    model_diffs: list[str] = field(default_factory=list)
    services: int = 0
    full: int = 0  # services carrying the whole checklist in the loaded model
    explained: int = 0  # services missing a control for a reason harden reported
    unexplained: list[str] = field(default_factory=list)
    evidence: Counter = field(default_factory=Counter)  # kind of evidence -> changes resting on it


def corpus_files() -> list[Path]:
    return sorted((CORPUS / "files").iterdir()) if (CORPUS / "files").is_dir() else []


def _strip_service(svc: dict[str, Any], base: dict[str, Any] | None, where: str, diffs: list[str]) -> dict[str, Any]:
    """`svc` without the hardening keys; records any existing value that was changed."""
    out = dict(svc)
    for key in SCALAR_KEYS:
        if base is not None and key in base and out.get(key) != base[key]:
            diffs.append(f"{where}.{key}: {base[key]!r} -> {out.get(key)!r}")
        out.pop(key, None)
    for key in LIST_KEYS:
        if base is not None and key in base and not all(item in (out.get(key) or []) for item in base[key]):
            diffs.append(f"{where}.{key}: lost entries of {base[key]!r}")
        out.pop(key, None)
    deploy = out.get("deploy")
    if isinstance(deploy, dict):
        deploy = dict(deploy)
        resources = dict(deploy.get("resources") or {})
        limits = dict(resources.get("limits") or {})
        old_limits = (((base or {}).get("deploy") or {}).get("resources") or {}).get("limits") or {}
        for key in ("memory", "cpus", "pids"):
            if key in old_limits and limits.get(key) != old_limits[key]:
                diffs.append(f"{where}.deploy.resources.limits.{key} changed")
            limits.pop(key, None)
        resources = {k: v for k, v in {**resources, "limits": limits}.items() if v}
        deploy = {k: v for k, v in {**deploy, "resources": resources}.items() if v}
        if deploy:
            out["deploy"] = deploy
        else:
            out.pop("deploy")
    return out


# The loader runs with a fresh, empty HOME per call (hardener/oracle.py), so `~/x` in a
# bind mount comes back as <that home>/x: a different path in each of the two models.
_ORACLE_HOME = re.compile(re.escape(tempfile.gettempdir()) + r"/harden-oracle-[^/]+/home(?=/|$)")


def same_home(value: Any) -> Any:
    """`value` with the loader's per-call home directory written as `~`."""
    if isinstance(value, str):
        return _ORACLE_HOME.sub("~", value)
    if isinstance(value, dict):
        return {k: same_home(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_home(v) for v in value]
    return value


def model_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    before, after = same_home(before), same_home(after)
    diffs: list[str] = []
    if {k: v for k, v in before.items() if k != "services"} != {k: v for k, v in after.items() if k != "services"}:
        diffs.append("top level (networks / volumes / secrets / ...) changed")
    old, new = before.get("services") or {}, after.get("services") or {}
    if set(old) != set(new):
        diffs.append(f"services differ: {sorted(set(old) ^ set(new))}")
    for name in set(old) & set(new):
        a = _strip_service(old[name], None, name, diffs)
        b = _strip_service(new[name], old[name], name, diffs)
        if a != b:
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            diffs.append(f"{name}: non-hardening keys changed: {keys}")
    return diffs


def missing_controls(svc: dict[str, Any]) -> list[str]:
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    user = str(svc.get("user") or "").strip()
    checks = {
        "user": bool(user) and user.split(":")[0] not in ("0", "root"),
        "read_only": svc.get("read_only") is True,
        "capabilities": "ALL" in [str(c).upper() for c in svc.get("cap_drop") or []],
        "no_new_privileges": any(str(o).replace("=", ":").startswith("no-new-privileges") and not str(o).endswith("false") for o in svc.get("security_opt") or []),
        "resources": bool(svc.get("mem_limit") or limits.get("memory"))
        and bool(svc.get("cpus") or limits.get("cpus"))
        and bool(svc.get("pids_limit") or limits.get("pids")),
    }
    return [c for c, ok in checks.items() if not ok]


def judge(path: Path, use_compose: bool = True) -> FileReport:
    report = FileReport(path.name)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        report.status, report.message = "error", "not UTF-8"
        return report
    report.lines = text.count("\n") + 1
    profile = load_profile("baseline")
    try:
        result = harden_text(text, profile)
    except Exception as exc:  # a crash is what the gate exists to catch
        report.crash = f"{type(exc).__name__}: {exc}"
        return report
    report.status, report.message = result.status.value, result.message
    if result.status is not Status.CHANGED:
        return report
    report.evidence = Counter(c.evidence.split(":", 1)[0] for c in result.changes)
    report.lost = len(lost_lines(text, result.text))
    again = harden_text(result.text, profile)
    report.idempotent = again.status is Status.UNCHANGED and again.text == result.text
    if not use_compose or oracle.compose_binary() is None:
        return report
    project = str(path.parent)
    before = oracle.config(text, project, as_json=True)
    report.compose_original = before.ok
    if not before.ok:
        return report
    after = oracle.config(result.text, project, as_json=True)
    report.compose_output = after.ok
    if not after.ok:
        report.compose_error = after.error
        return report
    report.model_diffs = model_differences(before.model, after.model)
    skipped = {(s.service, s.control) for s in result.skips}
    original_services = before.model.get("services") or {}
    for name, svc in (after.model.get("services") or {}).items():
        report.services += 1
        missing = missing_controls(svc)
        if not missing:
            report.full += 1
            continue
        # A control is explained when harden reported a skip, or the author had set it
        # (kept as written, e.g. `user: ${UID}` or an existing cap_drop without ALL).
        reasons = [c for c in missing if (name, c) not in skipped and not _author_set(original_services.get(name, {}), c)]
        if reasons:
            report.unexplained.append(f"{name}: {', '.join(reasons)}")
        else:
            report.explained += 1
    return report


def _author_set(svc: dict[str, Any], control: str) -> bool:
    keys = {
        "user": ("user",),
        "read_only": ("read_only",),
        "capabilities": ("cap_drop",),
        "no_new_privileges": ("security_opt",),
        "resources": ("mem_limit", "cpus", "pids_limit", "deploy"),
    }[control]
    return any(k in svc for k in keys)


def run(limit: int | None = None, jobs: int | None = None) -> list[FileReport]:
    files = corpus_files()[:limit]
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
        return list(pool.map(judge, files, chunksize=8))


def summarize(reports: list[FileReport]) -> dict[str, Any]:
    statuses = Counter(r.status for r in reports if not r.crash)
    compose_checked = [r for r in reports if r.compose_original]
    return {
        "files": len(reports),
        "crashes": sum(1 for r in reports if r.crash),
        **{f"status_{k}": v for k, v in sorted(statuses.items())},
        "lines_in_changed_files": sum(r.lines for r in reports if r.status == "changed"),
        "lost_lines": sum(r.lost for r in reports),
        "not_idempotent": sum(1 for r in reports if not r.idempotent),
        "compose_valid_originals": len(compose_checked),
        "compose_valid_outputs": sum(1 for r in compose_checked if r.compose_output),
        "unexpected_model_differences": sum(len(r.model_diffs) for r in reports),
        "services_checked": sum(r.services for r in reports),
        "services_full_checklist": sum(r.full for r in reports),
        "services_missing_a_control_with_reason": sum(r.explained for r in reports),
        "services_missing_a_control_unexplained": sum(len(r.unexplained) for r in reports),
        **{f"evidence_{kind}": n for kind, n in sorted(sum((r.evidence for r in reports), Counter()).items())},
    }


if __name__ == "__main__":
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    reports = run(limit)
    for r in reports:
        if r.crash or r.lost or not r.idempotent or r.compose_output is False or r.model_diffs or r.unexplained:
            print(r.name, r.crash, r.lost, r.idempotent, r.compose_error, r.model_diffs[:3], r.unexplained[:3])
    errors = Counter(r.message for r in reports if r.status in ("error", "skipped"))
    for message, count in errors.most_common():
        print(f"{count:4} {message}")
    for key, value in summarize(reports).items():
        print(f"{key:42} {value}")
