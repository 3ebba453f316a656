"""`facts.shell.unquote` and `expand`: one scanner; unquote substitutes nothing.

The unquote table holds the shell's own quote removal: the words as `sh` would pass them
on, with every expansion left as written."""

from __future__ import annotations

import pytest

from hardener.facts.shell import UNKNOWN, expand, unquote

UNQUOTE = [
    ("plain", "plain"),
    ("''", ""),
    ('""', ""),
    ("'a b'", "a b"),
    ('"a b"', "a b"),
    ('"a\\"b"', 'a"b'),
    ("'a'\"b\"c", "abc"),
    ("E'O'F", "EOF"),
    ('"EOF"', "EOF"),
    ("'unterminated", "unterminated"),
    ('"unterminated', "unterminated"),
    # expansions stay as written, their quotes removed
    ("$X", "$X"),
    ('"$X"', "$X"),
    ("$", "$"),
    ("$$", "$$"),
    ("${", "${"),
    ('"${X:-y}"', "${X:-y}"),
    ("${X:-'a b'}", "${X:-a b}"),
    ("$(id -u)", "$(id -u)"),
    ('"$(echo "x")"', "$(echo x)"),
    ("`id -u`", "`id -u`"),
    ('"`id -u`"', "`id -u`"),
    # backslashes: the next character stands for itself, inside double quotes too
    ("a\\ b", "a b"),
    ("a\\\\b", "a\\b"),
    ("a\\", "a\\"),
    ("\\'x", "'x"),
    ("'a\\b'", "a\\b"),
    ('"a\\$b"', "a$b"),
    ("\\{\\}", "{}"),
    ("\\\n", "\n"),
    # a double quote is dropped where it stands: a ' inside it still quotes
    ('"a\'b"', "a'b"),  # a single quote inside double quotes is a character
    ('"a\'b\'c"', "a'b'c"),
    ('"$(echo \'a b\')"', "$(echo 'a b')"),
    ('"${X:-\'a b\'}"', "${X:-'a b'}"),
]


@pytest.mark.parametrize("word, expected", UNQUOTE)
def test_unquote(word: str, expected: str) -> None:
    assert unquote(word) == expected


SCOPE = {"X": "x", "EMPTY": "", "OPAQUE": None}


@pytest.mark.parametrize("word, expected", [
    ("$X", "x"),
    ('"$X"', "x"),
    ("'$X'", "$X"),
    ('"${X:-y}"', "x"),
    ('"${UNSET:-y}"', "y"),
    ("${EMPTY:-'a b'}", "a b"),
    ('"${UNSET:-\'a b\'}"', "a b"),
    ("$OPAQUE", UNKNOWN),
    ("`id -u`", UNKNOWN),
    ('"$(echo "x")"', UNKNOWN),
    ("a\\$X", "a$X"),
    ("$1", UNKNOWN),
    ("$", "$"),
])
def test_expand(word: str, expected: str) -> None:
    assert expand(word, SCOPE) == expected
