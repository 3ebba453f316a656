"""How a Compose text is written at the byte level, and its YAML documents as lines.

Pure text: a BOM, the line ends (per line where they are mixed, a lone CR included), a
missing final newline are taken off before parsing and put back on output; `---` / `...`
cut the text into documents. No YAML parsing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

BOM = "\ufeff"
DOC_START = re.compile(r"^---(?:[ \t]|$)")
_DOC_END = re.compile(r"^\.\.\.[ \t]*$")


@dataclass(frozen=True)
class TextFacts:
    """How the file is written at the byte level; restored on output."""

    bom: bool
    newline: str  # "\n", "\r\n", or "\r": CRLF where any line has it, else LF where any has it
    final_newline: bool
    # Lines ending otherwise than `newline` (mixed endings, a lone CR - a line break for
    # YAML): the file's lines, and the index -> line end of those.
    mixed: tuple[tuple[str, ...], dict[int, str]] | None = None


_LINE_END = re.compile(r"\r\n|\r|\n")


def split_facts(text: str) -> tuple[TextFacts, str]:
    """Strip BOM and line ends; return the facts and LF text that ends with a newline."""
    bom = text.startswith(BOM)
    if bom:
        text = text[1:]
    newline = "\r\n" if "\r\n" in text else "\n" if "\n" in text else "\r" if "\r" in text else "\n"
    mixed = None
    if newline != "\n" or "\r" in text:
        ends = _LINE_END.findall(text)
        text = _LINE_END.sub("\n", text)
        others = {i: end for i, end in enumerate(ends) if end != newline}
        if others:
            mixed = (tuple(text.split("\n")), others)
    final_newline = text.endswith("\n") or text == ""
    if not final_newline:
        text += "\n"
    return TextFacts(bom, newline, final_newline, mixed), text


def join_facts(facts: TextFacts, text: str) -> str:
    """Inverse of `split_facts`."""
    if not facts.final_newline and text.endswith("\n"):
        text = text[:-1]
    if facts.mixed is not None:
        text = _restore_mixed(facts.mixed, text, facts.newline)
    elif facts.newline != "\n":
        text = text.replace("\n", facts.newline)
    return (BOM if facts.bom else "") + text


def _restore_mixed(mixed: tuple[tuple[str, ...], dict[int, str]], text: str, newline: str) -> str:
    """`newline` everywhere, except on the lines that ended otherwise in the original (found
    by matching unchanged lines); inserted lines take `newline`."""
    original, others = mixed
    lines = text.split("\n")
    ends: dict[int, str] = {}
    for a, b, size in SequenceMatcher(None, original, lines, autojunk=False).get_matching_blocks():
        ends.update((b + k, others[a + k]) for k in range(size) if a + k in others)
    return "".join(line + ends.get(j, newline) for j, line in enumerate(lines[:-1])) + lines[-1]


def split_documents(text: str) -> list[tuple[int, str]]:
    """Cut LF text at `---` / `...` lines; each piece keeps its own marker lines."""
    lines = text.splitlines(keepends=True)
    pieces: list[tuple[int, list[str]]] = [(0, [])]
    seen_content = False
    for number, line in enumerate(lines):
        if DOC_START.match(line) and seen_content:
            pieces.append((number, []))
            seen_content = False
        pieces[-1][1].append(line)
        if _DOC_END.match(line):
            pieces.append((number + 1, []))
            seen_content = False
            continue
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not DOC_START.match(line):
            seen_content = True
    return [(start, "".join(chunk)) for start, chunk in pieces if chunk]
