"""`verify`'s run: the original and the hardened stack on the same engine, the hardening of
the hardened one judged (the table of `judge`), its function judged against the original
(`proof`, `compare`), fixes confirmed by a rerun, the verdict.

Which text is the original: FILE as it is, when verify hardens it in memory; with
`--as-is` (FILE is hardened already), the file given with `--baseline`, else FILE with
the keys of the five controls taken out in memory (`hints.unhardened`): the stack as it
ran before it was hardened.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from . import engine, outcome
from .engine import Project, VerifyError, last_line
from .expect import expectations
from .judge import Box, judge, missing, table
from .proof import Proof, Runner, Stack, prove


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(binary: str, text: str, directory: str) -> dict[str, Any]:
    config = Project(binary, text, directory).compose("config", "--format", "json")
    if config.returncode != 0:
        raise VerifyError(f"Docker Compose cannot load the file: {last_line(config)}")
    return json.loads(config.stdout)


def file_caps(model: dict[str, Any], images: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """service -> the file capabilities of its image's programs (from the image's facts)."""
    out = {}
    for name, service in (model.get("services") or {}).items():
        facts = images.get(str((service or {}).get("image") or ""))
        if facts is not None and getattr(facts, "file_caps", None):
            out[name] = dict(facts.file_caps)
    return out


def run_function(runner: Runner, stack: Stack, look: Callable[[list[Box]], None], check_fixes: bool = True) -> int:
    """Run both stacks, print the hardening table and the comparison; 0 OK, 1 FAIL."""
    services = sorted(stack.model_hardened.get("services") or {})
    if not services:
        raise VerifyError("the file defines no service that `docker compose up` would start")
    wants = {name: expectations(svc) for name, svc in (stack.model_hardened.get("services") or {}).items()}
    rows: list[Any] = []

    def hook(found: list[Box]) -> None:
        look(found)
        rows.extend(judge(b, wants.get(b.service), True) for b in found)
        seen = {b.service for b in found}
        rows.extend(missing(name) for name in services if name not in seen)

    proof: Proof = prove(stack, runner, hook, check_fixes)
    if proof.fresh.up_error and not rows:
        raise VerifyError(f"docker compose up failed: {proof.fresh.up_error}")
    if rows:
        print(table(rows))
    for name in services:
        if wants[name].asks_nothing:
            print(f"note: {name} asks for none of the hardening controls")
    for line in outcome.lines(proof):
        print(line)
    failures = [f for r in rows for f in r.failures]
    if proof.fresh.up_error:
        failures.insert(0, f"docker compose up failed: {proof.fresh.up_error}")
    regressions = outcome.regressions(proof)
    if failures or regressions:
        print("\nFAIL: " + ("not hardened as the file asks" if failures and not regressions else
                            "the hardened stack does not do what the original does (service (run): evidence "
                            "[control most likely responsible])" if not failures else
                            "not hardened as asked, and not doing what the original does (service (run): evidence "
                            "[control most likely responsible])"))
        for line in failures + regressions:
            print("  " + line)
        for line in outcome.fixes(proof):
            print(line)
        return 1
    upgrade = " and after an upgrade in place" if proof.upgrade is not None else ""
    print(f"\nOK: {len(rows)} container(s) of {len(services)} service(s) run hardened as the file asks, and do what the "
          f"original does (fresh start{upgrade}: same containers up, ports answering, no new breakage in the logs)")
    return 0


def engine_ready() -> None:
    engine.engine_check()
