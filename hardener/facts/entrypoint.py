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
* `script_globs`: the scripts it runs from a directory, as globs over a literal directory
  of the image: `for f in /docker-entrypoint.d/*.sh; do ... "$f"` gives
  `/docker-entrypoint.d/*.sh` (its direct entries), `find /docker-entrypoint.d/ -type f |
  sort -V | while read -r f; do ... "$f"` (or `find DIR -exec {} +`) gives
  `/docker-entrypoint.d/**/*` (any depth; `-name PAT` in place of the last `*`). A loop
  counts only when its body runs the file (`"$f"`, `. "$f"`, `sh "$f"`, ...), so a loop
  over templates or config files does not. `gather` reads those scripts and merges what
  they do.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .commands import READERS
from .model import Drop, EntrypointFacts
from .shell import UNKNOWN, Command, commands, expand, unquote

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
_RUNNERS = frozenset({".", "source"}) | _SHELLS
_FIND_FIRST = frozenset({"-H", "-L", "-P"})


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
    script_globs: list[str] = field(default_factory=list)
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


def dir_glob(value: str) -> str | None:
    """`/dir/*.sh` when `value` (expanded) is a glob over the entries of a literal,
    absolute directory other than `/`; None otherwise."""
    if not value.startswith("/") or UNKNOWN in value:
        return None
    directory, _, pattern = value.rpartition("/")
    if not pattern or _first_glob(pattern) < 0 or _first_glob(directory) >= 0:
        return None
    directory = posixpath.normpath(directory or "/")
    return None if directory == "/" else f"{directory}/{pattern}"


def find_globs(args: Sequence[str]) -> list[str]:
    """Globs of the regular files `find ARGS` lists: `/dir/**/PAT` (`-name PAT`, else
    `*`), `/dir/PAT` with `-maxdepth 1`; none for other types or unknown start paths."""
    args = list(args)
    while args and (args[0] in _FIND_FIRST or args[0].startswith(("-O", "-D"))):
        if args[0] == "-D" and len(args) > 1:
            args.pop(0)  # -D takes its debug options as the next word
        args.pop(0)
    starts = []
    while args and not args[0].startswith("-") and args[0] not in ("(", "!", ")", ","):
        starts.append(args.pop(0))
    pattern, recursive = "*", True
    for option, value in zip(args, args[1:]):
        if option in ("-name", "-iname"):
            pattern = value if value and UNKNOWN not in value and "/" not in value else "*"
        elif option == "-maxdepth" and value in ("0", "1"):
            recursive = False
        elif option in ("-type", "-xtype") and "f" not in value.split(","):
            return []
    globs = []
    for start in starts:
        if not start.startswith("/") or UNKNOWN in start or _first_glob(start) >= 0:
            continue
        directory = posixpath.normpath(start)
        if directory != "/":
            globs.append(f"{directory}/**/{pattern}" if recursive else f"{directory}/{pattern}")
    return globs


def _runs_word(word: str, var: str) -> bool:
    """`word` (as written) is the loop variable alone: `$f`, `"$f"`, `${f}`."""
    return word.replace('"', "") in (f"${var}", f"${{{var}}}")


def _runs(words: Sequence[str], var: str) -> bool:
    """The command (keywords stripped) runs or sources the file named by `$var`."""
    if not words:
        return False
    if _runs_word(words[0], var):
        return True
    if words[0] in _RUNNERS or posixpath.basename(unquote(words[0])) in _SHELLS:
        operands = [w for w in words[1:] if not w.startswith("-")]
        return bool(operands) and _runs_word(operands[0], var)
    return False


@dataclass
class _Loop:
    var: str | None = None
    globs: tuple[str, ...] = ()
    runs: bool = False


class _Loops:
    """Follows `for` / `while` / `until` ... `done` through the commands of a script to
    see the loops that run each file of a directory (`script_globs`)."""

    def __init__(self, analyser: _Analyser) -> None:
        self.analyser = analyser
        self.stack: list[_Loop] = []
        self.pipeline: list[list[str]] = []

    def see(self, command: Command) -> None:
        words = command.words
        i = 0
        opened = 0
        header: _Loop | None = None
        while i < len(words):
            word = words[i]
            if word == "done":
                self.close()
            elif word in ("while", "until"):
                opened += 1
            elif word in ("for", "select"):
                header = self.for_header(words[i + 1:])
                opened += 1
                break
            elif word not in _KEYWORDS:
                break
            i += 1
        rest = [] if header is not None else words[i:]
        self.pipeline = [*self.pipeline, rest] if command.piped else [rest]
        if opened:
            reader = list(rest)
            while reader and _ASSIGNMENT.match(reader[0]):  # `while IFS= read -r f`
                reader.pop(0)
            if header is None and opened == 1 and reader[:1] == ["read"] and len(reader) > 1 and command.piped:
                header = self.read_header(reader)
            self.stack.extend(_Loop() for _ in range(opened - 1))
            self.stack.append(header or _Loop())
        elif rest:
            for loop in reversed(self.stack):
                if loop.var and _runs(rest, loop.var):
                    loop.runs = True
                    break
            if posixpath.basename(unquote(rest[0])) == "find":
                self.find_exec(rest[1:])

    def close(self) -> None:
        if self.stack:
            loop = self.stack.pop()
            if loop.runs:
                self.analyser.script_globs.extend(loop.globs)

    def for_header(self, words: list[str]) -> _Loop:
        """`for VAR in WORD...`: a loop over the files of the directory globs among the words."""
        if len(words) < 2 or words[1] != "in" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", words[0]):
            return _Loop()
        self.analyser.scope[words[0]] = None  # each file in turn: not a value known here
        globs = [dir_glob(self.analyser.value(w)) for w in words[2:]]
        return _Loop(words[0], tuple(g for g in globs if g))

    def read_header(self, rest: list[str]) -> _Loop:
        """`find DIR ... | [filters |] while read [-r] VAR`: a loop over what find lists."""
        var = rest[-1]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
            return _Loop()
        self.analyser.scope[var] = None
        first = self.pipeline[0] if self.pipeline else []
        if not first or posixpath.basename(unquote(first[0])) != "find":
            return _Loop(var)
        return _Loop(var, tuple(find_globs([self.analyser.value(w) for w in first[1:]])))

    def find_exec(self, raw: list[str]) -> None:
        """`find DIR ... -exec {} +` (or `-exec sh {} +`): each file found is run."""
        for option, first, second in zip(raw, raw[1:], [*raw[2:], ""]):
            if option in ("-exec", "-execdir", "-ok") and (unquote(first) == "{}" or (
                    posixpath.basename(unquote(first)) in _SHELLS and unquote(second) == "{}")):
                self.analyser.script_globs.extend(find_globs([self.analyser.value(w) for w in raw]))
                return


def _facts(analyser: _Analyser, text: str = "") -> EntrypointFacts:
    return EntrypointFacts(
        drops=tuple(dict.fromkeys(analyser.drops)),
        s6_overlay=analyser.s6 or bool(_S6.search(text)),
        puid_pgid=analyser.puid_pgid or bool(_PUID.search(text)),
        checks_root=bool(_CHECKS_ROOT.search(text)),
        chowns=tuple(dict.fromkeys(analyser.chowns)),
        writes=tuple(dict.fromkeys(analyser.writes)),
        unresolved=tuple(dict.fromkeys(analyser.unresolved)),
        script_globs=tuple(dict.fromkeys(analyser.script_globs)),
    )


def analyse_script(text: str, env: Mapping[str, str] | None = None, workdir: str | None = None) -> EntrypointFacts:
    """Facts of a shell script; `env` is the image's ENV, `workdir` its WORKDIR."""
    analyser = _Analyser(scope=dict(env or {}), cwd=workdir or None)
    loops = _Loops(analyser)
    for command in commands(text):
        loops.see(command)
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


def program_names(entrypoint: Sequence[str] | None, cmd: Sequence[str] | None) -> tuple[str, ...]:
    """The programs as written: first the one the container runs (the exec-form
    entrypoint[0], else cmd[0]), then cmd[0] when an entrypoint runs before it (what an
    `exec "$@"` starts) and the command after init wrappers (`tini -- server`)."""
    names = [(entrypoint or cmd or ("",))[0]]
    if entrypoint and cmd:
        names.append(cmd[0])
    names.append((_argv_of(entrypoint, cmd) or [""])[0])
    return tuple(n for n in dict.fromkeys(names) if n and not n.startswith("-"))


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
