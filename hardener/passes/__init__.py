"""The hardening passes, in the order they run.

Order matters: `user` decides who owns the tmpfs mounts that `read_only` adds, and
`capabilities` reads the user too. Each module has `ID`, `SUMMARY`, a docstring that is
its documentation (`harden explain ID`), and a pure `plan(service, settings)`. This tuple is
the one list of controls: their ids, order and options come from here. A control skipped
(by the profile, the image knowledge, `x-harden` or `--skip`) is never planned: the
runner records the skip and does not call the pass.
"""

from . import capabilities, no_new_privileges, read_only, resources, user

PASSES = (user, read_only, capabilities, no_new_privileges, resources)
BY_ID = {p.ID: p for p in PASSES}
CONTROLS: tuple[str, ...] = tuple(p.ID for p in PASSES)
