"""What a run of the original says about each service, as `Observed` facts (pure).

- the account its processes ran as (`docker top`), when every process ran as the same
  non-root uid:gid (an image that drops privileges shows where it drops to);
- the places it wrote outside its mounts (`docker diff`, `writes`): a tmpfs for those that
  hold nothing of the image; a place next to the image's own files is a doubt about
  read_only, with the reason (a volume is needed there), which holds unless a stronger
  layer vouches for read_only;
- its peak memory and PIDs (`docker stats`): floors for the limits, with room to grow.

And, once a hardened run showed no regression, `verified`: the controls it ran with,
so their values rest on that run (`observed:`) instead of the profile default.
"""

from __future__ import annotations

import math

from ..declared import memory_text
from ..observed import Observed
from ..verify.seen import Seen, StackRun
from ..verify import writes

MIB = 1 << 20
HEADROOM = 4  # a limit gives the service this many times its peak
ROUND = 64 * MIB


def user_of(seen: Seen) -> str | None:
    ids = {(uid, gid) for uid, gid, _ in seen.procs or []}
    if len(ids) == 1:
        uid, gid = next(iter(ids))
        if uid.isdigit() and gid.isdigit() and uid != "0":
            return f"{uid}:{gid}"
    return None


def listing_for(seen: Seen) -> list[str]:
    """The directories `learn` needs listed in the original's container (`observe(listing=...)`)."""
    return writes.to_list(writes.places(seen.diff, seen.mounts))


def _limits(seen: list[Seen]) -> tuple[str | None, str, int | None, str]:
    memory = max((s.memory or 0 for s in seen), default=0)
    pids = max((s.pids or 0 for s in seen), default=0)
    mem_text, mem_fact, pid_count, pid_fact = None, "", None, ""
    if memory:
        floor = max(ROUND, int(math.ceil(memory * HEADROOM / ROUND)) * ROUND)
        mem_text, mem_fact = memory_text(floor, deploy=False), f"peak memory {memory / MIB:.0f} MiB (docker stats) x{HEADROOM}"
    if pids:
        pid_count, pid_fact = max(16, pids * HEADROOM), f"peak {pids} PIDs (docker stats) x{HEADROOM}"
    return mem_text, mem_fact, pid_count, pid_fact


def learn(baseline: StackRun) -> dict[str, Observed]:
    """service -> what the original's run showed about it."""
    out: dict[str, Observed] = {}
    by_service: dict[str, list[Seen]] = {}
    for seen in baseline.seen:
        by_service.setdefault(seen.service, []).append(seen)
    for service, seen in by_service.items():
        first = seen[0]
        user = user_of(first) if all(user_of(s) == user_of(first) for s in seen) else None
        tmpfs: list[str] = []
        facts: list[str] = []
        doubts: dict[str, str] = {}
        for one in seen:
            decision = writes.decide(writes.places(one.diff, one.mounts), one.listings, one.diff)
            tmpfs += [p for p in decision.tmpfs if p not in tmpfs]
            facts += decision.facts
            for place, why in decision.data.items():
                doubts.setdefault("read_only", why)
        memory, memory_fact, pids, pids_fact = _limits(seen)
        out[service] = Observed(
            user=user, user_fact=f"processes ran as {user} (docker top)" if user else "",
            tmpfs=tuple(tmpfs), tmpfs_fact="docker diff: " + "; ".join(facts) if facts else "",
            memory=memory, memory_fact=memory_fact, pids=pids, pids_fact=pids_fact, doubts=doubts,
        )
    return out


def verified(applied: dict[str, set[str]], runs: list[StackRun]) -> dict[str, Observed]:
    """service -> `Observed(verified=...)` for the controls `applied` to it, which `runs` (the
    hardened runs of the last round) showed working with no regression."""
    kinds = " and ".join(dict.fromkeys(("upgrade in place" if r.label == "upgrade" else "fresh start") for r in runs))
    out = {}
    for service, controls in applied.items():
        seen = [s for r in runs for s in r.seen if s.service == service]
        memory = max((s.memory or 0 for s in seen), default=0)
        pids = max((s.pids or 0 for s in seen), default=0)
        notes = {}
        for control in controls:
            note = f"harden tune ran it ({kinds}): no regression against the original"
            if control == "resources" and (memory or pids):
                note = f"harden tune ran it ({kinds}): peak {memory / MIB:.0f} MiB, {pids} PIDs, no regression"
            notes[control] = note
        out[service] = Observed(verified=notes)
    return out
