"""The zoo, measured: does each stack still do its job after `harden fix`?

Builds the zoo images (tests/e2e/zoo; cached by recipe hash), then for every stack: brings
the original compose.yaml up and runs its job check, runs `harden fix --format json
--report` on a copy, brings the hardened copy up and runs the job check again.  Prints one
row per stack: job before, job after, the controls `harden` changed per service (from the
JSON report), the number of changes whose `evidence` is `default` ("n/a" while the report
has no evidence field), then the failure details.  Asserts nothing; needs a Docker engine.

    .venv/bin/python tests/bench/zoo.py [STACK ...] [--jobs N]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))  # before this directory: `zoo` is the package in tests/e2e

import images  # noqa: E402  (tests/e2e/images.py)
import zoo  # noqa: E402  (tests/e2e/zoo/)

SHORT = {"user": "user", "read_only": "ro", "capabilities": "caps", "no_new_privileges": "nnp", "resources": "res"}


def _job(result) -> str:
    if result is None:
        return "-"
    return "pass" if result.ok else "FAIL"


def _controls(outcome) -> str:
    if outcome.fix is None:
        return "-"
    if outcome.fix.rc not in (0, 1):
        return f"harden exit {outcome.fix.rc}"
    parts = [f"{service}:{'+'.join(SHORT.get(c, c) for c in controls)}" for service, controls in outcome.fix.controls.items()]
    return " ".join(parts) or "(no change)"


SIGNS = re.compile(r"ERROR|FATAL|Error|denied|Read-only|not permitted|WARNING|can't|exceeds|refus", re.I)


def _evidence(run) -> str:
    """The log line that says why (the last one that looks like an error), else the last line."""
    lines = [line.strip() for line in run.diagnosis.splitlines() if line.startswith("    ")]
    return next((line for line in reversed(lines) if SIGNS.search(line)), lines[-1] if lines else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", help="stack names (default: all)")
    parser.add_argument("--blame", action="store_true",
                        help="for each stack failing after fix: rerun with each control applied alone")
    parser.add_argument("--jobs", type=int, default=2, help="stacks run at the same time (default 2)")
    args = parser.parse_args()
    unknown = [name for name in args.stacks if name not in zoo.BY_NAME]
    if unknown:
        parser.error(f"unknown stack(s) {unknown}; known: {', '.join(zoo.BY_NAME)}")
    ok, reason = images.engine_available()
    if not ok:
        print(f"no Docker engine: {reason}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    zoo.ensure_images()
    built = time.monotonic() - t0
    stacks = [zoo.BY_NAME[name] for name in args.stacks] or zoo.STACKS
    with tempfile.TemporaryDirectory(prefix="harden-zoo-bench-") as tmp:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda s: zoo.zoo_run(s, Path(tmp) / s.name), stacks))
    wall = time.monotonic() - t0

    rows = [("STACK", "JOB BEFORE", "JOB AFTER FIX", "HARDEN", "CONTROLS CHANGED (service:controls)", "DEFAULT-EVIDENCE")]
    for o in outcomes:
        if o.skipped:
            rows.append((o.stack, "skipped", "skipped", "-", o.skipped, "-"))
            continue
        evidence = "n/a" if o.fix.default_evidence is None else str(o.fix.default_evidence)
        rows.append((o.stack, _job(o.original), _job(o.hardened), f"exit {o.fix.rc}", _controls(o), evidence))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    passed = sum(1 for o in outcomes if o.hardened and o.hardened.ok)
    ran = sum(1 for o in outcomes if not o.skipped)
    print(f"\njob passes after harden fix: {passed} of {ran} stacks "
          f"(originals passing: {sum(1 for o in outcomes if o.original and o.original.ok)}); "
          f"wall {wall:.0f}s (image check/build {built:.0f}s)")
    print("\njob checks:")
    for o in outcomes:
        for run in (o.original, o.hardened):
            if run is not None:
                print(f"  {o.stack:15} {run.label:9} {'pass' if run.ok else 'FAIL'}  {run.detail[:150]}  ({run.seconds:.0f}s)")
    for o in outcomes:
        for run in (o.original, o.hardened):
            if run is not None and not run.ok:
                print(f"\n--- {o.stack}: {run.describe()}")
                if run.label == "hardened":
                    print("  " + o.fix.summary())
    if args.blame:
        failing = [zoo.BY_NAME[o.stack] for o in outcomes if o.hardened is not None and not o.hardened.ok]
        print("\neach control applied alone (harden fix --skip the other four); FAIL = breaks the job by itself:")
        with tempfile.TemporaryDirectory(prefix="harden-zoo-blame-") as tmp:
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                blames = list(pool.map(lambda s: zoo.blame(s, Path(tmp) / s.name), failing))
        for stack, runs in zip(failing, blames):
            print(f"  {stack.name:15} " + "  ".join(f"{c}:{'pass' if r.ok else 'FAIL'}" for c, r in runs.items()))
            for control, run in runs.items():
                if not run.ok:
                    evidence = _evidence(run)
                    print(f"      {control:17} {run.detail[:110]} | {evidence[:120]}")
        print(f"\nwall with --blame {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
