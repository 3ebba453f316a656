"""The commands an entrypoint reader understands, one function each.

Every reader gets the analyser (`drop(...)`, `path(...)`, `chowns`, `writes`, `s6`,
`puid_pgid`), the arguments after substitution, the same arguments as written, the line
and the command's name. Privilege drops: gosu, su-exec, s6-setuidgid, chpst -u, setpriv
--reuid, su / runuser, chroot --userspec, sudo -u. Files: chown / chgrp / find -exec chown
(`chowns`); mkdir, touch, tee, chmod, sed -i, cp / mv / ln / install targets and account
edits (`writes`).
"""

from __future__ import annotations

import posixpath
from typing import Any, Callable, Iterable, Sequence

from .shell import UNKNOWN


def options(args: Sequence[str], with_value: Iterable[str] = ()) -> tuple[dict[str, str], list[str]]:
    """Split `args` into {option: value} and operands (GNU style, `--` ends options)."""
    takes = set(with_value)
    opts: dict[str, str] = {}
    operands: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            operands.extend(args[i + 1 :])
            break
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg.partition("=")
            opts[key] = value
        elif arg.startswith("-") and arg not in ("-", "{}"):
            if arg in takes and i + 1 < len(args):
                opts[arg] = args[i + 1]
                i += 1
            else:
                opts[arg] = ""
        else:
            operands.append(arg)
        i += 1
    return opts, operands


def raw_for(args: Sequence[str], raw: Sequence[str], option: str) -> str:
    """The written argument that follows (or carries, `--opt=x`) `option`."""
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(raw):
            return raw[i + 1]
        if arg.startswith(option + "="):
            return raw[i].partition("=")[2]
    return ""


def _operands(args, raw, with_value=()):
    """The operands and the same operands as written."""
    _, operands = options(args, with_value)
    pairs, wanted = [], list(operands)
    for value, written in zip(args, raw):
        if wanted and value == wanted[0]:
            pairs.append((value, written))
            wanted.pop(0)
    return [v for v, _ in pairs], [w for _, w in pairs]


def _paths(a, values, written, bucket) -> None:
    for value, text in zip(values, written):
        a.path(value, text, bucket)


# --- privilege drops -------------------------------------------------------------------


def gosu(a, args, raw, line, tool) -> None:
    if args and not args[0].startswith("-"):
        a.drop(tool, args[0], raw[0], line)


def s6_setuidgid(a, args, raw, line, tool) -> None:
    a.s6 = True
    gosu(a, args, raw, line, tool)


def chpst(a, args, raw, line, tool) -> None:
    opts, _ = options(args, ("-u", "-U", "-e", "-n", "-l", "-L", "-m", "-d", "-o", "-p", "-f", "-c", "-r", "-t", "-b", "-/"))
    if "-u" in opts:
        a.drop(tool, opts["-u"], raw_for(args, raw, "-u"), line)


def setpriv(a, args, raw, line, tool) -> None:
    opts, _ = options(args, ("--reuid", "--regid", "--ruid", "--euid", "--rgid", "--egid", "--groups", "--inh-caps",
                             "--ambient-caps", "--bounding-set", "--securebits", "--selinux-label",
                             "--apparmor-profile", "--pdeathsig"))
    if "--reuid" in opts:
        a.drop(tool, opts["--reuid"], raw_for(args, raw, "--reuid"), line, opts.get("--regid"))


def su(a, args, raw, line, tool) -> None:
    """`su [opts] [-] USER [-c CMD]`, `runuser -u USER -- CMD`; no user is root: no drop."""
    opts, operands = options(args, ("-c", "--command", "-s", "--shell", "-g", "--group", "-G", "--supp-group", "-w",
                                    "--whitelist-environment", "-C", "--session-command", "-u", "--user"))
    operands = [o for o in operands if o != "-"]
    user = (opts.get("-u") or opts.get("--user")) if tool == "runuser" else None
    if user is None and operands:
        user = operands[0]
    if user:
        written = raw[args.index(user)] if user in args else user
        a.drop(tool, user, written, line, opts.get("-g") or opts.get("--group"))


def chroot(a, args, raw, line, tool) -> None:
    opts, _ = options(args, ("--userspec", "--groups"))
    if opts.get("--userspec"):
        a.drop(tool, opts["--userspec"], raw_for(args, raw, "--userspec"), line)


def sudo(a, args, raw, line, tool) -> None:
    opts, _ = options(args, ("-u", "--user", "-g", "--group", "-C", "-D", "-h", "-p", "-R", "-r", "-t", "-U", "-T"))
    user = opts.get("-u") or opts.get("--user")
    if user:
        a.drop(tool, user, raw_for(args, raw, "-u") or user, line, opts.get("-g") or opts.get("--group"))


# --- files -----------------------------------------------------------------------------


def chown(a, args, raw, line, tool) -> None:
    values, written = _operands(args, raw)
    skip = 0 if any(x.startswith("--reference") for x in args) else 1  # the owner
    _paths(a, values[skip:], written[skip:], a.chowns)


def find(a, args, raw, line, tool) -> None:
    """`find P... -exec chown ...`: the start paths are chowned."""
    if not any(x == "-exec" and posixpath.basename(y) in ("chown", "chgrp") for x, y in zip(args, args[1:])):
        return
    count = 0
    for x in args:
        if x.startswith("-") or x in ("!", "(", "\\!"):
            break
        count += 1
    _paths(a, args[:count] or ["."], raw[:count] or ["."], a.chowns)


def mkdir(a, args, raw, line, tool) -> None:
    _paths(a, *_operands(args, raw, ("-m", "--mode", "-Z")), a.writes)


def touch(a, args, raw, line, tool) -> None:
    _paths(a, *_operands(args, raw, ("-d", "-r", "-t", "--date", "--reference")), a.writes)


def tee(a, args, raw, line, tool) -> None:
    _paths(a, *_operands(args, raw), a.writes)


def chmod(a, args, raw, line, tool) -> None:
    values, written = _operands(args, raw)
    skip = 0 if any(x.startswith("--reference") for x in args) else 1  # the mode
    _paths(a, values[skip:], written[skip:], a.writes)


_SED_VALUE = ("-e", "--expression", "-f", "--file", "-l", "--line-length")


def sed(a, args, raw, line, tool) -> None:
    """`sed -i [-e EXPR | SCRIPT] FILE...`: the files are rewritten in place."""
    in_place = any(x.startswith("--in-place") or (x.startswith("-") and not x.startswith("--") and x[1:2] in set("inrEsuz")
                   and "i" in x) for x in args)
    if not in_place:
        return
    opts, _ = options(args, _SED_VALUE)
    values, written = _operands(args, raw, _SED_VALUE)
    skip = 0 if any(k in opts for k in ("-e", "--expression", "-f", "--file")) else 1  # the script
    _paths(a, values[skip:], written[skip:], a.writes)


def cp(a, args, raw, line, tool) -> None:
    """The target of cp / mv / ln / install (every operand of `install -d`)."""
    with_value = ("-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "--owner", "-g", "--group")
    opts, _ = options(args, with_value)
    target = opts.get("-t") or opts.get("--target-directory")
    if target:
        a.path(target, raw_for(args, raw, "-t") or target, a.writes)
        return
    values, written = _operands(args, raw, with_value if tool == "install" else with_value[:4])
    if tool == "install" and ("-d" in opts or "--directory" in opts):
        _paths(a, values, written, a.writes)
    elif len(values) >= 2:
        a.path(values[-1], written[-1], a.writes)


def accounts(a, args, raw, line, tool) -> None:
    """usermod / groupmod / useradd / ...: they rewrite /etc/passwd or /etc/group; a uid
    or gid taken from a variable is the PUID/PGID convention."""
    opts, _ = options(args, ("-u", "-g", "-d", "-s", "-G", "-c", "-l", "-e", "-f", "-p", "-R", "-P", "-Z", "-h"))
    if any(UNKNOWN in opts[k] or "$" in raw_for(args, raw, k) for k in ("-u", "-g") if k in opts):
        a.puid_pgid = True
    a.writes.append("/etc/group" if "group" in tool else "/etc/passwd")


READERS: dict[str, Callable[..., Any]] = {
    "gosu": gosu, "su-exec": gosu, "s6-setuidgid": s6_setuidgid, "chpst": chpst, "setpriv": setpriv,
    "su": su, "runuser": su, "chroot": chroot, "sudo": sudo,
    "chown": chown, "chgrp": chown, "lsiown": chown, "find": find, "mkdir": mkdir, "touch": touch, "tee": tee, "chmod": chmod,
    "sed": sed, "cp": cp, "mv": cp, "ln": cp, "install": cp,
    "usermod": accounts, "groupmod": accounts, "useradd": accounts, "adduser": accounts, "groupadd": accounts,
    "addgroup": accounts,
}
