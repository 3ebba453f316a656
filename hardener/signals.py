"""The author's own signals: hardening a service's author tried and took back.

`#user: 1000:1000` commented out under `# not working rootless yet`, or `# read_only
breaks the upload cache`, says the author tried that control on this service and it failed
for them. Writing it back would break what they fixed; the control is skipped and the
comment is the reason. Pure text: the document's lines and where the service starts.
"""

from __future__ import annotations

import re

# A commented-out hardening key with a value of the form that key takes.
_COMMENTED_KEY = re.compile(
    r"""^\s*\#+\s*-?\s*(?:
        (?P<user>user)\s*:\s*["']?[A-Za-z0-9_.${}:-]+["']?
      | (?P<read_only>read_only)\s*:\s*["']?(?:true|yes|on)["']?
      | (?P<caps>cap_drop)\s*:\s*(?:\[.*\]|["']?[A-Z_]+["']?)?
      | (?P<nnp>(?:security_opt\s*:\s*\[?\s*)?["']?no-new-privileges(?:[:=]\s*true)?["']?\s*\]?)
      | (?P<res>mem_limit|memswap_limit|pids_limit|cpus)\s*:\s*["']?[0-9.]+[a-zA-Z]*["']?
    )\s*(?:\#.*)?$""",
    re.VERBOSE,
)
# A note about a control that says it failed.
_CONTROL_WORDS = {
    "user": re.compile(r"\b(?:rootless|non-?root|user:|`user`|runs? as (?:a |an )?(?:user|uid|non-?root))", re.I),
    "read_only": re.compile(r"\bread[_ -]?only\b", re.I),
    "capabilities": re.compile(r"\bcap_(?:drop|add)\b|\bcapabilit", re.I),
    "no_new_privileges": re.compile(r"no-new-privileges", re.I),
    "resources": re.compile(r"\b(?:mem_limit|pids_limit|memory limit|cpus)\b", re.I),
}
_FAILURE = re.compile(r"\b(?:break|breaks|broke|broken|not working|doesn'?t work|does not work|won'?t work|fails?|failed|"
                      r"crash\w*|cannot|can'?t|needs? root|must run as root|disabled? because)\b", re.I)
_GROUPS = {"user": "user", "read_only": "read_only", "caps": "capabilities",
           "nnp": "no_new_privileges", "res": "resources"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def service_comments(lines: list[str], start: int) -> list[tuple[int, str]]:
    """(index, text) of the comment lines that belong to the service whose key is on line
    `start` (0-based): below it, up to its last line; a comment at or left of the service's
    own column counts only when more of the service follows it."""
    column = _indent(lines[start])
    out: list[tuple[int, str]] = []
    pending: list[tuple[int, str]] = []
    for index in range(start + 1, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            (out if _indent(line) > column else pending).append((index, line))
            continue
        if _indent(line) <= column:
            break
        out += pending
        pending = []
    return sorted(out)


def author_signals(lines: list[str], start: int, first_line: int = 0) -> dict[str, str]:
    """control -> the author's comment that says to leave it alone, for the service whose
    key is on line `start` (0-based) of `lines`."""
    signals: dict[str, str] = {}
    comments = service_comments(lines, start)
    notes = []
    for position, (index, line) in enumerate(comments):
        match = _COMMENTED_KEY.match(line)
        if match and _nested(comments, position):
            continue  # a key inside a commented-out block (`#  - type: tmpfs` / `#    read_only: true`)
        if not match:
            notes.append((index, line))
            continue
        control = _GROUPS[next(name for name, value in match.groupdict().items() if value)]
        note = _note_above(comments, position)
        text = f"{line.strip()!r}" + (f" under {note!r}" if note else "")
        signals.setdefault(control, f"the file's author commented out {text} (line {index + 1 + first_line})")
    for index, line in notes:
        text = line.strip().lstrip("#").strip()
        if _FAILURE.search(text):
            for control, words in _CONTROL_WORDS.items():
                if words.search(text):
                    signals.setdefault(control, f"the file's author notes {line.strip()!r} (line {index + 1 + first_line})")
    return signals


def _column(line: str) -> int:
    """Where the commented text starts: `    #  user:` -> 7."""
    body = line.lstrip(" ")
    return len(line) - len(body) + len(body) - len(body.lstrip("#").lstrip(" ")) if body.startswith("#") else _indent(line)


def _nested(comments: list[tuple[int, str]], position: int) -> bool:
    """True when a comment line of the same commented-out block above starts further left:
    the key belongs to a commented-out parent (a list item, a mapping), not to the service."""
    index, line = comments[position]
    column = _column(line)
    for above_index, above in reversed(comments[:position]):
        if above_index != index - 1:
            break
        if _column(above) < column:
            return True
        index = above_index
    return False


def _note_above(comments: list[tuple[int, str]], position: int) -> str | None:
    """The comment line right above a commented-out key, if it is prose, not another key."""
    if position == 0:
        return None
    index, line = comments[position]
    above_index, above = comments[position - 1]
    if above_index != index - 1 or _COMMENTED_KEY.match(above):
        return None
    return above.strip()
