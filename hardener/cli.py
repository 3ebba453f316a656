"""Command line: parse arguments, call the shell, map outcomes to exit codes.

Exit codes: 0 done or nothing to do · 1 the run fails on what it found (`--fail-on`:
changes pending in check / fix --diff, or a risk not accepted) · 2 error.
stdout carries the diff / report / hardened text; stderr the summary and errors
(`report.deliver` decides what goes where).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from . import report
from .files import FileOutcome, Keep, unified_diff
from .image_lookup import FactsOptions
from .model import HardenError, Status
from .passes import BY_ID, CONTROLS
from .profile import builtin_names, load_profile
from .cli_support import (Format, _check_output, _echo_input, _exclusion, _fail, _fail_on, _finish, _profile_here, _run, _say_excluded, _say_interrupted, _setup,
                          shared_options)

if TYPE_CHECKING:
    from .output import Verbosity

class _Commands(typer.core.TyperGroup):
    """Lists each command with its whole first sentence, wrapped to the terminal, never cut."""

    def format_commands(self, ctx, formatter) -> None:  # noqa: ANN001 (click's types)
        rows = [(name, command.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(cls=_Commands, add_completion=True, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, help="Harden Docker Compose files: non-root, read-only, no capabilities, no-new-privileges, limits.")






def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"harden {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """Harden Docker Compose files: non-root, read-only, no capabilities, no-new-privileges, limits."""

PathsArg = typer.Argument(..., metavar="PATH", help="Compose files, directories, or - for stdin.")
ProfileOpt = typer.Option(None, "--profile", "-p", metavar="NAME|FILE", help="Built-in profile name or a profile YAML file [default: the nearest .harden.yaml, up to the repository root, else baseline].")
SkipOpt = typer.Option(None, "--skip", metavar="CONTROL", help="Control to leave alone (repeatable): " + ", ".join(CONTROLS))
RecursiveOpt = typer.Option(False, "--recursive", "-r", help="Search directories recursively.")
JobsOpt = typer.Option(0, "--jobs", "-j", min=0, metavar="N", help="Worker processes (0: one per CPU, two per CPU with the Compose loader check).")
FormatOpt = typer.Option(Format.text, "--output-format", "--format", help="Report format: text, json, sarif, or github (workflow annotations).")
ReportOpt = typer.Option(None, "--report", metavar="FILE", help="Write the report, in --output-format, to this file; stdout then carries the text report.")
FailOnOpt = typer.Option(None, "--fail-on", case_sensitive=False, show_default=False,
                         help="What makes the run exit 1: change (changes pending, or a risk of level error that is not accepted), "
                              "risk (only such a risk), never. [default: change for check and fix --diff; never for fix, which writes]")
ExitZeroOpt = typer.Option(False, "--exit-zero", help="Exit 0 whatever was found (errors still exit 2); the same as --fail-on never.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="Print only errors, failing risks and what stdout was asked for (diff, machine report, hardened text); no summary.")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Also print why each change is made and which paths discovery left out.")
StdinNameOpt = typer.Option(None, "--stdin-filename", metavar="PATH", help="Path of the file read from stdin (-): its profile is looked up from there, and reports name it.")
ExcludeOpt = typer.Option(None, "--exclude", metavar="PATTERN", help="Paths that directory walks leave out (globs; repeatable or comma-separated); replaces the default list (node_modules, .venv, .git and tool caches).")
ExtendExcludeOpt = typer.Option(None, "--extend-exclude", metavar="PATTERN", help="Like --exclude, in addition to the default list.")
GitignoreOpt = typer.Option(True, "--respect-gitignore/--no-respect-gitignore", help="Leave out what .gitignore excludes, inside a git repository.")
ForceExcludeOpt = typer.Option(False, "--force-exclude", help="Apply the exclusions to paths named on the command line too (pre-commit, editors).")
ComposeOpt = typer.Option(True, "--compose-check/--no-compose-check", help="Also validate with the Docker Compose v2 loader when installed.")
FactsOpt = typer.Option(True, "--image-facts/--no-image-facts", help="Read each image's user, volumes and entrypoint (local engine, registry; cached by digest) and harden from them.")
OfflineOpt = typer.Option(False, "--offline", help="Never touch the network: image facts from the cache and the local engine only (also HARDEN_OFFLINE=1).")


@dataclass(frozen=True)
class RunOptions:
    """The options fix and check share, in their order on the command line (`shared_options`
    appends them to each command's own); a command gets them as one object, `run`."""

    profile: Optional[str] = ProfileOpt
    skip: Optional[List[str]] = SkipOpt
    recursive: bool = RecursiveOpt
    jobs: int = JobsOpt
    fmt: Format = FormatOpt
    report_file: Optional[str] = ReportOpt
    fail_on: Optional[report.FailOn] = FailOnOpt
    exit_zero: bool = ExitZeroOpt
    quiet: bool = QuietOpt
    verbose: bool = VerboseOpt
    stdin_filename: Optional[str] = StdinNameOpt
    exclude: Optional[List[str]] = ExcludeOpt
    extend_exclude: Optional[List[str]] = ExtendExcludeOpt
    respect_gitignore: bool = GitignoreOpt
    force_exclude: bool = ForceExcludeOpt
    compose_check: bool = ComposeOpt
    image_facts: bool = FactsOpt
    offline: bool = OfflineOpt

    def harden(self, paths: List[str], write: bool, keep: Keep = Keep.REPORT,
               emit: Optional[Callable[[FileOutcome], FileOutcome]] = None) -> tuple[list[FileOutcome], Verbosity]:
        """Check the report path, harden the files (writing them when `write`), say what the
        walk left out: the outcomes (as much of each as `keep` says, each handed to `emit`
        in order as soon as it is done) and the verbosity asked for."""
        from .output import verbosity

        level = verbosity(self.quiet, self.verbose)
        _check_output(self.report_file)
        exclusion = _exclusion(self.exclude, self.extend_exclude, self.respect_gitignore, self.force_exclude)
        outcomes = _run(paths, self.profile, self.skip, self.recursive, self.jobs, write=write, use_compose=self.compose_check,
                        facts=FactsOptions.from_environment(self.image_facts, self.offline), stdin_filename=self.stdin_filename,
                        exclusion=exclusion, keep=keep, emit=emit)
        _say_excluded(exclusion, level)
        return outcomes, level

    def fail_on_or(self, default: report.FailOn) -> report.FailOn:
        """What makes the run exit 1: --fail-on, never with --exit-zero, else `default`."""
        return _fail_on(self.fail_on, self.exit_zero, default)


@app.command()
@shared_options(RunOptions)
def fix(
    paths: List[str] = PathsArg,
    diff: bool = typer.Option(False, "--diff", help="Print a unified diff and write nothing."),
    *,
    run: RunOptions,
) -> None:
    """Rewrite Compose files in place so every service runs hardened. With --diff, write nothing and exit 1 while changes are pending or a risk is not accepted (--fail-on)."""
    from .output import verbosity

    fmt, report_file = run.fmt, run.report_file
    stdin = paths == ["-"]
    show = diff and (fmt is Format.text or bool(report_file))  # a machine report on stdout replaces the diff
    emit = _diff_printer(verbosity(run.quiet, run.verbose), records=bool(report_file)) if show else None
    outcomes, level = run.harden(paths, write=not diff, keep=Keep.DIFF if show else Keep.REPORT, emit=emit)  # stdin is kept whole
    rep = report.Report(outcomes, "would change" if diff else "hardened", pending_is_failure=diff,
                        fail_on=run.fail_on_or(report.FailOn.CHANGE if diff else report.FailOn.NEVER), command="fix")
    if fmt is not Format.text and not report_file:
        _finish(rep, fmt, None, "report", level)
    if diff:
        _finish(rep, fmt, report_file, "diff", level)
    if stdin:
        if outcomes[0].result.status is Status.ERROR:
            _echo_input()
        else:
            sys.stdout.write(outcomes[0].result.text)
            sys.stdout.flush()
        _finish(rep, fmt, report_file, "text", level)
    _finish(rep, fmt, report_file, "nothing", level)


def _diff_printer(level: Verbosity, records: bool) -> Callable[[FileOutcome], FileOutcome]:
    """Print a file's diff as soon as the files before it are printed, led by the values of
    it that rest on the profile default alone (patch tools skip the `#` lines: a reviewer
    reads them first); the run then keeps the outcome without its diff, and without the
    records of its changes (their number only) unless a report file lists them (`records`)."""
    from .output import Verbosity, plural

    def show(o: FileOutcome) -> FileOutcome:
        if o.result.status is not Status.CHANGED:
            return o
        review = report.unverified([o])
        if review and level is not Verbosity.QUIET:
            typer.echo(f"# {plural(len(review), 'value')} rest{'s' if len(review) == 1 else ''} on the profile default alone (unverified); review them first:")
            for line in review:
                typer.echo(f"#   {line}")
        typer.echo(o.diff if o.diff is not None else unified_diff(o.path if o.path != "-" else "stdin", o.result), nl=False)
        if records:
            return replace(o, diff=None)
        return replace(o, diff=None, changes=len(o.result.changes), result=replace(o.result, changes=()))

    return show


@app.command()
@shared_options(RunOptions)
def check(paths: List[str] = PathsArg, *, run: RunOptions) -> None:
    """Write nothing; report what would change and the risks found. Exit 1 while changes are pending or a risk is not accepted (--fail-on)."""
    outcomes, level = run.harden(paths, write=False)
    rep = report.Report(outcomes, "would change", pending_is_failure=True, fail_on=run.fail_on_or(report.FailOn.CHANGE), command="check")
    _finish(rep, run.fmt, run.report_file, "report", level)


@app.command()
def explain(
    name: Optional[str] = typer.Argument(None, help="A control (" + ", ".join(CONTROLS) + "), a risk kind (docker_socket, ...) or a rule id as SARIF names it (harden.user, harden.finding.privileged)."),
    list_rules: bool = typer.Option(False, "--list", help="List every rule instead (as `harden rules`)."),
) -> None:
    """Explain a rule: what a control changes and why, or what a risk means and what to do."""
    import difflib

    from . import rules as catalogue

    if list_rules or name is None:
        _print_rules()
        return
    rule = catalogue.lookup(name)
    if rule is None:
        hints = difflib.get_close_matches(name, catalogue.names(), n=1)
        _fail(f"unknown rule {name!r}" + (f" (did you mean {hints[0]!r}?)" if hints else "") + "; `harden rules` lists them")
    if rule.kind == "control":
        typer.echo(BY_ID[rule.key].__doc__.strip())  # its first line is "id: what it does"
    else:
        typer.echo(rule.explain())
    typer.echo("\n" + rule.footer())


def _print_rules(fmt: str = "text") -> None:
    from . import rules as catalogue

    listed = catalogue.all_rules()
    if fmt == "json":
        import json

        typer.echo(json.dumps([{"id": r.id, "kind": r.kind, "name": r.key, "level": r.level, "security_severity": r.severity,
                                "summary": r.short, "tags": list(r.tags)} for r in listed], indent=2))
        return
    width = max(len(r.id) for r in listed)
    for r in listed:
        typer.echo(f"{r.id:{width}}  {r.level:7}  {r.short}")


@app.command(name="rules")
def rules_command(fmt: str = typer.Option("text", "--output-format", "--format", help="text or json.")) -> None:
    """List every rule harden reports: controls, risks and the error rule, with their SARIF level."""
    if fmt not in ("text", "json"):
        _fail(f"unknown format {fmt!r}; use text or json")
    _print_rules(fmt)


@app.command()
def profiles(
    action: str = typer.Argument("list", help="list | show"),
    name: Optional[str] = typer.Argument(None, help="Profile to show: a name or a file [default: the nearest .harden.yaml or pyproject.toml [tool.harden], else baseline]."),
) -> None:
    """List the built-in profiles, or show one resolved with the source of each value."""
    if action == "list":
        for item in builtin_names():
            prof = load_profile(item)
            typer.echo(f"{item}: {prof.description}")
        return
    if action != "show":
        _fail(f"unknown action {action!r}; use list or show")
    if name is None:
        from .profile import project_profile_ref

        name = project_profile_ref(os.getcwd())
        typer.echo(f"# {name}: " + ("no project profile found here" if name == "baseline" else "the project profile for this directory"))
    try:
        prof = load_profile(name)
    except HardenError as exc:
        _fail(exc.message)
    rows = {
        "user": prof.user,
        "tmpfs.size": prof.tmpfs_size,
        "tmpfs.paths": ", ".join(s.path for s in prof.tmpfs),
        "capabilities.add": ", ".join(prof.cap_add) or "-",
        "resources.memory": prof.memory,
        "resources.cpus": prof.cpus,
        "resources.pids": prof.pids,
        "resources.form": prof.form,
        "image_knowledge": prof.image_knowledge,
        "unverified": prof.data.get("unverified", "auto"),
        "skip": ", ".join(sorted(prof.skip)) or "-",
    }
    for key, value in rows.items():
        source = prof.sources.get(key) or next((v for k, v in prof.sources.items() if k.startswith(key + ".")), "default")
        typer.echo(f"{key:18} {value!s:40} {source}")


@app.command()
def verify(
    file: str = typer.Argument(..., help="Compose file to prove on the local Docker engine."),
    profile: Optional[str] = ProfileOpt,
    skip: Optional[List[str]] = SkipOpt,
    timeout: int = typer.Option(120, help="Seconds to wait for services to run."),
    already_hardened: bool = typer.Option(False, "--as-is", help="Verify the file as it is, without hardening it first (compared with --baseline, else with itself without its hardening keys)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", metavar="FILE", help="With --as-is: the original to compare with (the file before it was hardened)."),
    probe: Optional[List[str]] = typer.Option(None, "--probe", metavar="CMD", help="A check run on the host (sh -c CMD) against the original and the hardened stack, with HARDEN_PORT_<SERVICE>_<PORT> set to each published port; non-zero = FAIL (repeatable)."),
    check_fixes: bool = typer.Option(True, "--check-fixes/--no-check-fixes", help="Rerun the hardened stack with the fixes its regressions call for, and print those that remove them."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a stack with host-level access (privileged, host namespaces, sensitive host mounts, remote includes) without asking."),
    image_facts: bool = FactsOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Run the original and the hardened stack on a local engine, prove it runs hardened and still does what the original does, tear both down."""
    from .verify import run_verify

    if baseline is not None and not already_hardened:
        _fail("--baseline names the original of a file that is hardened already: use it with --as-is")
    prof, skips = _setup(profile, skip)
    prof = _profile_here(prof, os.path.dirname(os.path.abspath(file)))
    raise typer.Exit(run_verify(file, prof, skips, timeout, harden_first=not already_hardened, assume_yes=yes, baseline=baseline,
                                probes=tuple(probe or ()), check_fixes=check_fixes,
                                facts=FactsOptions.from_environment(image_facts, offline)))


@app.command()
def tune(
    file: str = typer.Argument(..., help="Compose file to tune on the local Docker engine; written like fix writes it."),
    profile: Optional[str] = ProfileOpt,
    skip: Optional[List[str]] = SkipOpt,
    rounds: int = typer.Option(4, "--rounds", min=1, max=20, metavar="N", help="Hardened runs at most before giving up."),
    probe: Optional[List[str]] = typer.Option(None, "--probe", metavar="CMD", help="A check run on the host (sh -c CMD) against every run, with HARDEN_PORT_<SERVICE>_<PORT> set to each published port; non-zero = regression (repeatable)."),
    diff: bool = typer.Option(False, "--diff", help="Print the tuned file as a unified diff and write nothing."),
    timeout: int = typer.Option(120, help="Seconds to wait for services to run, per run."),
    report_file: Optional[str] = typer.Option(None, "--report", metavar="FILE", help="Write the rounds, changes with their evidence and what was left alone as JSON."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a stack with host-level access (privileged, host namespaces, sensitive host mounts, remote includes) without asking."),
    image_facts: bool = FactsOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Learn from a run of the original, harden from what it showed, verify against it, adjust, repeat; write the file."""
    from .tune import run_tune

    _check_output(report_file)
    prof, skips = _setup(profile, skip)
    prof = _profile_here(prof, os.path.dirname(os.path.abspath(file)))
    raise typer.Exit(run_tune(file, prof, skips, timeout, rounds, tuple(probe or ()), diff=diff, assume_yes=yes,
                              facts=FactsOptions.from_environment(image_facts, offline), report=report_file))


@app.command()
def bulk(
    repos: List[str] = typer.Argument(..., help="Git repositories (local paths)."),
    profile: Optional[str] = ProfileOpt,
    skip: Optional[List[str]] = SkipOpt,
    branch: str = typer.Option("harden/compose", help="Branch to commit the change on."),
    jobs: int = JobsOpt,
    state: str = typer.Option(".harden-bulk.json", help="State file that makes a rerun resume."),
    report_file: Optional[str] = ReportOpt,
) -> None:
    """Migrate many git repositories: fix, branch, commit, report; resumable."""
    from .bulk import run_bulk

    _check_output(report_file)
    _check_output(state, "state file")
    prof, skips = _setup(profile, skip)
    raise typer.Exit(run_bulk(repos, prof, skips, branch, jobs or os.cpu_count() or 1, state, report_file))


def main() -> None:
    """The boundary: whatever goes wrong inside ends as one line and exit 2, never a traceback."""
    try:
        app()
    except SystemExit as exc:  # the CLI library turns Ctrl-C into exit 130: say what was written
        if exc.code == 130:
            _say_interrupted(exc)
        raise
    except KeyboardInterrupt as exc:
        _say_interrupted(exc)
        sys.exit(130)
    except Exception as exc:  # a bug: say so in one line, leave every file as it is
        typer.echo(f"harden: error: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
