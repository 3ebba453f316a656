"""`harden tune FILE`: the command around the rounds (`loop.tune`).

Reads FILE and the facts of its images (as `fix` does), asks before running a stack
with host-level access (as `verify` does), runs the rounds, tears every project down
whatever happens, prints what each round showed and did, and ends with FILE written as
the same minimal patch `fix` writes (or its diff, with `--diff`), or with the report of
what could not be hardened and why (nothing written, exit 1).

What is written: only the hardening keys, as `fix` writes them. The adjustments are
observed facts handed to planning in memory, never `x-harden` in the file; each change's
evidence (`observed:...`) and each dropped control's reason are in the report. A later
`harden fix` on the tuned file keeps every value tune wrote (it never weakens); a control
tune dropped is not pinned in the file: `--report` lists the `x-harden: {skip: [...]}` that
would keep a later `fix` from trying it again.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..files import atomic_write, decode, loader_check, read_bytes, unified_diff
from ..image_lookup import FactsOptions, facts_for_text
from ..model import HardenError, Status
from ..profile import Profile
from ..verify.preflight import preflight, run_then_tear_down
from .loop import Outcome, TuneError, load, tune


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _kind(run_label: str) -> str:
    return {"original": "the original", "hardened": "fresh start", "upgrade": "upgrade in place"}.get(run_label, run_label)


def report_lines(outcome: Outcome) -> list[str]:
    """The rounds, the changes with their evidence, and what was left alone, as printed."""
    lines = ["ROUND  RUNS                            REGRESSIONS  SECONDS", ]
    for r in outcome.rounds:
        runs = ", ".join(_kind(x.label) for x in r.runs)
        lines.append(f"{r.number:<6} {runs:<31} {'-' if r.number == 0 else len(r.regressions):<12} {r.seconds:.0f}")
        for reg in r.regressions:
            lines.append(f"         regression: {reg.describe()}")
        for note in r.notes:
            lines.append(f"         adjusted: {note}")
    result = outcome.result
    if result is not None:
        lines.append("")
        lines.append("changes (evidence):")
        for c in result.changes:
            lines.append(f"  {c.service:14} {c.describe():60} {c.evidence}")
        if result.skips:
            lines.append("left alone:")
            for s in result.skips:
                lines.append(f"  {s.service:14} {s.control}: {s.reason}")
    return lines


def as_json(file: str, outcome: Outcome, written: bool) -> dict[str, Any]:
    result = outcome.result
    return {
        "file": file,
        "converged": outcome.converged,
        "written": written,
        "rounds": len(outcome.rounds) - 1,
        "seconds": round(outcome.seconds, 1),
        "round_details": [{"round": r.number, "runs": [x.label for x in r.runs], "seconds": round(r.seconds, 1),
                           "regressions": [{"service": g.service, "run": g.run, "kind": g.kind, "control": g.control,
                                            "evidence": g.evidence} for g in r.regressions],
                           "adjustments": r.notes} for r in outcome.rounds],
        "changes": [{"service": c.service, "control": c.control, "change": c.describe(), "evidence": c.evidence}
                    for c in (result.changes if result else ())],
        "skips": [{"service": s.service, "control": s.control, "reason": s.reason,
                   "pin": f"x-harden: {{skip: [{s.control}]}}"} for s in (result.skips if result else ())],
    }


def run_tune(file: str, profile: Profile, skips: frozenset[str], timeout: int, rounds: int, probes: tuple[str, ...] = (),
             diff: bool = False, assume_yes: bool = False, facts: FactsOptions = FactsOptions(), report: str | None = None) -> int:
    """Tune FILE; exit 0 written (or nothing to change), 1 not converged (or --diff with changes), 2 error."""
    try:
        data = read_bytes(file)
        original = decode(data)
    except HardenError as exc:
        _say(f"harden tune: error: {file}: {exc.message}")
        return 2
    ready = preflight("tune", file, (original,), assume_yes, lambda runner, text: load(runner.project(text)), errors=(TuneError,))
    if ready is None:
        return 2
    runner, _ = ready
    images = facts_for_text(original, facts)
    outcome: Outcome | None = None

    def work() -> int:
        nonlocal outcome
        outcome = tune(original, runner, profile, skips, images, timeout, rounds, probes)
        return 0

    code = run_then_tear_down("tune", runner, work, errors=(TuneError,))
    if outcome is None or code:
        return code
    return _finish(file, data, runner.directory, outcome, diff, report)


def _finish(file: str, data: bytes, directory: str, outcome: Outcome, diff: bool, report: str | None) -> int:
    for line in report_lines(outcome):
        print(line)
    rounds = len(outcome.rounds) - 1
    written = False
    code = 0
    if not outcome.converged or outcome.result is None:
        print("\nnot hardened: every round regressed; what is left:")
        last = outcome.rounds[-1]
        for reg in last.regressions:
            print(f"  {reg.describe()}")
        _say(f"harden tune: {file}: no hardening ran without a regression within {rounds} round(s) ({outcome.seconds:.0f} s); nothing written")
        code = 1
    else:
        result = loader_check(outcome.result, directory, True)
        if result.status is Status.ERROR:
            _say(f"harden tune: error: {file}: {result.message}")
            code = 2
        elif result.status is not Status.CHANGED:
            _say(f"harden tune: {file}: nothing to change after {rounds} round(s) ({outcome.seconds:.0f} s)")
        elif diff:
            sys.stdout.write(unified_diff(file, result))
            _say(f"harden tune: {file}: tuned in {rounds} round(s) ({outcome.seconds:.0f} s); --diff: not written")
            code = 1
        else:
            try:
                atomic_write(file, result.text.encode("utf-8"), data)
            except HardenError as exc:
                _say(f"harden tune: error: {file}: {exc.message}")
                return 2
            written = True
            _say(f"harden tune: {file}: tuned in {rounds} round(s) ({outcome.seconds:.0f} s); written")
    if report:
        with open(report, "w", encoding="utf-8") as fh:
            json.dump(as_json(file, outcome, written), fh, indent=2)
    return code
