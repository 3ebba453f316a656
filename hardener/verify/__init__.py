"""`harden verify FILE`: prove on the local Docker engine that the hardened stack runs hardened.

Isolation: FILE is never modified. Its hardened text (or the text as is, `--as-is`) goes to
Docker Compose v2 on stdin with FILE's directory as project directory, so relative paths,
`.env` and `env_file` resolve as they would for FILE. The stack runs under a throwaway
project name (`harden-verify-<random hex>`), so it shares no containers, networks or
volumes with any other project, and it is torn down with `down -v --remove-orphans` (and
a sweep of anything still labelled with that project) in a `finally` block: on success,
on failure, on an error, and on Ctrl-C / SIGTERM / SIGHUP. Nothing else is run: only
`docker compose up/down` for that project, and `docker inspect / top / exec cat /proc/<pid>/status /
logs` on its own containers (the main process: PID 1, or its host PID under `pid: host`). What the stack itself does (published ports, bind mounts,
`container_name`, pulls and builds) is what `docker compose up` on the file would do.

Consent: a stack with host-level access (`risks`: privileged, host namespaces, host-level
capabilities, devices, unconfined profiles, bind mounts of sensitive host paths) or a remote
include (which loading it would fetch) runs only once confirmed on a terminal or with
`--yes`; otherwise it is refused (exit 2) before Compose loads it / before anything runs.

Verdict: exit 0 when every container runs (healthy where it has a healthcheck) and is
hardened as the file asks; 1 with the failing cells named (and, for a service that died,
its last log lines and the likely fix); 2 when it could not be verified at all.

Modules: `engine` (docker children, the throwaway project, signals), `expect` (what the
file asks for), `risks` (host-level access), `judge` (what the engine runs, judged; the table), `diagnose` (the likely
fix from log lines), `run` (the command, `run_verify`).
"""

from .run import run_verify

__all__ = ["run_verify"]
