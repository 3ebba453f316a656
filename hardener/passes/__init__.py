"""The hardening passes, in the order they run.

Order matters: `user` decides who owns the tmpfs mounts that `read_only` adds, and
`capabilities` reads the user too. Each module has `ID`, `SUMMARY`, a docstring that is
its documentation (`harden explain ID`), and a pure `plan(service, settings)`.
"""

from . import capabilities, no_new_privileges, read_only, resources, user

PASSES = (user, read_only, capabilities, no_new_privileges, resources)
BY_ID = {p.ID: p for p in PASSES}
