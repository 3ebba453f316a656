"""`harden bulk REPO...`: harden the Compose files of many local git repositories at once.

For every repository the result is either a new branch holding one reviewable commit,
or nothing at all:

- REPO must be the top directory of a git work tree with at least one commit, and no
  uncommitted changes to tracked files (nor a merge / rebase / cherry-pick in progress);
  otherwise that repository is reported as an error and left untouched.
- The work happens in a temporary linked work tree (`git worktree add --detach`) checked
  out from the current HEAD, so the user's own checkout — its branch, index, files and
  their timestamps, untracked and ignored files — is never touched: when harden is done
  the original branch is still checked out with a clean tree, exactly as it was. Only
  Compose files tracked by git are hardened (`files.discover(..., recursive=True)`,
  `.git` skipped, filtered to `git ls-files`, symlinks leading out of the repository
  skipped), with `project.process_paths(..., write=True, jobs=1, use_compose=True)`
  (base and override files of one directory hardened as one project).
- If files changed, exactly those files are `git add`ed and committed as
  `harden: harden N Compose files (M changes)` with a body listing the files, the
  per-control counts, the risks that are never fixed automatically, and a
  `Hardened-by: harden <version>` trailer; the branch `--branch` is then created on that
  commit (whose parent is the HEAD the run started from). Where git has no identity
  configured, `-c user.name=harden -c user.email=harden@localhost` is used
  (GIT_AUTHOR_* / GIT_COMMITTER_* from the environment still win).
- If nothing changed, no branch is created: status "unchanged".
- If any file fails (a refused write, invalid YAML, the Compose loader rejecting the
  output, ...), the whole repository is rolled back — the temporary work tree is thrown
  away and no branch is created — and the status is "error" with the file's message.
- If the branch already exists: when it holds a harden commit and hardening its tip would
  change nothing, the status is "already done"; otherwise "error" (branch exists).

Repositories run in parallel in `--jobs` worker processes, each independent. A JSON
state file (`--state`, default `.harden-bulk.json` in the current directory) records per
repository {status, branch, commit, files, changes, message, finished_at} and is
rewritten atomically (temp file + `os.replace`) after each repository finishes; a rerun
skips the repositories already "committed" / "unchanged" / "already done" for the same
branch and retries the ones in "error". One line per repository and a summary go to
stderr; `--report FILE` receives a JSON report of all of them. Exit code 0 when every
repository ended committed / unchanged / already done, 2 if any errored.

harden never pushes, never fetches and never touches remotes: every git call runs with
`protocol.allow=never` (and an empty GIT_ALLOW_PROTOCOL), Git LFS smudging off and
submodule recursion off. Git hooks are not run for these internal checkouts and commits
(`core.hooksPath=/dev/null`); the branch meets the repository's checks when it is pushed
and reviewed. No command a repository's configuration names is run either: no system or
global configuration, `core.fsmonitor`, pager, editor, signing, credential helpers and
automatic gc off, and every filter / diff / merge / trailer driver the repository's
configuration defines emptied by name (`git.safe_config`).

A killed run leaves its temporary work tree (`harden-bulk-<pid>-*` in the temp directory)
and perhaps a `.harden-bulk-XXXXXXXX.tmp` beside the state file: the next run removes them
(only harden's own names, only once that process is gone / the file is older than a
minute) and prunes the work tree's git entry (`git.prune_stale_worktrees`). Pushing the branches and
opening pull requests is left to you. For fleets beyond one machine, use an existing
bulk-change engine such as multi-gitter or git-xargs, which clone, branch, push and open
the pull requests, and have it run `harden fix --recursive .` followed by
`harden check --recursive .` in each repository.

Modules: `git` (the hardened git call, preflight, temporary work tree), `state` (statuses,
per-repository records, the state file), `migrate` (one repository), `run` (the driver).
"""

from .migrate import migrate_repo
from .run import run_bulk
from .state import RepoRecord, RepoStatus

__all__ = ["RepoRecord", "RepoStatus", "migrate_repo", "run_bulk"]
