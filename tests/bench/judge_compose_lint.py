"""An independent judge: compose-lint (PyPI) on the corpus, before and after `harden fix`.

Counts the services flagged by the rules for the controls harden covers, per rule,
before and after, and checks that every service still flagged after is one harden
reported as deliberately skipped (with its reason). A benchmark-style script, not a test:

    python tests/bench/judge_compose_lint.py [--limit N]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hardener.core import harden_text  # noqa: E402
from hardener.model import Status  # noqa: E402
from hardener.profile import load_profile  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "files"
RULES = {
    "CL-0003": "no_new_privileges",
    "CL-0006": "capabilities",
    "CL-0007": "read_only",
    "CL-0018": "user",
    "CL-0022": "read_only",  # tmpfs without noexec/nosuid
    "CL-0026": "resources",
}


def lint(paths: list[str]) -> list[dict]:
    exe = shutil.which("compose-lint") or str(Path(sys.executable).with_name("compose-lint"))
    proc = subprocess.run(
        [exe, "check", "--format", "json", "--no-merge-overrides", "--no-env", "--allow-partial-coverage", *paths],
        capture_output=True, text=True,
    )
    try:
        return json.loads(proc.stdout).get("findings", [])
    except json.JSONDecodeError:
        return []


def flagged(findings: list[dict], base: str) -> set[tuple[str, str, str]]:
    """(file name, service, rule) for the rules harden covers."""
    return {(os.path.basename(f["file"]), f.get("service") or "", f["rule_id"]) for f in findings if f["rule_id"] in RULES and not f.get("suppressed")}


def main() -> None:
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    files = sorted(CORPUS.iterdir())[:limit]
    profile = load_profile("baseline")
    skips: dict[tuple[str, str], set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before_dir, after_dir = Path(tmp, "before"), Path(tmp, "after")
        before_dir.mkdir()
        after_dir.mkdir()
        for path in files:
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            result = harden_text(text, profile)
            if result.status is Status.ERROR:
                continue
            (before_dir / path.name).write_text(text)
            (after_dir / path.name).write_text(result.text)
            for s in result.skips:
                skips.setdefault((path.name, s.service), set()).add(s.control)
        chunks = lambda d: [[str(p) for p in sorted(d.iterdir())][i : i + 40] for i in range(0, len(list(d.iterdir())), 40)]  # noqa: E731
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            before = set().union(*[flagged(f, "") for f in pool.map(lint, chunks(before_dir))])
            after = set().union(*[flagged(f, "") for f in pool.map(lint, chunks(after_dir))])
    print(f"files judged: {len(files)}")
    print(f"{'rule':8} {'control':18} {'before':>7} {'after':>7} {'after, skipped by harden':>25}")
    by_rule_before = Counter(r for _, _, r in before)
    by_rule_after = Counter(r for _, _, r in after)
    unexplained = []
    explained = Counter()
    for name, service, rule in sorted(after):
        if RULES[rule] in skips.get((name, service), set()):
            explained[rule] += 1
        else:
            unexplained.append((name, service, rule))
    for rule, control in RULES.items():
        print(f"{rule:8} {control:18} {by_rule_before[rule]:7} {by_rule_after[rule]:7} {explained[rule]:25}")
    print(f"services still flagged without a harden skip: {len(unexplained)}")
    for item in unexplained[:40]:
        print("  ", *item)


if __name__ == "__main__":
    main()
