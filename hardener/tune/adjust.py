"""From a round's regressions to the next round's observed facts (pure).

A regression whose log line names a control climbs that control's ladder one rung per
round: first the fix its signature calls for (`verify.hints.fix_for`: a tmpfs for the path
of an EROFS line, the capability of a recognised EPERM, a higher limit after an OOM kill,
a memory signature or a fork failure, the account the original ran as for a refused
write), then dropping the control for that service with the evidence as the reason, then
the controls that can cause the same signature (an EPERM or a refused bind under
no-new-privileges: a file capability it disables). A tmpfs over a directory that holds the
image's files is never tried: read_only is dropped instead (a volume is needed there).
A service that regressed with nothing naming a control has its controls dropped one at a
time, the previous one restored, until the regression is gone (`bisect`). One rung per
service and control a round; a regression at the top of its ladder ends the tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..observed import Observed
from ..verify.compare import Regression
from ..verify.hints import Fix, fix_for
from ..verify.seen import StackRun

def _shown(value: Any) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


ORDER = ("read_only", "user", "capabilities", "no_new_privileges", "resources")
# After the fix (and dropping the control it names): what else can print that signature.
ALSO = {"bind": ("no_new_privileges", "user"), "eperm": ("no_new_privileges",), "eacces": ("read_only",),
        "not_writable": ("user",), "erofs": ()}


@dataclass
class Tuning:
    """What tune knows about each service: what the original showed, the adjustments made
    since, and the control dropped to find a cause no log line named."""

    learned: dict[str, Observed]
    adjustments: dict[str, list[Observed]] = field(default_factory=dict)
    tried: set[tuple[str, str, str]] = field(default_factory=set)  # (service, key, value) of every fix tried
    bisect: dict[str, tuple[str, str]] = field(default_factory=dict)  # service ("*": all) -> (control, reason)
    bisected: dict[str, list[str]] = field(default_factory=dict)  # service -> controls dropped so far
    notes: list[str] = field(default_factory=list)  # every adjustment, in order, for the report

    def observed(self, services: list[str]) -> dict[str, Observed]:
        out = {}
        for service in services:
            seen = self.learned.get(service, Observed())
            for extra in self.adjustments.get(service, []):
                seen = seen.merged(extra)
            for who in (service, "*"):
                if who in self.bisect:
                    control, reason = self.bisect[who]
                    seen = seen.merged(Observed(skip={control: reason}))
            out[service] = seen
        return out

    def dropped(self, service: str) -> set[str]:
        return {c for a in self.adjustments.get(service, []) for c in a.skip} | set(self.learned.get(service, Observed()).skip)

    def _add(self, service: str, observed: Observed, note: str) -> None:
        self.adjustments.setdefault(service, []).append(observed)
        self.notes.append(f"{service}: {note}")

    def _drop(self, service: str, control: str, reason: str) -> None:
        self._add(service, Observed(skip={control: reason}), f"drops {control}: {reason}")

    def _apply(self, r: Regression, fix: Fix) -> None:
        """The fix as observed facts for the next round."""
        name, source = fix.service, f"{r.line or r.evidence} (a hardened run)"
        self.tried.add((name, fix.key, _shown(fix.value)))
        if fix.key == "tmpfs":
            path = str(fix.value).split(":", 1)[0]
            self._add(name, Observed(tmpfs=(path,), tmpfs_fact=f"writes {path}: {source}"), f"tmpfs {path}: {source}")
        elif fix.key == "cap_add":
            caps = tuple(fix.value)
            self._add(name, Observed(cap_add=caps, cap_fact=f"needs {', '.join(caps)}: {source}"), f"cap_add {', '.join(caps)}: {source}")
        elif fix.key == "memory":
            self._add(name, Observed(memory=str(fix.value), memory_fact=f"{r.evidence} (a hardened run)"), f"memory {fix.value}: {r.evidence}")
        elif fix.key == "pids":
            self._add(name, Observed(pids=int(fix.value), pids_fact=f"{r.evidence} (a hardened run)"), f"pids {fix.value}: {r.evidence}")
        elif fix.key == "user":
            self._add(name, Observed(user=str(fix.value), user_fact=f"the original ran as {fix.value}; {source}"),
                      f"user {fix.value}: {source}")

    def _climb(self, r: Regression, fix: Fix | None, applied: set[str]) -> bool:
        """One rung of the regression's ladder; False at its top."""
        name = r.service.split("#")[0]
        if fix is not None and fix.key != "skip" and (name, fix.key, _shown(fix.value)) not in self.tried:
            self._apply(r, fix)
            return True
        dropped = self.dropped(name)
        tried = [f"{k} {v}" for (s, k, v) in sorted(self.tried) if s == name]
        why = f"; {', '.join(tried)} did not help" if tried and fix is not None and fix.key != "skip" else ""
        for control in (r.control or "", *ALSO.get(r.signature or "", ())):
            if control and control in applied and control not in dropped:
                reason = (fix.why + ": " if fix is not None and fix.key == "skip" and control == r.control else "") + r.evidence + why
                self._drop(name, control, reason)
                return True
        return False

    def _bisect(self, service: str, applied: set[str], evidence: str) -> bool:
        done = self.bisected.setdefault(service, [])
        left = [c for c in ORDER if c in applied and c not in done]
        if not left:
            self.bisect.pop(service, None)
            return False
        control = left[0]
        done.append(control)
        reason = f"{evidence}; no log line named a control, and without {control} the regression is gone"
        self.bisect[service] = (control, reason)
        self.notes.append(f"{service}: drops {control} to find the cause ({evidence})")
        return True

    def adjust(self, found: list[Regression], runs: list[StackRun], baseline: StackRun, model: dict[str, Any],
               file_caps: dict[str, dict[str, tuple[str, ...]]], applied: dict[str, set[str]]) -> bool:
        """Adjust for one round's regressions; False when nothing new can be tried."""
        changed = False
        services = model.get("services") or {}
        stuck: dict[str, list[Regression]] = {}
        climbed: set[tuple[str, str]] = set()  # (service, control): one rung each a round
        for r in found:
            name = r.service.split("#")[0]
            if not r.control:
                stuck.setdefault(name, []).append(r)
                continue
            if (name, r.control) in climbed:
                continue
            climbed.add((name, r.control))
            run = next((x for x in runs if x.label == ("upgrade" if r.run == "upgrade" else "hardened")), runs[0])
            seen = run.by_label().get(r.service)
            fix = fix_for(r, seen, baseline.by_label().get(r.service), services.get(name), file_caps.get(name))
            if self._climb(r, fix, applied.get(name, set())):
                changed = True
            else:
                stuck.setdefault(name, []).append(r)
        if changed:
            return True  # the causes the logs name first: what else regressed may follow from them
        for name, regs in stuck.items():
            who = name if name in services else "*"
            controls = applied.get(name, set()) if who != "*" else set().union(*applied.values()) if applied else set()
            changed = self._bisect(who, controls - self.dropped(name), regs[0].evidence) or changed
        return changed
