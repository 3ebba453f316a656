"""Render an edited tree as a minimal text patch onto the original.

ruamel.yaml's dump of a whole file rewrites trailing blanks, flow spacing, joined lines and
more, so it is never written as the file. Instead: R0 = dump of the unedited tree, R1 =
dump of the edited tree. O (the original) is aligned with R0 on a whitespace-blind key,
R0 with R1 exactly; every R0→R1 difference is spliced into O at the aligned place, taking
the indentation of a sibling in O. Lines outside those differences are O's own bytes.

A flow collection the author wrote over several lines is one line in R0: for the
alignment, O's lines are grouped into logical lines (an open bracket runs until it
closes), so each R0 line maps to a range of O lines.

Both alignments (O with R0, R0 with R1) take time linear in the file: a text of up to
`_EXACT` lines on both sides is aligned as `difflib.SequenceMatcher` aligns it; a longer
one is first cut at the lines it has in common that occur once on each side (a service's
header, its image, ...), kept in order, and each piece between two such lines is aligned
the same way (patience alignment). Edits only add to or change lines inside services, so
those lines are where the two sides correspond anyway. `unified_diff` shows an original
and its output for review with the same alignment, as `difflib.unified_diff` would.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from difflib import SequenceMatcher

from ..model import HardenError, RefusedError

_PUNCT = re.compile(r"\s+(?=[\[\]{},:])|(?<=[\[\]{},:])\s+")  # blanks next to flow punctuation
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
_MAX_LOGICAL = 500  # lines one flow collection may span before we stop joining
_EXACT = 2_000  # lines (both sides together) aligned by SequenceMatcher as one piece


def _fuzzy(line: str) -> str:
    """The line without its indentation, blank runs made one space, none next to `[]{},:`."""
    return _PUNCT.sub("", " ".join(line.split()))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_item(line: str) -> bool:
    stripped = line.lstrip(" ")
    return stripped.startswith("- ") or stripped == "-"


def _depth(line: str) -> int:
    """Open minus closed flow brackets on a line, outside quotes and comments."""
    if "[" not in line and "{" not in line and "]" not in line and "}" not in line:
        return 0
    text = _QUOTED.sub("", line)
    text = text.split(" #", 1)[0] if not text.lstrip().startswith("#") else ""
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def _logical(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) ranges of O: single lines, or a flow collection over several lines."""
    out = []
    i = 0
    while i < len(lines):
        end, depth = i + 1, _depth(lines[i])
        while depth > 0 and end < len(lines) and end - i < _MAX_LOGICAL:
            depth += _depth(lines[end])
            end += 1
        out.append((i, end) if depth <= 0 else (i, i + 1))
        i = out[-1][1]
    return out


def _shift(lines: list[str], delta: int) -> list[str]:
    if delta == 0:
        return lines
    out = []
    for line in lines:
        if delta > 0:
            out.append(" " * delta + line if line.strip() else line)
        else:
            cut = min(-delta, _indent(line))
            out.append(line[cut:])
    return out


def patch(original: str, r0: str, r1: str) -> str:
    """Apply the R0→R1 difference to `original` (all three LF, ending in newline)."""
    if r0 == r1:
        return original
    o_lines = original.split("\n")[:-1]
    r0_lines = r0.split("\n")[:-1]
    r1_lines = r1.split("\n")[:-1]

    groups = _logical(o_lines)
    keys = [_fuzzy(" ".join(o_lines[a:b])) for a, b in groups]
    to_o: dict[int, tuple[int, int]] = {}  # R0 line -> O range
    for i, j, size in _matching_blocks(keys, [_fuzzy(x) for x in r0_lines]):
        for k in range(size):
            to_o[j + k] = groups[i + k]

    edits = _opcodes(_matching_blocks(r0_lines, r1_lines))
    r1_to_r0: dict[int, int] = {}
    for tag, i1, i2, j1, j2 in edits:
        if tag == "equal":
            for k in range(i2 - i1):
                r1_to_r0[j1 + k] = i1 + k

    splices: list[tuple[int, int, list[str]]] = []
    for tag, i1, i2, j1, j2 in _refined(edits, r0_lines, r1_lines):
        if tag == "equal":
            continue
        new = r1_lines[j1:j2]
        if i2 > i1:
            if any(i not in to_o for i in range(i1, i2)):
                raise RefusedError("cannot place the change: the edited lines are written in a form the patcher does not follow")
            start, end = to_o[i1][0], to_o[i2 - 1][1]
            delta = _indent(o_lines[start]) - _indent(r0_lines[i1])
            if i2 - i1 == 1 and j2 - j1 == 1 and end - start == 1:
                new = [_own_comment_spacing(o_lines[start], r0_lines[i1], new[0])]
            splices.append((start, end, _shift(new, delta)))
        else:
            pos = _insert_position(i1, len(r0_lines), len(o_lines), to_o)
            delta = _sibling_delta(j1, new[0], r1_lines, r1_to_r0, to_o, o_lines)
            splices.append((pos, pos, _shift(new, delta)))

    return "\n".join(_spliced(o_lines, splices)) + "\n"


def _spliced(o_lines: list[str], splices: list[tuple[int, int, list[str]]]) -> list[str]:
    """`o_lines` with each (start, end, new) splice carried out, as if applied one by one
    from the last start to the first (of two at the same place, the later one first), in
    one pass over the lines."""
    order = sorted(range(len(splices)), key=lambda n: (splices[n][0], splices[n][1], -n))
    out: list[str] = []
    done = 0
    for n in order:
        start, end, new = splices[n]
        if start < done:  # overlapping splices (not made by `patch`): one at a time
            out = list(o_lines)
            for start, end, new in sorted(splices, key=lambda s: (s[0], s[1]), reverse=True):
                out[start:end] = new
            return out
        out.extend(o_lines[done:start])
        out.extend(new)
        done = end
    out.extend(o_lines[done:])
    return out


def _matching_blocks(a: list[str], b: list[str], autojunk: bool = False) -> list[tuple[int, int, int]]:
    """The (i, j, size) runs where `a[i:i+size] == b[j:j+size]`, in order, adjacent runs
    joined, ending with (len(a), len(b), 0) — as `SequenceMatcher.get_matching_blocks`
    gives them. A piece of up to `_EXACT` lines is aligned by SequenceMatcher itself; a
    longer one is cut at its unique common lines first (see the module docstring)."""
    found: list[tuple[int, int, int]] = []
    pieces = [(0, len(a), 0, len(b))]
    while pieces:
        alo, ahi, blo, bhi = pieces.pop()
        if alo == ahi or blo == bhi:
            continue
        if (ahi - alo) + (bhi - blo) <= _EXACT:
            _exact(a, b, alo, ahi, blo, bhi, found, autojunk)
            continue
        n = 0  # lines in common at the start and at the end belong together
        while alo + n < ahi and blo + n < bhi and a[alo + n] == b[blo + n]:
            n += 1
        if n:
            found.append((alo, blo, n))
            alo, blo = alo + n, blo + n
        n = 0
        while ahi - n > alo and bhi - n > blo and a[ahi - 1 - n] == b[bhi - 1 - n]:
            n += 1
        if n:
            found.append((ahi - n, bhi - n, n))
            ahi, bhi = ahi - n, bhi - n
        if alo == ahi or blo == bhi:
            continue
        anchors = _anchors(a, b, alo, ahi, blo, bhi)
        if not anchors:  # nothing to cut at: one piece, however long
            _exact(a, b, alo, ahi, blo, bhi, found, autojunk)
            continue
        for i, j in anchors:
            found.append((i, j, 1))
            pieces.append((alo, i, blo, j))
            alo, blo = i + 1, j + 1
        pieces.append((alo, ahi, blo, bhi))
    found.sort()
    out: list[tuple[int, int, int]] = []
    i1 = j1 = k1 = 0
    for i2, j2, k2 in found:
        if i1 + k1 == i2 and j1 + k1 == j2:
            k1 += k2
        else:
            if k1:
                out.append((i1, j1, k1))
            i1, j1, k1 = i2, j2, k2
    if k1:
        out.append((i1, j1, k1))
    out.append((len(a), len(b), 0))
    return out


def _exact(a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int, found: list[tuple[int, int, int]],
           autojunk: bool = False) -> None:
    matcher = SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=autojunk)
    found.extend((alo + i, blo + j, size) for i, j, size in matcher.get_matching_blocks() if size)


def _anchors(a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int) -> list[tuple[int, int]]:
    """The lines that occur exactly once in `a[alo:ahi]` and once in `b[blo:bhi]`, as
    (i, j) pairs: the longest chain of them in the same order on both sides."""
    seen: dict[str, int] = {}
    for i in range(alo, ahi):
        seen[a[i]] = -1 if a[i] in seen else i
    where: dict[str, int] = {}
    for j in range(blo, bhi):
        line = b[j]
        if seen.get(line, -1) >= 0:
            where[line] = -1 if line in where else j
    pairs = sorted((seen[line], j) for line, j in where.items() if j >= 0)
    # Longest chain increasing in j (patience sorting).
    tail_j: list[int] = []  # per chain length, the smallest last j of such a chain
    tails: list[int] = []  # and the index into `pairs` of that last pair
    back: list[int] = []
    for n, (_, j) in enumerate(pairs):
        k = bisect_left(tail_j, j)
        back.append(tails[k - 1] if k else -1)
        if k == len(tails):
            tail_j.append(j)
            tails.append(n)
        else:
            tail_j[k] = j
            tails[k] = n
    chain = []
    n = tails[-1] if tails else -1
    while n >= 0:
        chain.append(pairs[n])
        n = back[n]
    return chain[::-1]


def _opcodes(blocks: list[tuple[int, int, int]]) -> list[tuple[str, int, int, int, int]]:
    """`SequenceMatcher.get_opcodes` from matching blocks."""
    i = j = 0
    out = []
    for ai, bj, size in blocks:
        tag = "replace" if i < ai and j < bj else "delete" if i < ai else "insert" if j < bj else ""
        if tag:
            out.append((tag, i, ai, j, bj))
        i, j = ai + size, bj + size
        if size:
            out.append(("equal", ai, i, bj, j))
    return out


def _key(line: str) -> str:
    """What a line is about: its indentation and the key or item it starts with."""
    return " " * _indent(line) + _fuzzy(line).split(":", 1)[0]


def _refined(edits: list[tuple[str, int, int, int, int]], r0_lines: list[str], r1_lines: list[str]):
    """The R0→R1 opcodes, with each multi-line replacement split where R0 and R1 lines are
    about the same key: a line O has between them (one ruamel dropped, such as a line of
    only spaces) then stays where it is."""
    for tag, i1, i2, j1, j2 in edits:
        if tag != "replace" or (i2 - i1 == 1 and j2 - j1 == 1):
            yield tag, i1, i2, j1, j2
            continue
        keys = SequenceMatcher(None, [_key(x) for x in r0_lines[i1:i2]], [_key(x) for x in r1_lines[j1:j2]], autojunk=False)
        for sub, a1, a2, b1, b2 in keys.get_opcodes():
            if sub == "equal":  # the same keys in order: one replacement per changed line
                for k in range(a2 - a1):
                    i, j = i1 + a1 + k, j1 + b1 + k
                    yield ("equal" if r0_lines[i] == r1_lines[j] else "replace"), i, i + 1, j, j + 1
            else:
                yield sub, i1 + a1, i1 + a2, j1 + b1, j1 + b1 + (b2 - b1)


_COMMENT = re.compile(r"(\s+)(#.*)$")


def _own_comment_spacing(o_line: str, r0_line: str, r1_line: str) -> str:
    """A replaced line keeps the author's spacing before its end-of-line comment."""
    mine, dumped, edited = _COMMENT.search(o_line), _COMMENT.search(r0_line), _COMMENT.search(r1_line)
    if mine and dumped and edited and mine.group(2) == dumped.group(2) == edited.group(2):
        return r1_line[: edited.start()] + mine.group(0)
    return r1_line


def _insert_position(i1: int, r0_len: int, o_len: int, to_o: dict[int, tuple[int, int]]) -> int:
    if i1 > 0 and (i1 - 1) in to_o:
        return to_o[i1 - 1][1]
    if i1 < r0_len and i1 in to_o:
        return to_o[i1][0]
    if i1 == 0:
        return 0
    if i1 == r0_len:  # after a last value the alignment did not follow
        return o_len
    raise RefusedError("cannot place the change: the surrounding lines are written in a form the patcher does not follow")


def _sibling_delta(
    j1: int,
    first: str,
    r1_lines: list[str],
    r1_to_r0: dict[int, int],
    to_o: dict[int, tuple[int, int]],
    o_lines: list[str],
) -> int:
    """Indentation shift that makes the new lines line up with their siblings in O."""
    want = _indent(first)
    item = _is_item(first)

    def o_line(j: int) -> str | None:
        i = r1_to_r0.get(j)
        if i is None or i not in to_o:
            return None
        return o_lines[to_o[i][0]]

    for direction in (range(j1 - 1, -1, -1), range(j1 + 1, len(r1_lines))):
        for j in direction:
            line = r1_lines[j]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if _indent(line) < want:
                break
            if _indent(line) == want and _is_item(line) == item:
                found = o_line(j)
                if found is not None:
                    return _indent(found) - want
    # No sibling: place relative to the parent line above.
    for j in range(j1 - 1, -1, -1):
        line = r1_lines[j]
        if line.strip() and not line.lstrip().startswith("#") and _indent(line) < want:
            found = o_line(j)
            if found is not None:
                return _indent(found) - _indent(line)
            break
    return 0


def unified_diff(a: list[str], b: list[str], fromfile: str = "", tofile: str = "", n: int = 3, lineterm: str = "\n"):
    """`difflib.unified_diff(a, b, fromfile, tofile, n=n, lineterm=lineterm)`, in time
    linear in the texts: the same lines for texts of up to `_EXACT` lines together (the
    same SequenceMatcher), hunks from the cut-at-unique-lines alignment beyond."""
    started = False
    for group in _grouped(_opcodes(_matching_blocks(a, b, autojunk=True)), n):
        if not started:
            started = True
            yield f"--- {fromfile}{lineterm}"
            yield f"+++ {tofile}{lineterm}"
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@{lineterm}"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in a[i1:i2]:
                    yield " " + line
                continue
            if tag in ("replace", "delete"):
                for line in a[i1:i2]:
                    yield "-" + line
            if tag in ("replace", "insert"):
                for line in b[j1:j2]:
                    yield "+" + line


def _grouped(codes: list[tuple[str, int, int, int, int]], n: int):
    """`SequenceMatcher.get_grouped_opcodes(n)` from opcodes."""
    if not codes:
        codes = [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    group: list[tuple[str, int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > n + n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    """A unified diff's line range ("ed" format)."""
    length = stop - start
    if length == 1:
        return f"{start + 1}"
    return f"{start if not length else start + 1},{length}"
