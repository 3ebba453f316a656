"""Just enough POSIX shell to read an entrypoint script without running it.

`commands(text)` splits a script into simple commands (words as written, their
redirections, the line each starts on, whether a pipe feeds it): quotes, backslash escapes, line continuations,
comments, `$(...)` / backticks / `${...}` inside words, and here-document bodies (skipped)
are handled; control flow is not interpreted, so every branch is seen. `expand(word,
scope)` removes quotes and substitutes the variables it can know.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

#: command separators
_SEPARATORS = ("&&", "||", ";;", ";&", "|&", ";", "&", "|", "(", ")", "\n")
#: redirection operators, longest first
_REDIRECTS = ("&>>", "<<-", "<<<", ">>", "<<", ">&", "<&", "<>", ">|", "&>", ">", "<")


@dataclass
class Command:
    words: list[str] = field(default_factory=list)  # as written, quotes kept
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (operator, target as written)
    line: int = 0
    piped: bool = False  # its input is the output of the command before it (`a | b`: b)


def _skip_balanced(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the `close` matching the `open_` at text[i] (quotes respected)."""
    depth, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and open_ == "(":
            end = text.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if c == '"':
            i = _skip_double(text, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _skip_double(text: str, i: int) -> int:
    """Index just past the double-quoted string starting at text[i]."""
    i, n = i + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i = _expansion_end(text, i)
    return n


def _expansion_end(text: str, i: int) -> int:
    """Past a `$(...)`, `${...}` or backquoted expansion starting at `i`, else past one character."""
    if text.startswith("$(", i):
        return _skip_balanced(text, i + 1, "(", ")")
    if text.startswith("${", i):
        return _skip_balanced(text, i + 1, "{", "}")
    if text[i] == "`":
        end = text.find("`", i + 1)
        return len(text) if end < 0 else end + 1
    return i + 1


def _word_end(text: str, i: int) -> int:
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\n;&|()<>":
            return i
        if c == "\\":
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            i = n if end < 0 else end + 1
        elif c == '"':
            i = _skip_double(text, i)
        else:
            i = _expansion_end(text, i)
    return n


def commands(text: str) -> Iterator[Command]:
    """The simple commands of a script, in order of appearance."""
    i, n, line = 0, len(text), 1
    current = Command(line=1)
    heredocs: list[tuple[str, bool]] = []
    pending_redirect: str | None = None

    def finish(piped: bool = False) -> Iterator[Command]:
        nonlocal current
        if current.words or current.redirects:
            yield current
            current = Command(line=line, piped=piped)
        else:  # `a |` then a newline: the pipe goes on
            current = Command(line=line, piped=current.piped or piped)

    while i < n:
        c = text[i]
        if c == "\\" and text.startswith("\\\n", i):
            i, line = i + 2, line + 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c == "\n":
            i, line = i + 1, line + 1
            yield from finish()
            while heredocs:  # bodies start on the next line
                delimiter, strip_tabs = heredocs.pop(0)
                while i < n:
                    end = text.find("\n", i)
                    body_line = text[i:] if end < 0 else text[i:end]
                    i, line = (n if end < 0 else end + 1), line + 1
                    if (body_line.lstrip("\t") if strip_tabs else body_line).rstrip("\r") == delimiter:
                        break
            current.line = line
            continue
        redirect = next((op for op in _REDIRECTS if text.startswith(op, i)), None)
        if redirect and not (redirect in ("<", ">") and text.startswith(redirect + "(", i)):
            pending_redirect = redirect
            i += len(redirect)
            continue
        separator = next((op for op in _SEPARATORS if text.startswith(op, i)), None)
        if separator:
            i += len(separator)
            yield from finish(separator in ("|", "|&"))
            continue
        end = _skip_balanced(text, i + 1, "(", ")") if text.startswith(("<(", ">("), i) else _word_end(text, i)
        if end <= i:  # a character no rule takes: step over it
            i += 1
            continue
        word = text[i:end]
        line += word.count("\n")
        if end < n and text[end] in "<>" and word.isdigit():  # `2>/dev/null`: an fd number
            i = end
            continue
        if pending_redirect:
            if pending_redirect in ("<<", "<<-"):
                heredocs.append((unquote(word), pending_redirect == "<<-"))
            else:
                current.redirects.append((pending_redirect, word))
            pending_redirect = None
        else:
            current.words.append(word)
        i = end
    yield from finish()


def unquote(word: str) -> str:
    """The word with quotes and backslashes removed and nothing substituted: `$X`, `${...}`,
    `$(...)` and backquotes stay as written (`_expand` without a scope)."""
    return _expand(word, None, None)


# --- substitution ----------------------------------------------------------------------

#: a part of an expanded word that could not be known
UNKNOWN = "\x00"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=+?])(.*))?$", re.S)

#: name -> value; None marks a variable known to hold something we cannot know
Scope = Mapping[str, "str | None"]


def _parameter(body: str, scope: Scope, assign: Callable[[str, str], None] | None) -> str:
    match = _BRACED.match(body)
    if not match:
        return UNKNOWN  # ${#x}, ${x%pat}, ${x/a/b}, ${1}, ...
    name, op, arg = match.groups()
    present = name in scope
    value = scope.get(name)
    if op is None:
        return value if present and value is not None else UNKNOWN
    if present and value is None:
        return UNKNOWN
    empty = present and value == "" if op.startswith(":") else False
    unset_or_empty = (not present) or empty
    if op.endswith("-"):
        return _expand(arg, scope, assign) if unset_or_empty else value  # type: ignore[return-value]
    if op.endswith("="):
        if unset_or_empty:
            default = _expand(arg, scope, assign)
            if assign is not None and UNKNOWN not in default:
                assign(name, default)
            return default
        return value  # type: ignore[return-value]
    if op.endswith("+"):
        return UNKNOWN if not present else ("" if unset_or_empty else _expand(arg, scope, assign))
    return value if present and not empty else UNKNOWN  # ${x:?message}


def _expand(text: str, scope: Scope | None, assign: Callable[[str, str], None] | None, *, quoted: bool = False) -> str:
    """Quotes and backslashes removed; with a `scope`, the expansions substituted from it
    (UNKNOWN where they cannot be known); without one (None, `unquote`), they stay as
    written and double quotes are dropped where they stand."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        elif c == "'" and not quoted:
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            out.append(text[i + 1 : end])
            i = end + 1
        elif c == '"':
            end = _skip_double(text, i)
            inner = text[i + 1 : end - 1] if text[end - 1 : end] == '"' else text[i + 1 : end]
            out.append(_expand(inner, scope, assign, quoted=True))
            i = end
        elif c == "`" and scope is not None:
            end = text.find("`", i + 1)
            out.append(UNKNOWN)
            i = n if end < 0 else end + 1
        elif c == "$" and i + 1 < n and scope is not None:
            nxt = text[i + 1]
            if nxt == "(":
                end = _skip_balanced(text, i + 1, "(", ")")
                out.append(UNKNOWN)
                i = end
            elif nxt == "{":
                end = _skip_balanced(text, i + 1, "{", "}")
                out.append(_parameter(text[i + 2 : end - 1], scope, assign))
                i = end
            else:
                match = _NAME.match(text, i + 1)
                if match:
                    name = match.group(0)
                    value = scope.get(name)
                    out.append(value if name in scope and value is not None else UNKNOWN)
                    i = match.end()
                elif nxt in "@*#?$!-0123456789":
                    out.append(UNKNOWN)
                    i += 2
                else:
                    out.append("$")
                    i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(word: str, scope: Scope, assign: Callable[[str, str], None] | None = None) -> str:
    """`word` with quotes removed and variables substituted from `scope`; each part that
    cannot be known (an unset or unknown variable, `$(...)`, `$@`, ...) becomes UNKNOWN.
    `${X:-default}` of an unset X is its default: what the script uses when nothing is
    set. `assign(name, value)` receives `${X:=default}` assignments."""
    return _expand(word, scope, assign)
