"""Checks shared by the fixture, property and corpus tests."""

from __future__ import annotations

from difflib import SequenceMatcher

HARDENING_WORDS = (
    "user", "read_only", "tmpfs", "cap_drop", "cap_add", "security_opt",
    "mem_limit", "cpus", "pids_limit", "deploy", "resources", "limits",
)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):  # the last line, without its line break
        lines[-1] += "\r\n" if "\r\n" in text else "\n"
    return lines


def lost_lines(original: str, output: str) -> list[str]:
    """Original lines that are not byte-identical in the output, other than lines that
    carry a hardening key or belong to a flow collection (on one line or several) that
    the change had to extend."""
    a, b = _lines(original), _lines(output)
    lost = []
    for tag, i1, i2, _, _ in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            open_flow = 0  # inside a flow collection a hardening key opened over several lines
            for line in a[i1:i2]:
                hardening = any(word in line for word in HARDENING_WORDS)
                opens = line.count("[") + line.count("{") - line.count("]") - line.count("}")
                if hardening or open_flow or opens > 0:  # a flow collection the change extended
                    open_flow = max(0, open_flow + opens)
                    continue
                if not line.rstrip().endswith(("}", "]")):
                    lost.append(line)
    return lost


def facts(text: str) -> tuple[bool, bool, bool]:
    """(BOM, CRLF, final line break) of a text (a lone CR is a line break for YAML)."""
    return text.startswith("\ufeff"), "\r\n" in text, text.endswith(("\n", "\r"))
