"""What an entrypoint does before the server starts, read from its text (never run).

`analyse_script(text, env, workdir)` reads a script; `analyse_argv(argv)` reads an
exec-form `ENTRYPOINT` + `CMD` (`["gosu", "app", "server"]`); `script_target(entrypoint,
cmd)` says which file (or `sh -c` text) is the script. The result, `EntrypointFacts`:

* `drops`: each privilege drop (gosu, su-exec, setpriv --reuid, su / runuser, chroot
  --userspec, s6-setuidgid, chpst -u, sudo -u) with the user it drops to, `$VARS`
  resolved from the image's ENV and the script's own assignments where possible;
* `s6_overlay`, `puid_pgid` (PUID/PGID, `usermod -o -u "$PUID"`), `checks_root`;
* `chowns`: paths it chowns (`chown`, `chgrp`, `find P -exec chown`);
* `writes`: paths it creates or writes (`mkdir`, redirections, `sed -i`, `touch`, `tee`,
  `cp`/`mv`/`ln`/`install` targets, `chmod`, account edits): what needs a writable mount.
  When only the start of a path is known (`"$dir/$name"`), the deepest known directory.
* `unresolved`: such paths, as written, of which nothing useful is known.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .commands import READERS
from .model import Drop, EntrypointFacts
from .shell import UNKNOWN, Command, commands, expand

_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}",
                       "time", "exec", "command", "nohup", "builtin", "eval"})
_DECLARE = frozenset({"export", "local", "readonly", "declare", "typeset"})
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
_ROOT = frozenset({"root", "0"})
_WRAPPERS = frozenset({"tini", "tini-static", "dumb-init", "catatonit", "docker-init"})
_WRAPPER_ARGS = frozenset({"-e", "-p", "-r", "--rewrite"})
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"})
_NOT_FILES = ("/dev/", "/proc/", "/sys/")
_GLOB = re.compile(r"[*?\[{]")
_CHECKS_ROOT = re.compile(r"\bid\s+-u\s*[)`]|\$\{?EUID\b|\$\{?UID\b|\bwhoami\b")
_S6 = re.compile(r"with-contenv|/etc/s6-overlay|/package/admin/s6|\bs6-(?:setuidgid|svscan|envuidgid|overlay)\b")
_PUID = re.compile(r"\$\{?P[UG]ID\b")


@dataclass
class _Analyser:
    """What has been seen so far, and the variables (`scope`) and directory (`cwd`) the
    next command runs with, as far as they are known."""

    scope: dict[str, str | None]
    cwd: str | None
    drops: list[Drop] = field(default_factory=list)
    chowns: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    puid_pgid: bool = False
    s6: bool = False

    def assign(self, name: str, value: str) -> None:
        self.scope[name] = value  # may hold UNKNOWN parts: "/etc/nginx/conf.d/\x00" keeps its directory

    def value(self, raw: str) -> str:
        return expand(raw, self.scope, self.assign)

    def path(self, value: str, written: str, bucket: list[str]) -> None:
        if value in ("", "-", "{}") or value.startswith(_NOT_FILES) or value in ("/dev", "/proc"):
            return
        cut = min([i for i in (value.find(UNKNOWN), _first_glob(value)) if i >= 0], default=-1)
        if cut >= 0:
            known = value[:cut]
            directory = known[: known.rfind("/")] if known.startswith("/") else ""
            if directory:
                bucket.append(posixpath.normpath(directory))
            else:
                self.unresolved.append(written.replace(UNKNOWN, "?"))
            return
        if not value.startswith("/"):
            if self.cwd is None:
                self.unresolved.append(written)
                return
            value = posixpath.join(self.cwd, value)
        bucket.append(posixpath.normpath(value))

    def script_command(self, command: Command) -> None:
        for op, target in command.redirects:
            if op in (">", ">>", ">|", "&>", "&>>", "<>") or (op == ">&" and not target.isdigit() and target != "-"):
                self.path(self.value(target), target, self.writes)
        words = list(command.words)
        while words:
            head = words[0]
            match = _ASSIGNMENT.match(head)
            if match and len(words) == 1:
                self.assign(match.group(1), self.value(match.group(2)))
            if match or head in _KEYWORDS:
                words.pop(0)
            elif head in _DECLARE:
                for word in words[1:]:
                    assigned = _ASSIGNMENT.match(word)
                    if assigned:
                        self.assign(assigned.group(1), self.value(assigned.group(2)))
                return
            elif head == "env":
                words.pop(0)
                while words and (words[0].startswith("-") or _ASSIGNMENT.match(words[0])):
                    del words[: 2 if words[0] in ("-u", "--unset") else 1]
            elif head == "set" and len(words) > 2 and words[1] == "--":
                words = words[2:]
            else:
                break
        if words:
            self.argv([self.value(w) for w in words], words, command.line)

    def argv(self, argv: list[str], written: list[str], line: int) -> None:
        tool = posixpath.basename(argv[0])
        if argv[0] == "/init":
            self.s6 = True
        reader = READERS.get(tool)
        if reader is not None and UNKNOWN not in argv[0]:
            reader(self, argv[1:], written[1:], line, tool)

    def drop(self, tool: str, spec: str, written: str, line: int, group: str | None = None) -> None:
        """Record a drop to `spec` (`user[:group]`); a drop to root is none."""
        user, _, group_part = spec.partition(":")
        group = group_part or group
        known = UNKNOWN not in spec and (group is None or UNKNOWN not in group)
        if known and user in _ROOT:
            return
        self.drops.append(Drop(tool, user if known and user else None, group if known else None, written, line))


def _first_glob(value: str) -> int:
    match = _GLOB.search(value)
    return match.start() if match else -1


def _facts(analyser: _Analyser, text: str = "") -> EntrypointFacts:
    return EntrypointFacts(
        drops=tuple(dict.fromkeys(analyser.drops)),
        s6_overlay=analyser.s6 or bool(_S6.search(text)),
        puid_pgid=analyser.puid_pgid or bool(_PUID.search(text)),
        checks_root=bool(_CHECKS_ROOT.search(text)),
        chowns=tuple(dict.fromkeys(analyser.chowns)),
        writes=tuple(dict.fromkeys(analyser.writes)),
        unresolved=tuple(dict.fromkeys(analyser.unresolved)),
    )


def analyse_script(text: str, env: Mapping[str, str] | None = None, workdir: str | None = None) -> EntrypointFacts:
    """Facts of a shell script; `env` is the image's ENV, `workdir` its WORKDIR."""
    analyser = _Analyser(scope=dict(env or {}), cwd=workdir or None)
    for command in commands(text):
        if command.words and command.words[0] == "cd" and len(command.words) == 2:
            target = analyser.value(command.words[1])
            if UNKNOWN in target:
                analyser.cwd = None
            elif target.startswith("/"):
                analyser.cwd = posixpath.normpath(target)
            elif analyser.cwd is not None:
                analyser.cwd = posixpath.normpath(posixpath.join(analyser.cwd, target))
            continue
        analyser.script_command(command)
    return _facts(analyser, text)


def _unwrap(argv: Sequence[str]) -> list[str]:
    """`argv` without init wrappers in front (`tini --`, `dumb-init`, ...)."""
    argv = list(argv)
    while argv and posixpath.basename(argv[0]) in _WRAPPERS:
        argv.pop(0)
        while argv and argv[0].startswith("-"):
            option = argv.pop(0)
            if option == "--":
                break
            if option in _WRAPPER_ARGS and argv:
                argv.pop(0)
    return argv


def _argv_of(entrypoint: Sequence[str] | None, cmd: Sequence[str] | None) -> list[str]:
    return _unwrap([*entrypoint, *(cmd or ())] if entrypoint else list(cmd or ()))


def analyse_argv(entrypoint: Sequence[str] | None, cmd: Sequence[str] | None,
                 env: Mapping[str, str] | None = None, workdir: str | None = None) -> EntrypointFacts:
    """Facts of the exec-form command line (no shell: words are taken literally), and of
    the text of `sh -c "..."` when that is how it starts."""
    argv = _argv_of(entrypoint, cmd)
    if not argv:
        return EntrypointFacts()
    analyser = _Analyser(scope=dict(env or {}), cwd=workdir or None)
    analyser.argv(argv, argv, 0)
    facts = _facts(analyser)
    target = script_target(entrypoint, cmd)
    if target and target[0] == "inline":
        facts = facts.merged(analyse_script(target[1], env, workdir))
    return facts


def script_target(entrypoint: Sequence[str] | None, cmd: Sequence[str] | None) -> tuple[str, str] | None:
    """("path", file) of the script the container starts with (a name without `/` is
    looked up in PATH), ("inline", text) for `sh -c text`, or None (`/init`, nothing)."""
    argv = _argv_of(entrypoint, cmd)
    if not argv or argv[0] == "/init":
        return None
    if posixpath.basename(argv[0]) in _SHELLS:
        rest = argv[1:]
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            if option == "-c" or (option.startswith("-") and not option.startswith("--") and option.endswith("c")):
                return ("inline", rest[0]) if rest else None
            if option == "--":
                break
        return ("path", rest[0]) if rest else None
    return ("path", argv[0])
