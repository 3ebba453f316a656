"""Delivering a report: what goes to stdout, stderr and the report file, output paths checked
before any work, the report file written atomically."""


from __future__ import annotations

import os
from typing import Callable, Optional

from .output import Verbosity, style
from .report import Report


Echo = Callable[..., None]  # typer.echo


def deliver(rep: Report, fmt: str, *, stdout: str, report_file: Optional[str], verbosity: Verbosity,
            colour_out: bool, colour_err: bool, echo: Echo) -> None:
    """Print the report of `rep`. `stdout` says what the command already put on stdout:
    "report" (nothing yet: the report in `fmt` goes there), "diff" or "text" (a diff or the
    hardened text), "nothing" (`fix` in place).

    * With `report_file`, the report in `fmt` goes to that file and stdout carries the
      human text report (when it carries nothing else).
    * Errors go to stderr, once. Risks go to stderr unless stdout carries them (the text
      report, or a machine report). The summary goes to stderr unless quiet.
    """
    quiet = verbosity is Verbosity.QUIET
    text_on_stdout = False
    if stdout == "report":
        if report_file or fmt == "text":
            if not quiet:
                echo(rep.render("text", errors=False, colour=colour_out, verbose=verbosity is Verbosity.VERBOSE), nl=False, color=colour_out)
                text_on_stdout = True
        else:
            echo(rep.render(fmt), nl=False)
    elif stdout == "nothing" and verbosity is Verbosity.VERBOSE:
        echo(rep.render("text", errors=False, colour=colour_err, verbose=True), nl=False, err=True, color=colour_err)
        text_on_stdout = True  # said on stderr already
    for line in rep.errors():
        echo(style(line, "error", colour_err), err=True, color=colour_err)
    machine_on_stdout = stdout == "report" and not report_file and fmt != "text"
    if not text_on_stdout and not machine_on_stdout:
        for risk in rep.risks():
            if quiet and not risk.fails:
                continue
            kind = "accepted" if risk.accepted else "risk" if risk.fails else "warning"
            echo(style(risk.line(), kind, colour_err), err=True, color=colour_err)
    if report_file:
        write_report(report_file, rep.render(fmt))
    if not quiet:
        echo(rep.summary(), err=True)


class ReportFileError(Exception):
    """The report file cannot be written; the message says why."""


def check_output_path(path: str, what: str = "report file") -> None:
    """Refuse, before any work, an output path that cannot be written: a directory, a
    missing or unwritable directory, an unwritable file."""
    if path in ("", "-"):
        raise ReportFileError(f"{what} {path!r}: give a file name")
    if os.path.isdir(path):
        raise ReportFileError(f"{what} {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ReportFileError(f"{what} {path}: directory {parent} does not exist")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ReportFileError(f"{what} {path}: not a regular file")
    if not os.access(parent, os.W_OK | os.X_OK):  # written as a temp file beside it, then renamed
        raise ReportFileError(f"{what} {path}: cannot write in {parent} (permission denied)")


def write_report(path: str, content: str) -> None:
    """Write the report atomically (temp file beside it, rename)."""
    import tempfile

    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, temp = tempfile.mkstemp(prefix=".harden-report-", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ReportFileError(f"report file {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            os.fchmod(handle.fileno(), 0o644 & ~_umask())  # by descriptor: the path may have been swapped
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise ReportFileError(f"report file {path}: {exc.strerror or exc}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
