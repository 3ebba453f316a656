"""Reading a Compose text into documents and round-trip trees, with positions.

The original text is kept as written; what ruamel.yaml gets is a normalised copy
(no BOM, LF line endings, a final newline, tabs in trailing blanks turned to spaces) with
exactly the same lines, so line numbers from the tree are line numbers in the file.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..model import InputError
from ..textfacts import TextFacts, split_documents, split_facts

# Nodes that aliases may add when expanded; beyond it the file is an attack ("billion
# laughs"). Real Compose files add under 100 (806 corpus documents); every added node
# costs the safety net time (100,000 take seconds), and Compose itself hangs on a bomb.
MAX_ALIAS_NODES = 50_000
MAX_DEPTH = 200
_TRAILING_TABS = re.compile(r"[ \t]+$")
_TAB_BEFORE_COMMENT = re.compile(r"\t+(?=[ \t]*#)")
_KEY_DECORATION = re.compile(r"(?:\s+[&!][^\s#]+)?(?:\s+#.*)?$")
_BLOCK_INDENT = re.compile(r"[ ]*(?:-[ ]+)*")  # leading blanks and compact "- - -" entries


def _add_referent(self: CommentedMap, cm: Any) -> None:
    """ruamel.yaml records each mapping that merges an anchored one (`<<: *a`) once,
    looking it up with `in`, which compares the mappings' contents: 1,000 services that
    merge one anchor took 4.6 s to load. The same record, by identity (two mappings that
    are equal but distinct each stay recorded)."""
    if not any(ref is cm for ref in self._ref):
        self._ref.append(cm)


if hasattr(CommentedMap, "add_referent"):
    CommentedMap.add_referent = _add_referent


@dataclass
class Document:
    """One YAML document of the file: its own lines and its round-trip tree."""

    index: int
    first_line: int  # 0-based line of the file where this document's text starts
    text: str  # normalised text of this document (LF, ends with "\n")
    tree: Any  # CommentedMap, or None for an empty / comment-only document
    indent: tuple[int, int, int]  # mapping, sequence, offset for the emitter

    @cached_property
    def lines(self) -> list[str]:
        """`text` split at its line ends, once (each service looks at its own lines)."""
        return self.text.split("\n")


def make_yaml(indent: tuple[int, int, int] = (2, 2, 0)) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    yaml.allow_duplicate_keys = False
    return yaml


def dump(node: Any, indent: tuple[int, int, int] = (2, 2, 0)) -> str:
    """`node` as ruamel.yaml writes it with `make_yaml(indent)`."""
    stream = io.StringIO()
    make_yaml(indent).dump(node, stream)
    return stream.getvalue()


def loadable(text: str) -> str:
    """Same lines, with the blanks that ruamel's scanner rejects (tabs) made spaces."""
    if "\t" not in text:
        return text
    out = []
    for line in text.split("\n"):
        line = _TRAILING_TABS.sub(lambda m: " " * len(m.group()), line)
        if "#" in line:
            line = _TAB_BEFORE_COMMENT.sub(lambda m: " " * len(m.group()), line)
        out.append(line)
    return "\n".join(out)


def detect_indent(text: str) -> tuple[int, int, int]:
    """The file's mapping indent and where its dashes sit, for the emitter."""
    mapping = 2
    offset = -1
    prev_key: tuple[int, str] | None = None
    found_map = found_seq = False
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        col = len(line) - len(line.lstrip(" "))
        if prev_key is not None:
            pcol, _ = prev_key
            if stripped.startswith("- ") or stripped == "-":
                if not found_seq and col >= pcol:
                    offset, found_seq = col - pcol, True
            elif not found_map and col > pcol:
                mapping, found_map = col - pcol, True
        if found_map and found_seq:
            break
        bare = _KEY_DECORATION.sub("", stripped)  # `key:  # comment`, `key: &anchor` open a block too
        prev_key = (col, stripped) if bare.endswith(":") and not stripped.startswith("- ") else None
    mapping = max(1, min(mapping, 8))
    offset = mapping if offset < 0 else min(offset, 8)  # no list in the file: indented dashes
    return mapping, offset + 2, offset


def parse(text: str, name: str = "<text>") -> tuple[TextFacts, list[Document]]:
    """Parse a Compose text; raise `HardenError` (with line:col) on bad input."""
    if "\x00" in text:
        raise InputError("binary content (NUL byte); not a Compose file")
    facts, norm = split_facts(text)
    documents = []
    for index, (first_line, chunk) in enumerate(split_documents(norm)):
        indent = detect_indent(chunk)
        tree = load_tree(chunk, indent, first_line)
        if tree is not None and not isinstance(tree, CommentedMap):
            kind = "a list" if isinstance(tree, CommentedSeq) else {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(tree), "a scalar")
            content = next((n for n, line in enumerate(chunk.split("\n")) if line.strip() and not line.lstrip().startswith(("#", "---", "%"))), 0)
            raise InputError(f"top level is {kind}, not a mapping; not a Compose file", first_line + content + 1, 1)
        documents.append(Document(index, first_line, chunk, tree, indent))
    return facts, documents


def load_tree(chunk: str, indent: tuple[int, int, int], first_line: int = 0) -> Any:
    _check_depth(chunk, first_line)
    try:
        tree = make_yaml(indent).load(loadable(chunk))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in str(exc) or type(exc).__name__ == "DuplicateKeyError":
            problem = "duplicate key " + _duplicate_key_name(str(exc))
        line = mark.line + 1 + first_line if mark else None
        col = mark.column + 1 if mark else None
        raise InputError(f"invalid YAML: {problem}", line, col) from None
    except YAMLError as exc:
        raise InputError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise InputError("nesting too deep to be a Compose file") from None
    except TypeError:  # ruamel cannot hash a mapping or list used as a key
        raise InputError("complex (non-scalar) mapping key; Compose does not accept it") from None
    except Exception as exc:  # the loader failing in its own way, e.g. an anchor merged into itself
        detail = " ".join(str(exc).split())[:120]
        raise InputError(f"invalid YAML: the YAML loader cannot read it ({type(exc).__name__}: {detail})") from None
    if tree is not None:
        check_expansion(tree, first_line)
    return tree


def _duplicate_key_name(message: str) -> str:
    found = re.search(r'found duplicate key "([^"]*)"', message)
    return f'"{found.group(1)}"' if found else ""


def _check_depth(chunk: str, first_line: int) -> None:
    """Refuse absurd nesting before the recursive loader meets it."""
    for number, line in enumerate(chunk.split("\n")):
        col = _BLOCK_INDENT.match(line).end()
        opened = line.count("[") + line.count("{")
        if col > MAX_DEPTH * 8 or opened > MAX_DEPTH:
            raise InputError("nesting too deep to be a Compose file", first_line + number + 1, 1)


def _key_kind(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool) or type(key).__name__ == "ScalarBoolean":
        return "boolean"
    if isinstance(key, (int, float)):
        return "number"
    if hasattr(key, "isoformat"):
        return "date"
    return type(key).__name__


def check_expansion(tree: Any, first_line: int = 0) -> None:
    """Count the nodes the tree would have with every alias expanded, without expanding;
    refuse mapping keys Compose does not accept (it takes only strings)."""
    sizes: dict[int, int] = {}
    written = 0  # nodes as written: each anchored collection counted once

    def size(node: Any, depth: int) -> int:
        nonlocal written
        if depth > MAX_DEPTH:
            raise InputError("nesting too deep to be a Compose file")
        key = id(node)
        if key in sizes:
            return sizes[key]
        written += 1
        if isinstance(node, dict):
            for k in node:
                if isinstance(k, (dict, list, tuple)):
                    raise InputError("complex (non-scalar) mapping key; Compose does not accept it")
                if not isinstance(k, str):
                    where = _key_position(node, k)
                    shown = "null" if k is None else str(k).lower() if _key_kind(k) == "boolean" else str(k)
                    raise InputError(f"non-string mapping key {shown} ({_key_kind(k)}); Compose does not accept it, quote it",
                                      where[0] + 1 + first_line if where else None, where[1] + 1 if where else None)
            total = 1 + sum(size(v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            total = 1 + sum(size(v, depth + 1) for v in node)
        else:
            return 1
        sizes[key] = total
        return total

    added = size(tree, 0) - written
    if added > MAX_ALIAS_NODES:
        raise InputError(f"aliases would add {added:,} nodes when expanded (alias bomb; limit {MAX_ALIAS_NODES:,}); refused")


def _key_position(mapping: Any, key: Any) -> tuple[int, int] | None:
    try:
        line, col = mapping.lc.key(key)
        return line, col
    except (AttributeError, KeyError, TypeError):
        return None


def scalar(value: Any) -> Any:
    """A plain Python scalar; a tagged one (`!reset`, `!override`) keeps its tag in the text."""
    if value is None or isinstance(value, bool):
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    tag = getattr(value, "tag", None)
    if tag is not None and hasattr(value, "value"):
        return f"{getattr(tag, 'value', tag)} {value.value}"
    return value


def plain(node: Any) -> Any:
    """A plain Python copy with merge keys resolved (what a Compose loader sees)."""
    if isinstance(node, dict):
        return {scalar(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return scalar(node)


def own_keys(mapping: CommentedMap) -> list[Any]:
    """Keys written in this mapping itself, not inherited through `<<:`."""
    own = getattr(mapping, "_ok", None)
    if own is None:
        return list(mapping.keys())
    return [k for k in mapping.keys() if k in own]


def merge_position(mapping: CommentedMap) -> int | None:
    """Where `<<:` is written among the mapping's own keys (0: first), if it has one."""
    merge = getattr(mapping, "merge", None)
    if not merge:
        return None
    position = getattr(merge, "merge_pos", None)  # ruamel.yaml >= 0.19
    if position is None:
        try:
            position = merge[0][0]  # earlier: a list of (position, mapping)
        except (TypeError, IndexError, KeyError):
            return None
    return position if isinstance(position, int) else None


def key_line(mapping: Any, key: Any, first_line: int = 0) -> int | None:
    """1-based line of `key` in the file, where the tree knows it."""
    try:
        return mapping.lc.key(key)[0] + 1 + first_line
    except (AttributeError, KeyError, TypeError):
        return None


def value_position(mapping: Any, key: Any, first_line: int = 0) -> tuple[int | None, int | None]:
    """1-based (line, column) of the value of `key` in the file, where the tree knows it."""
    try:
        line, col = mapping.lc.value(key)
        return line + 1 + first_line, col + 1
    except (AttributeError, KeyError, TypeError):
        return None, None


def positions(node: Any, first_line: int = 0, path: tuple[Any, ...] = (), depth: int = 0) -> dict[tuple[Any, ...], tuple[int, int]]:
    """1-based (line, column) of every value below `node`, by path (keys and list indexes)."""
    out: dict[tuple[Any, ...], tuple[int, int]] = {}
    if depth > 50:
        return out
    if isinstance(node, dict):
        for key in own_keys(node):
            line, col = value_position(node, key, first_line)
            if line is not None and col is not None:
                out[(*path, scalar(key))] = (line, col)
            out.update(positions(node[key], first_line, (*path, scalar(key)), depth + 1))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            try:
                line, col = node.lc.item(index)
                out[(*path, index)] = (line + 1 + first_line, col + 1)
            except (AttributeError, KeyError, TypeError, IndexError):
                pass
            out.update(positions(item, first_line, (*path, index), depth + 1))
    return out
