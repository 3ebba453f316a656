"""`harden verify FILE`: prove on the local Docker engine that the hardened stack runs hardened
and still does what the original does.

Runs, one after the other on the same engine: the original (the baseline); where the
stack has named volumes, an upgrade in place (the hardened stack started on the volumes
the original just wrote: same project, `down` without `-v` between); the hardened stack
fresh. The hardened runs are judged against the original's (`compare`): containers up vs
exited or restarting, exit codes, health, OOM kills, memory and PIDs at their limits,
published ports answering, ports listening inside, `x-harden.probe` / `--probe` checks,
and log lines with the signatures of hardening breakage the original did not print. A
regression names the service, the evidence and the control most likely responsible; the
fix its signature calls for is applied to the hardened text in memory and rerun, and
printed only where the rerun no longer shows it.

Isolation: FILE is never modified. The texts (the original and the hardened one; with
`--as-is`, FILE and `--baseline` or FILE without its hardening keys) go to Docker Compose
v2 on stdin with FILE's directory as project directory, so relative paths, `.env` and
`env_file` resolve as they would for FILE. Each run has a throwaway project name
(`harden-verify-<random hex>`), so it shares no containers, networks or volumes with any
other project, and every one is torn down with `down -v --remove-orphans` (and a sweep of
anything still labelled with that project) in a `finally` block: on success, on failure,
on an error, and on Ctrl-C / SIGTERM / SIGHUP. Nothing else is run: `docker compose
up/down` for those projects; `docker inspect / top / stats / diff / logs / cp` and `docker
exec` of `cat /proc/<pid>/status`, `cat /proc/net/tcp*`, `ls -A` and the service's own
`x-harden.probe` on their own containers; `--probe` on the host. What the stack itself
does (published ports, bind mounts, `container_name`, pulls and builds) is what `docker
compose up` on the file would do, once per run.

Consent: a stack with host-level access (`risks`: privileged, host namespaces, host-level
capabilities, devices, unconfined profiles, bind mounts of sensitive host paths) or a remote
include (which loading it would fetch) runs only once confirmed on a terminal or with
`--yes`; otherwise it is refused (exit 2) before Compose loads it / before anything runs.

Verdict: exit 0 when every container runs (healthy where it has a healthcheck), is
hardened as the file asks and shows no regression against the original; 1 with the failing
cells and the regressions named (for a service that died, its last log lines; the fixes a
rerun confirmed); 2 when it could not be verified at all.

Modules: `engine` (docker children, the throwaway project, signals), `expect` (what the
file asks for), `risks` (host-level access), `judge` (what the engine runs, judged; the
table), `seen` (the records of a run), `observe` (one run, exercised and read),
`signatures` (log lines of hardening breakage), `compare` (a hardened run against the
original's), `hints` (the fix a regression calls for, applied in memory), `proof` (the
runs and the rerun with the fixes), `outcome` (what is printed), `functional` (the runs
with the hardening table and the verdict), `diagnose` (paths in log lines), `preflight`
(what verify and tune do before and around their runs: consent, the engine check, the
teardown), `run` (the command, `run_verify`).
"""

from .run import run_verify

__all__ = ["run_verify"]
