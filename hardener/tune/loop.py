"""The rounds of `harden tune`: learn from the original, harden, judge, adjust, repeat.

Round 0 runs the original and learns from it (`learn`). Each round then plans the file
with what is known as observed facts (`Project(observed=...)`), trying the profile's
values where nothing else speaks for them (`unverified: apply`), runs the hardened stack
fresh and judges it against the original (`verify.compare`); once a fresh start shows
no regression and the stack has named volumes, an upgrade in place too (the original on
fresh volumes, then the hardened stack on them). A regression is adjusted for (`adjust`)
and the next round tries again, at most `rounds` rounds. When a round shows nothing, the
file is planned once more with the profile as given and the controls that round ran with
marked as verified by it: its values then rest on `observed:` evidence, and the text is
the one that was run.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..core import harden_text
from ..model import Project, Result, Status
from ..observed import Observed
from ..profile import Profile
from ..verify import engine
from ..verify.compare import Regression, compare, unwritable_dirs
from ..verify.functional import file_caps
from ..verify.observe import observe
from ..verify.proof import Runner, named_volumes
from ..verify.seen import StackRun
from . import learn
from .adjust import Tuning


class TuneError(Exception):
    """The stack could not be tuned at all (exit 2)."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Round:
    number: int
    runs: list[StackRun]
    regressions: list[Regression]
    notes: list[str] = field(default_factory=list)  # the adjustments made after it
    seconds: float = 0.0


@dataclass
class Outcome:
    baseline: StackRun
    rounds: list[Round]
    converged: bool
    result: Result | None = None  # the plan that was run and showed no regression
    tuning: Tuning | None = None
    seconds: float = 0.0


def load(project: engine.Project) -> dict[str, Any]:
    config = project.compose("config", "--format", "json")
    if config.returncode != 0:
        raise TuneError(f"Docker Compose cannot load the file: {engine.last_line(config)}")
    return json.loads(config.stdout)


def _plan(original: str, profile: Profile, skips: frozenset[str], images: dict[str, Any], observed: dict[str, Observed]) -> Result:
    result = harden_text(original, profile, skips, Project(images=images, observed=observed))
    if result.status in (Status.ERROR, Status.SKIPPED):
        raise TuneError(result.message or "the file could not be hardened")
    return result


def _upgrade(runner: Runner, original: str, text: str, model_o: dict[str, Any], model_h: dict[str, Any], timeout: float,
             probes: tuple[str, ...]) -> StackRun:
    project = runner.project(original)
    _say(f"harden tune: upgrade in place: the original, then the hardened stack on its volumes ({project.name})")
    observe(project, "original", model_o, timeout, probes)
    project.compose("down", "--remove-orphans", "--timeout", "10", timeout=engine.DOWN_TIMEOUT)
    project.text = text
    moved = observe(project, "upgrade", model_h, timeout, probes, listing=unwritable_dirs)
    project.down()
    return moved


def tune(original: str, runner: Runner, profile: Profile, skips: frozenset[str], images: dict[str, Any], timeout: float,
         rounds: int, probes: tuple[str, ...] = ()) -> Outcome:
    t0 = time.monotonic()
    first = runner.project(original)
    model_o = load(first)
    services = sorted(model_o.get("services") or {})
    _say(f"harden tune: round 0: running the original as project {first.name}")
    baseline = observe(first, "original", model_o, timeout, probes, listing=learn.listing_for)
    first.down()
    outcome = Outcome(baseline, [], False)
    outcome.tuning = tuning = Tuning(learn.learn(baseline))
    outcome.rounds.append(Round(0, [baseline], [], seconds=baseline.seconds))
    trying = replace(profile, data={**profile.data, "unverified": "apply"})
    volumes = named_volumes(model_o)
    for number in range(1, rounds + 1):
        started = time.monotonic()
        planned = _plan(original, trying, skips, images, tuning.observed(services))
        project = runner.project(planned.text)
        model_h = load(project)
        _say(f"harden tune: round {number}: running the hardened stack as project {project.name}")
        fresh = observe(project, "hardened", model_h, timeout, probes, listing=unwritable_dirs)
        project.down()
        found = compare(baseline, fresh, "fresh start")
        runs = [fresh]
        if not found and volumes:
            moved = _upgrade(runner, original, planned.text, model_o, model_h, timeout, probes)
            runs.append(moved)
            found = compare(baseline, moved, "upgrade")
        this = Round(number, runs, found)
        outcome.rounds.append(this)
        applied: dict[str, set[str]] = {}
        for change in planned.changes:
            applied.setdefault(change.service, set()).add(change.control)
        if not found:
            confirmed = learn.verified(applied, runs)
            observed = {s: o.merged(confirmed.get(s, Observed())) for s, o in tuning.observed(services).items()}
            final = _plan(original, profile, skips, images, observed)
            if final.text != planned.text:
                raise TuneError("the plan with the verified values differs from the one that was run; nothing written")
            outcome.result, outcome.converged = final, True
            this.seconds = time.monotonic() - started
            break
        before = len(tuning.notes)
        moved_on = tuning.adjust(found, runs, baseline, model_h, file_caps(model_h, images), applied)
        this.notes = tuning.notes[before:]
        this.seconds = time.monotonic() - started
        if not moved_on:
            break
    outcome.seconds = time.monotonic() - t0
    return outcome
