"""Command line: parse arguments, call the shell, map outcomes to exit codes.

Exit codes: 0 done or nothing to do · 1 changes pending (check, fix --diff) · 2 error.
stdout carries the diff / report / hardened text; stderr the summary and errors.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from typing import List, Optional

import typer

from . import report
from .core import failed, harden_text
from .files import MAX_BYTES, FileOutcome, decode, discover, loader_check, unified_diff
from .image_lookup import FactsOptions, facts_for_text
from .project import process_paths
from .model import HardenError, InputError, Project, Status
from .passes import BY_ID, CONTROLS
from .profile import Profile, builtin_names, load_profile, profile_for

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Harden Docker Compose files: non-root, read-only, no capabilities, no-new-privileges, limits.")


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


PathsArg = typer.Argument(..., help="Compose files, directories, or - for stdin.")
ProfileOpt = typer.Option(None, "--profile", "-p", help="Built-in profile name or a profile YAML file [default: the nearest .harden.yaml, up to the repository root, else baseline].")
SkipOpt = typer.Option(None, "--skip", help="Control to leave alone (repeatable): " + ", ".join(CONTROLS))
RecursiveOpt = typer.Option(False, "--recursive", "-r", help="Search directories recursively.")
JobsOpt = typer.Option(0, "--jobs", "-j", min=0, help="Worker processes (0: one per CPU).")
FormatOpt = typer.Option(Format.text, "--format", "-f", help="Report format.")
ReportOpt = typer.Option(None, "--report", help="Also write the report to this file.")
ComposeOpt = typer.Option(True, "--compose-check/--no-compose-check", help="Also validate with the Docker Compose v2 loader when installed.")
FactsOpt = typer.Option(True, "--image-facts/--no-image-facts", help="Read each image's user, volumes and entrypoint (local engine, registry; cached by digest) and harden from them.")
OfflineOpt = typer.Option(False, "--offline", help="Never touch the network: image facts from the cache and the local engine only (also HARDEN_OFFLINE=1).")


def _fail(message: str) -> None:
    typer.echo(f"harden: error: {message}", err=True)
    raise typer.Exit(2)


def _setup(profile: Optional[str], skip: Optional[List[str]]) -> tuple[Optional[Profile], frozenset[str]]:
    """The profile given with --profile (None: each project's own .harden.yaml) and the skips."""
    skips = frozenset(skip or [])
    bad = sorted(skips - set(CONTROLS))
    if bad:
        _fail(f"unknown control {bad[0]!r} for --skip; controls: {', '.join(CONTROLS)}")
    try:
        return (load_profile(profile) if profile else None), skips
    except HardenError as exc:
        _fail(exc.message)


def _profile_here(prof: Optional[Profile], directory: str) -> Profile:
    try:
        return prof or profile_for(directory)
    except HardenError as exc:
        _fail(exc.message)


def _run(paths: List[str], profile: Optional[str], skip, recursive: bool, jobs: int, write: bool, use_compose: bool = True,
         facts: FactsOptions = FactsOptions(enabled=False)) -> list[FileOutcome]:
    prof, skips = _setup(profile, skip)
    if "-" in paths and len(paths) > 1:
        _fail("- (stdin) cannot be combined with other paths")
    if paths == ["-"]:
        try:
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise InputError(f"input too large (over {MAX_BYTES:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
            text = decode(data)
        except HardenError as exc:
            return [FileOutcome("-", failed("", exc))]
        here = _profile_here(prof, os.getcwd())
        project = Project(images=facts_for_text(text, facts))
        return [FileOutcome("-", loader_check(harden_text(text, here, skips, project), os.getcwd(), use_compose), profile=here.name)]
    files = discover(paths, recursive)
    if not files:
        _fail("no Compose files found in " + ", ".join(paths))
    return process_paths(files, prof, skips, write, jobs or os.cpu_count() or 1, use_compose, facts)


def _finish(rep: report.Report, fmt: Format, report_file: Optional[str]) -> None:
    """Errors and the summary to stderr, the report file; exit with the report's code."""
    for line in rep.errors():
        typer.echo(line, err=True)
    if report_file:
        with open(report_file, "w", encoding="utf-8") as handle:
            handle.write(rep.render(fmt.value))
    typer.echo(rep.summary(), err=True)
    raise typer.Exit(int(rep.exit_code))


@app.command()
def fix(
    paths: List[str] = PathsArg,
    diff: bool = typer.Option(False, "--diff", help="Print a unified diff and write nothing."),
    profile: Optional[str] = ProfileOpt,
    skip: Optional[List[str]] = SkipOpt,
    recursive: bool = RecursiveOpt,
    jobs: int = JobsOpt,
    fmt: Format = FormatOpt,
    report_file: Optional[str] = ReportOpt,
    compose_check: bool = ComposeOpt,
    image_facts: bool = FactsOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Rewrite Compose files in place so every service runs hardened."""
    outcomes = _run(paths, profile, skip, recursive, jobs, write=not diff, use_compose=compose_check,
                    facts=FactsOptions.from_environment(image_facts, offline))
    rep = report.Report(outcomes, "would change" if diff else "hardened", pending_is_failure=diff)
    stdin = paths == ["-"]
    if fmt is not Format.text:
        typer.echo(rep.render(fmt.value), nl=False)
    elif diff:
        review = report.unverified(outcomes)
        if review:  # before the diff (patch tools skip leading lines): a reviewer reads these first
            typer.echo(f"# {len(review)} value{'s' if len(review) != 1 else ''} rest on the profile default alone (unverified); review them first:")
            for line in review:
                typer.echo(f"#   {line}")
        for o in outcomes:
            if o.result.status is Status.CHANGED:
                typer.echo(unified_diff(o.path if o.path != "-" else "stdin", o.result), nl=False)
    elif stdin and outcomes[0].result.status is not Status.ERROR:
        sys.stdout.write(outcomes[0].result.text)
        sys.stdout.flush()
    if fmt is Format.text and not diff:
        for line in rep.findings():
            typer.echo(line, err=True)
    _finish(rep, fmt, report_file)


@app.command()
def check(
    paths: List[str] = PathsArg,
    profile: Optional[str] = ProfileOpt,
    skip: Optional[List[str]] = SkipOpt,
    recursive: bool = RecursiveOpt,
    jobs: int = JobsOpt,
    fmt: Format = FormatOpt,
    report_file: Optional[str] = ReportOpt,
    compose_check: bool = ComposeOpt,
    image_facts: bool = FactsOpt,
    offline: bool = OfflineOpt,
) -> None:
    """Write nothing; report what would change and the risks found. Exit 1 if changes are pending."""
    outcomes = _run(paths, profile, skip, recursive, jobs, write=False, use_compose=compose_check,
                    facts=FactsOptions.from_environment(image_facts, offline))
    rep = report.Report(outcomes, "would change", pending_is_failure=True)
    typer.echo(rep.render(fmt.value), nl=False)
    _finish(rep, fmt, report_file)


@app.command()
def explain(control: str = typer.Argument(..., help="Control id: " + ", ".join(CONTROLS))) -> None:
    """Print what a control changes, why, and what can break."""
    module = BY_ID.get(control)
    if module is None:
        _fail(f"unknown control {control!r}; controls: {', '.join(CONTROLS)}")
    typer.echo(f"{module.ID}: {module.SUMMARY}\n")
    typer.echo(module.__doc__.strip())


@app.command()
def profiles(
    action: str = typer.Argument("list", help="list | show"),
    name: str = typer.Argument("baseline", help="Profile to show."),
) -> None:
    """List the built-in profiles, or show one resolved with the source of each value."""
    if action == "list":
        for item in builtin_names():
            prof = load_profile(item)
            typer.echo(f"{item}: {prof.description}")
        return
    if action != "show":
        _fail(f"unknown action {action!r}; use list or show")
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
    already_hardened: bool = typer.Option(False, "--as-is", help="Verify the file as it is, without hardening it first."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run a stack with host-level access (privileged, host namespaces, sensitive host mounts, remote includes) without asking."),
) -> None:
    """Bring the hardened stack up on a local engine, prove it runs hardened, tear it down."""
    from .verify import run_verify

    prof, skips = _setup(profile, skip)
    prof = _profile_here(prof, os.path.dirname(os.path.abspath(file)))
    raise typer.Exit(run_verify(file, prof, skips, timeout, harden_first=not already_hardened, assume_yes=yes))


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

    prof, skips = _setup(profile, skip)
    raise typer.Exit(run_bulk(repos, prof, skips, branch, jobs or os.cpu_count() or 1, state, report_file))


def _say_interrupted(exc: BaseException) -> None:
    """What an interrupted run wrote (`project.Interrupted.written`), when it was one."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and not isinstance(cause, KeyboardInterrupt):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return  # a command that handled Ctrl-C itself (verify) and said so
    written = getattr(cause, "written", None)
    if written is None:
        typer.echo("harden: interrupted", err=True)
        return
    n = len(written)
    typer.echo(f"harden: interrupted; {n} file{'s' if n != 1 else ''} written before it stopped" + (":" if n else "; no file was changed"), err=True)
    for path in written:
        typer.echo(f"  {path}", err=True)
    if n:
        typer.echo("harden: every other file is as it was; run the same command again to finish", err=True)


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
