"""Speed and memory against a peer, measured in the same run on the same files.

Copies the corpus twice into a temp dir, then times one process of `harden fix` (with and
without the Compose loader check) and one of `compose-lint fix --apply` over all files,
reading wall time and peak RSS of each child. Prints the ratios; asserts nothing.

    python tests/bench/speed.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "files"
BIN = Path(sys.executable).parent


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    # A fresh wrapper process per run, so each peak belongs to that run alone.
    probe = "import resource,subprocess,sys; subprocess.run(sys.argv[1:], capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, *args], cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    return wall, int(out.stdout.strip() or 0) / 1024


def copy(target: Path) -> list[str]:
    target.mkdir()
    names = []
    for path in sorted(CORPUS.iterdir()):
        name = f"{path.stem.replace('.', '_')}.compose.yaml"  # discoverable, one stack each
        shutil.copyfile(path, target / name)
        names.append(name)
    return names


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "harden fix (schema + safety net)": [sys.executable, "-m", "hardener", "fix", "--no-compose-check", "."],
            "harden fix (+ Compose loader check)": [sys.executable, "-m", "hardener", "fix", "."],
            "compose-lint fix --apply": [str(BIN / "compose-lint"), "fix", "--apply", "--no-merge-overrides", "--no-env"],
        }
        results = {}
        for index, (label, args) in enumerate(runs.items()):
            work = Path(tmp, str(index))
            names = copy(work)
            if "compose-lint" in label:
                args = [*args, *names]
            results[label] = measure(args, work)
            print(f"{label:40} {results[label][0]:7.1f} s  peak {results[label][1]:6.0f} MB  ({len(names)} files)")
        peer = results["compose-lint fix --apply"]
        for label, (wall, rss) in results.items():
            if label != "compose-lint fix --apply":
                print(f"{label:40} time ×{wall / peer[0]:.2f}  memory ×{rss / peer[1]:.2f} vs compose-lint")


if __name__ == "__main__":
    main()
