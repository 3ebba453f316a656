"""What `verify` prints about function: the original's runs beside the hardened ones, one row
per container, then each regression with its evidence and control, and the fixes a rerun
confirmed. Pure: a `Proof` in, lines out."""

from __future__ import annotations

from .proof import Proof
from .seen import Seen, StackRun

COLUMNS = ("SERVICE", "ORIGINAL", "HARDENED", "UPGRADE", "PORTS", "MEMORY", "PIDS", "PROBES")
MIB = 1 << 20
LOG_TAIL = 12  # log lines shown for a container that is not up


def _ports(base: Seen | None, seen: Seen | None) -> str:
    if seen is None or not (seen.ports or (base and base.ports)):
        return "-"
    cells = []
    for port in sorted({*(base.ports if base else {}), *seen.ports}):
        was, now = (base.ports.get(port) if base else None), seen.ports.get(port)
        mark = "ok" if now else ("!no" if was else "no")
        cells.append(f"{port.split('/')[0]} {mark}")
    return " ".join(cells)


def _memory(seen: Seen | None) -> str:
    if seen is None or seen.memory is None:
        return "-"
    used = f"{seen.memory / MIB:.0f}M" if seen.memory >= MIB else "<1M"
    return used + (f"/{seen.memory_limit // MIB}M" if seen.memory_limit else "")


def _pids(seen: Seen | None) -> str:
    if seen is None or seen.pids is None:
        return "-"
    return str(seen.pids) + (f"/{seen.pids_limit}" if seen.pids_limit else "")


def _probes(base: Seen | None, seen: Seen | None) -> str:
    probes = seen.probes if seen else []
    if not probes:
        return "-"
    return " ".join("ok" if p.ok else f"!exit {p.code}" for p in probes)


def _state(seen: Seen | None, base: Seen | None = None) -> str:
    if seen is None:
        return "-"
    text = seen.state_text()
    return ("!" + text) if base is not None and base.up and not seen.up else text


def table(proof: Proof) -> str:
    base = proof.baseline.by_label()
    fresh = proof.fresh.by_label()
    moved = proof.upgrade.by_label() if proof.upgrade else {}
    rows = [COLUMNS]
    for label in sorted({*base, *fresh}):
        b, f, m = base.get(label), fresh.get(label), moved.get(label)
        rows.append((label, _state(b), _state(f, b), _state(m, b) if proof.upgrade else "-", _ports(b, f),
                     f"{_memory(b)} > {_memory(f)}", f"{_pids(b)} > {_pids(f)}", _probes(b, f)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _host(run: StackRun | None) -> list[str]:
    return [f"  host probe `{p.command}`: {'ok' if p.ok else f'exit {p.code}'}" for p in (run.host_probes if run else [])]


def lines(proof: Proof) -> list[str]:
    """The comparison section: the table, host probes, the log of each container that is not up."""
    out = ["", "compared with the original on this engine (original > hardened):", table(proof)]
    out += _host(proof.fresh)
    if proof.baseline.up_error:
        out.append(f"note: the original did not start: {proof.baseline.up_error}")
    broken = [s.label for s in proof.baseline.seen if not s.up]
    if broken:
        out.append(f"note: on the original, {', '.join(broken)} did not run either: nothing to compare there")
    for seen in proof.fresh.seen:
        if not seen.up and seen.status != "missing":
            tail = seen.logs[-LOG_TAIL:]
            out += ["", f"--- {seen.label}: {seen.state_text()}; " + (f"last {len(tail)} log lines:" if tail else "no log output")]
            out += ["  " + line for line in tail] + ([f"  engine: {seen.error}"] if seen.error else [])
    return out


def regressions(proof: Proof) -> list[str]:
    """One line per regression: service (run): evidence [control most likely responsible]."""
    return [r.describe() for r in sorted(proof.regressions, key=lambda r: (r.service, r.control is None))]


def fixes(proof: Proof) -> list[str]:
    """The fixes a rerun confirmed, as x-harden, and those it did not."""
    out: list[str] = []
    if proof.verified:
        out += ["", "verified fixes (a rerun with them applied no longer shows the regression):"]
        out += [f"  {fix.service}: {fix.x_harden()}   # {fix.why}" for fix, _ in proof.verified]
    if proof.tried:
        out += [f"  (tried {fix.x_harden()} for {fix.service}: the rerun still shows it; not a fix)" for fix, _ in proof.tried]
    return out
