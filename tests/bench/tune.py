"""The zoo under `harden tune`, and the broken variants under `harden verify`.

For every zoo stack (tests/e2e/zoo): `harden tune` on a copy (with the stack's exercise
probe, tests/e2e/zoo/exercise.py), then the stack's job check on the tuned file. One row
per stack: rounds, tune's wall time, job after tune, the controls tune wrote per service
next to those `harden fix` writes. With `--broken`: `harden verify --as-is` on each broken
variant (tests/e2e/zoo/broken.py): verdict, the service and control it names, the fix it
verified. Asserts nothing; needs a Docker engine. Runs one stack at a time (tune and verify
measure the stacks they run).

    .venv/bin/python tests/bench/tune.py [STACK ...] [--broken] [--no-tune]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))

import images  # noqa: E402  (tests/e2e/images.py)
import zoo  # noqa: E402  (tests/e2e/zoo/)
from zoo import broken  # noqa: E402
from zoo.exercise import probe_args  # noqa: E402
from zoo.run import harden_command, harden_fix, prepare, run_stack  # noqa: E402

SHORT = {"user": "user", "read_only": "ro", "capabilities": "caps", "no_new_privileges": "nnp", "resources": "res"}
ORDER = list(SHORT)


def _controls(changes: list[dict]) -> str:
    per: dict[str, set[str]] = {}
    for c in changes:
        per.setdefault(c["service"], set()).add(c["control"])
    return " ".join(f"{s}:{'+'.join(SHORT[c] for c in ORDER if c in cs)}" for s, cs in per.items()) or "-"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def tune_rows(stacks: list, tmp: Path) -> list[tuple[str, ...]]:
    rows = [("STACK", "ROUNDS", "WALL", "JOB AFTER TUNE", "TUNE WROTE", "FIX WRITES")]
    for stack in stacks:
        if stack.skip_reason():
            rows.append((stack.name, "-", "-", "skipped", stack.skip_reason(), "-"))
            continue
        compose = prepare(stack, tmp / stack.name / "tuned")
        t0 = time.monotonic()
        proc = subprocess.run([*harden_command(), "tune", "compose.yaml", "--report", "tune.json", "--timeout", "60",
                               *probe_args(stack.name), *(["--yes"] if "network_mode: host" in stack.compose else [])],
                              capture_output=True, text=True, cwd=compose.parent)
        wall = time.monotonic() - t0
        report = json.loads((compose.parent / "tune.json").read_text()) if (compose.parent / "tune.json").exists() else {}
        job = run_stack(stack, compose.parent, "tuned") if proc.returncode == 0 else None
        fixed = prepare(stack, tmp / stack.name / "fixed")
        fix = harden_fix(fixed)
        fix_changes = [c for f in (fix.report or {}).get("files", []) for c in f.get("changes", [])]
        rows.append((stack.name, str(report.get("rounds", "?")), f"{wall:.0f}s",
                     "pass" if job and job.ok else f"FAIL (tune exit {proc.returncode})" if job is None else "FAIL",
                     _controls(report.get("changes", [])), _controls(fix_changes)))
        print(f"  {stack.name}: {rows[-1][1]} round(s), {rows[-1][2]}, job {rows[-1][3]}", file=sys.stderr, flush=True)
        if job is not None and not job.ok:
            print(job.describe(), file=sys.stderr)
    return rows


def broken_rows(tmp: Path) -> list[tuple[str, ...]]:
    rows = [("VARIANT", "STACK", "BREAKAGE", "VERIFY", "NAMES", "VERIFIED FIX", "WALL")]
    for variant in broken.BROKEN:
        compose = prepare(zoo.BY_NAME[variant.stack], tmp / variant.name, variant.compose)
        t0 = time.monotonic()
        proc = subprocess.run([*harden_command(), "verify", "compose.yaml", "--as-is", "--timeout", "60"],
                              capture_output=True, text=True, cwd=compose.parent)
        wall = time.monotonic() - t0
        named = re.findall(r"^\s+(\S+) \((?:fresh start|upgrade)\): .*\[control (\w+)\]$", proc.stdout, re.M)
        fixes = re.findall(r"^\s+\S+: (x-harden: .*?)\s+#", proc.stdout.split("verified fixes", 1)[-1], re.M) \
            if "verified fixes" in proc.stdout else []
        verdict = {0: "OK", 1: "FAIL"}.get(proc.returncode, f"error {proc.returncode}")
        rows.append((variant.name, variant.stack, variant.breakage, verdict,
                     ", ".join(dict.fromkeys(f"{s}/{c}" for s, c in named)) or "-", "; ".join(fixes) or "-", f"{wall:.0f}s"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stacks", nargs="*", help="stack names (default: all)")
    parser.add_argument("--broken", action="store_true", help="also verify every broken variant")
    parser.add_argument("--no-tune", action="store_true", help="skip the tune table")
    args = parser.parse_args()
    ok, reason = images.engine_available()
    if not ok:
        print(f"no Docker engine: {reason}", file=sys.stderr)
        return 2
    zoo.ensure_images()
    stacks = [zoo.BY_NAME[name] for name in args.stacks] or zoo.STACKS
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="harden-tune-bench-") as tmp:
        if not args.no_tune:
            _table(tune_rows(stacks, Path(tmp)))
            print(f"\nwall {time.monotonic() - t0:.0f}s")
        if args.broken:
            print()
            _table(broken_rows(Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
