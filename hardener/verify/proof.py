"""Proof that the hardened stack still works: the original and the hardened stack run on
the same engine, one after the other, and the hardened runs are judged against the
original's (`compare`).

Runs, each under a throwaway project name and torn down with its volumes:

1. the original, fresh (the baseline);
2. where the stack has named volumes, an upgrade in place: the hardened stack started on
   the volumes the original just wrote (same project name, `down` without `-v` between);
3. the hardened stack, fresh.

A regression with a fix its signature calls for (`hints.fix_for`) is rerun with every such
fix applied to the hardened text in memory; a fix whose signature is gone in the rerun is
reported as verified, any other is not reported as a fix.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from . import engine
from .compare import Regression, compare, unwritable_dirs
from .hints import Fix, apply, fix_for
from .judge import Box
from .observe import observe
from .seen import Seen, StackRun


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Runner:
    """Makes the throwaway projects and tears every one of them down (`down_all`)."""

    def __init__(self, binary: str, directory: str) -> None:
        self.binary, self.directory = binary, directory
        self.projects: list[engine.Project] = []

    def project(self, text: str) -> engine.Project:
        project = engine.Project(self.binary, text, self.directory)
        self.projects.append(project)
        return project

    def down_all(self) -> list[str]:
        left: list[str] = []
        for project in self.projects:
            left += project.down()
        return left


def named_volumes(model: dict[str, Any]) -> list[str]:
    """The named volumes of the file that some service mounts and Compose creates (not external)."""
    declared = {name for name, spec in (model.get("volumes") or {}).items() if not (spec or {}).get("external")}
    used = set()
    for service in (model.get("services") or {}).values():
        for mount in (service or {}).get("volumes") or []:
            if isinstance(mount, dict) and mount.get("type") == "volume" and mount.get("source") in declared:
                used.add(mount["source"])
    return sorted(used)


@dataclass
class Stack:
    """What to run: the original (or the baseline) and the hardened text, loaded."""

    original: str
    hardened: str
    model_original: dict[str, Any]
    model_hardened: dict[str, Any]
    timeout: float
    host_probes: tuple[str, ...] = ()
    file_caps: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)  # service -> program -> caps


@dataclass
class Proof:
    baseline: StackRun
    fresh: StackRun
    upgrade: StackRun | None
    regressions: list[Regression]
    verified: list[tuple[Fix, Regression]] = field(default_factory=list)
    tried: list[tuple[Fix, Regression]] = field(default_factory=list)  # fixes the rerun did not confirm
    after: list[Regression] = field(default_factory=list)  # what the rerun with the fixes still showed

    @property
    def ok(self) -> bool:
        return not self.regressions


def run_both(stack: Stack, runner: Runner, hook: Callable[[list[Box]], None] | None = None, upgrade: bool = True,
             hardened: str | None = None) -> tuple[StackRun, StackRun, StackRun | None]:
    """Baseline, upgrade in place (where there are named volumes) and fresh hardened run."""
    text = hardened or stack.hardened
    volumes = named_volumes(stack.model_hardened) if upgrade else []
    first = runner.project(stack.original)
    _say(f"harden verify: running the original as project {first.name}")
    baseline = observe(first, "original", stack.model_original, stack.timeout, stack.host_probes)
    moved = None
    if volumes:
        first.compose("down", "--remove-orphans", "--timeout", "10", timeout=engine.DOWN_TIMEOUT)
        first.text = text
        _say(f"harden verify: upgrade in place: the hardened stack on the original's volumes ({', '.join(volumes)})")
        moved = observe(first, "upgrade", stack.model_hardened, stack.timeout, stack.host_probes, listing=unwritable_dirs)
    first.down()
    second = runner.project(text)
    _say(f"harden verify: running the hardened stack as project {second.name}")
    fresh = observe(second, "hardened", stack.model_hardened, stack.timeout, stack.host_probes, listing=unwritable_dirs, hook=hook)
    second.down()
    return baseline, fresh, moved


def regressions(baseline: StackRun, fresh: StackRun, moved: StackRun | None) -> list[Regression]:
    out = compare(baseline, fresh, "fresh start")
    if moved is not None:
        fresh_keys = {(r.service, r.kind, r.signature) for r in out}
        out += [r for r in compare(baseline, moved, "upgrade") if (r.service, r.kind, r.signature) not in fresh_keys]
    return out


def fixes(found: list[Regression], baseline: StackRun, runs: list[StackRun], stack: Stack) -> list[tuple[Fix, Regression]]:
    """One fix per (service, key) where a regression's signature calls for one."""
    out: dict[tuple[str, str, str], tuple[Fix, Regression]] = {}
    for r in found:
        run = next((x for x in runs if x.label == ("upgrade" if r.run == "upgrade" else "hardened")), runs[0])
        seen = run.by_label().get(r.service)
        base: Seen | None = baseline.by_label().get(r.service)
        name = r.service.split("#")[0]
        fix = fix_for(r, seen, base, (stack.model_hardened.get("services") or {}).get(name), stack.file_caps.get(name))
        if fix is not None:
            out.setdefault((fix.service, fix.key, str(fix.value)), (fix, r))
    return list(out.values())


def gone(r: Regression, after: list[Regression]) -> bool:
    """The regression's signature (or, without one, its kind) no longer shows for its service."""
    return not any(a.service == r.service and (a.signature == r.signature if r.signature else a.kind == r.kind) for a in after)


def prove(stack: Stack, runner: Runner, hook: Callable[[list[Box]], None] | None = None, check_fixes: bool = True) -> Proof:
    baseline, fresh, moved = run_both(stack, runner, hook)
    proof = Proof(baseline, fresh, moved, regressions(baseline, fresh, moved))
    if not proof.regressions or not check_fixes:
        return proof
    candidates = fixes(proof.regressions, baseline, [fresh, *([moved] if moved else [])], stack)
    if not candidates:
        return proof
    fixed = apply(stack.hardened, [f for f, _ in candidates])
    _say(f"harden verify: checking {len(candidates)} fix(es) by running the hardened stack with them")
    if any(r.run == "upgrade" for _, r in candidates):
        base2, fresh2, moved2 = run_both(stack, runner, hardened=fixed)
        proof.after = regressions(base2, fresh2, moved2)
    else:
        again = runner.project(fixed)
        rerun = observe(again, "hardened", stack.model_hardened, stack.timeout, stack.host_probes, listing=unwritable_dirs)
        again.down()
        proof.after = compare(baseline, rerun, "fresh start")
    for fix, r in candidates:
        (proof.verified if gone(r, proof.after) else proof.tried).append((fix, r))
    return proof
