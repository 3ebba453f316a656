"""`harden tune FILE`: learn from a run of the original, harden from what it showed, verify,
adjust, repeat; end with the file written as `fix` writes it, or a report of what could
not be hardened and why.

Modules: `writes` (where a run wrote, from `docker diff`, and which places a tmpfs can
take), `learn` (a run of the original as observed facts), `adjust` (a round's regressions
as the next round's facts), `loop` (the rounds), `command` (the command: consent,
teardown, report, the write). The engine side is `hardener.verify` (`observe`,
`compare`, `proof.Runner`); the facts reach planning as `Project(observed=...)`
(`hardener.observed`).
"""

from .command import run_tune

__all__ = ["run_tune"]
