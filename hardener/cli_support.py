"""The command line's shared steps: set-up, running the files, the report's delivery, and
what an interrupted run says. `cli.py` holds only the commands and their options."""


from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import typing
from enum import Enum
from typing import Callable, List, Optional

import typer

from . import report
from .core import failed, harden_text
from .files import MAX_BYTES, FileOutcome, Keep, decode, discover, loader_check
from .image_lookup import FactsOptions, facts_for_text
from .project import process_paths
from .model import HardenError, InputError, Project
from .passes import CONTROLS
from .profile import Profile, load_profile, profile_for

class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"


def shared_options(options: type) -> Callable[[Callable], Callable]:
    """A decorator for commands that take the same options: appends the fields of the dataclass
    `options` (each field's default is its typer Option) to the command's own parameters, in
    their order, and calls the command with one instance of `options`, as `run`, in their place.
    Typer reads the command's parameters from its `__signature__` and `__annotations__`."""
    hints = typing.get_type_hints(options)
    shared = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(options)]

    def decorate(command: Callable) -> Callable:
        own = inspect.signature(command, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "run"] + shared

        @functools.wraps(command)
        def with_options(**kwargs):
            return command(run=options(**{p.name: kwargs.pop(p.name) for p in shared}), **kwargs)

        with_options.__signature__ = own.replace(parameters=params)
        with_options.__annotations__ = {p.name: p.annotation for p in params} | {"return": own.return_annotation}
        return with_options

    return decorate


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


_STDIN: dict[str, bytes] = {}  # what this run read from stdin, for `fix -` to echo back when it cannot harden it


def _run(paths: List[str], profile: Optional[str], skip, recursive: bool, jobs: int, write: bool, use_compose: bool = True,
         facts: FactsOptions = FactsOptions(enabled=False), stdin_filename: Optional[str] = None, exclusion=None,
         keep: Keep = Keep.ALL, emit: Optional[Callable[[FileOutcome], FileOutcome]] = None) -> list[FileOutcome]:
    prof, skips = _setup(profile, skip)
    if "-" in paths and len(paths) > 1:
        _fail("- (stdin) cannot be combined with other paths")
    if stdin_filename is not None and paths != ["-"]:
        _fail("--stdin-filename names the file read from stdin: give - as the path")
    _STDIN.clear()
    if paths == ["-"]:  # one text, kept whole whatever `keep` says: fix - prints it
        name = stdin_filename or "-"
        where = os.path.dirname(os.path.abspath(stdin_filename)) if stdin_filename else os.getcwd()
        try:
            data = _STDIN["raw"] = sys.stdin.buffer.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise InputError(f"input too large (over {MAX_BYTES:,} bytes; Compose files over {MAX_BYTES:,} bytes are refused)")
            text = decode(data)
        except HardenError as exc:
            return [FileOutcome(name, failed("", exc))]
        here = _profile_here(prof, where)
        project = Project(images=facts_for_text(text, facts))
        loader_dir = where if os.path.isdir(where) else os.getcwd()
        outcome = FileOutcome(name, loader_check(harden_text(text, here, skips, project), loader_dir, use_compose), profile=here.name)
        return [emit(outcome) if emit else outcome]
    files = discover(paths, recursive, exclusion)
    if not files:
        _fail("no Compose files found in " + ", ".join(paths))
    # --jobs 0: a worker per CPU, two with the Compose loader check: a worker waits for
    # the binary (a process of its own, on another CPU) about half of its time
    workers = jobs or (os.cpu_count() or 1) * (2 if use_compose else 1)
    return process_paths(files, prof, skips, write, workers, use_compose, facts, keep, emit)


def _echo_input() -> None:
    """`fix -` on input it cannot harden: the input goes back to stdout unchanged, byte for
    byte, as black does, so a filter never swallows a file. Input over the size limit is
    refused and not echoed (it was not read whole)."""
    raw = _STDIN.get("raw", b"")
    if len(raw) > MAX_BYTES:
        return
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(raw.decode("utf-8", "replace"))
        sys.stdout.flush()
        return
    sys.stdout.flush()
    out.write(raw)
    out.flush()


def _check_output(path: Optional[str], what: str = "report file") -> None:
    """An output path that cannot be written is a usage error before any work is done."""
    if path is not None:
        try:
            report.check_output_path(path, what)
        except report.ReportFileError as exc:
            _fail(str(exc))


def _exclusion(exclude: Optional[List[str]], extend_exclude: Optional[List[str]], respect_gitignore: bool, force_exclude: bool):
    from .exclude import Exclusion

    return Exclusion.from_options(exclude, extend_exclude, respect_gitignore, force_exclude)


def _fail_on(fail_on: "Optional[report.FailOn]", exit_zero: bool, default: "report.FailOn") -> "report.FailOn":
    return report.FailOn.NEVER if exit_zero else report.FailOn(fail_on or default)


def _say_excluded(exclusion, level) -> None:
    from .output import Verbosity

    if level is Verbosity.VERBOSE:
        for path, why in exclusion.excluded:
            typer.echo(f"harden: left out {path}: {why}", err=True)


def _finish(rep: report.Report, fmt: Format, report_file: Optional[str], stdout: str = "report", level=None) -> None:
    """The report to stdout, stderr and the report file (`report.deliver`); exit with the report's code."""
    from .output import Verbosity, use_colour

    try:
        report.deliver(rep, fmt.value, stdout=stdout, report_file=report_file, verbosity=Verbosity.NORMAL if level is None else level,
                       colour_out=use_colour(sys.stdout), colour_err=use_colour(sys.stderr), echo=typer.echo)
    except report.ReportFileError as exc:
        _fail(str(exc))
    raise typer.Exit(int(rep.exit_code))


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
